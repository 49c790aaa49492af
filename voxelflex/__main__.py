"""``python -m voxelflex`` (also what ``torchrun -m voxelflex train`` runs)."""

from voxelflex.cli.main import main

main()
