"""Datasets in: turn published datasets (mdCATH) into the inputs voxelflex reads.

- :func:`import_mdcath`: mdCATH domain files → voxel HDF5, RMSF CSV, feature sidecar, splits
  and a report (``voxelflex import mdcath``; recipe in ``docs/mdcath.md``).
"""

from voxelflex.datasets.importer import ImportReport, import_mdcath
from voxelflex.datasets.mdcath import ImportSettings

__all__ = ["ImportReport", "ImportSettings", "import_mdcath"]
