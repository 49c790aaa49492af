"""Figure creation and saving shared by every plot: one image plus the CSV of the data drawn.

Figures are built with :class:`matplotlib.figure.Figure` and the Agg canvas directly, so no
global pyplot state or display backend is involved (safe in workers and headless machines).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from voxelflex.atomic import atomic_path, atomic_write_csv
from voxelflex.formats import ImageFormat

__all__ = [
    "RELATIVE_UNIT",
    "new_figure",
    "rmsf_name",
    "save",
    "temperature_colors",
    "unit_label",
]

# The ``rmsf_unit`` the plots get for predictions of a ``train.target_norm: domain`` checkpoint:
# predicted and true values are then per-domain z-scores of RMSF, without a unit.
RELATIVE_UNIT = "per-domain z"


def new_figure(width: float, height: float) -> Figure:
    """A blank figure of ``width`` × ``height`` inches with constrained layout (no overlaps)."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(
    fig: Figure, data: pa.Table, out_dir: Path, name: str, fmt: ImageFormat | str, dpi: int = 150
) -> list[Path]:
    """Write ``<name>.<fmt>`` and ``<name>_data.csv`` into ``out_dir`` atomically.

    Returns
    -------
    list of Path
        The image path, then the CSV path.
    """
    fmt = ImageFormat(fmt)
    image = Path(out_dir) / f"{name}.{fmt.value}"
    csv = Path(out_dir) / f"{name}_data.csv"
    # An earlier plot's data goes first: a crash after the new image never leaves that data
    # beside it as the data behind it.
    csv.unlink(missing_ok=True)
    with atomic_path(image, suffix=f".{fmt.value}") as tmp:
        fig.savefig(tmp, format=fmt.value, dpi=dpi)
    atomic_write_csv(data, csv)
    return [image, csv]


def temperature_colors(temperatures: np.ndarray) -> list:
    """One colour per temperature, cold (dark blue) to hot (orange), spread over the given range.

    Plasma, stopping short of its pale yellow end so every line stays visible on white.
    """
    from matplotlib import colormaps

    t = np.asarray(temperatures, dtype=np.float64)
    lo, hi = (t.min(), t.max()) if len(t) else (0.0, 1.0)
    norm = Normalize(lo, hi if hi > lo else lo + 1.0)
    cmap = colormaps["plasma"]
    return [cmap(0.82 * norm(v)) for v in t]


def unit_label(unit: str | None) -> str:
    """Readable RMSF unit for axis labels (``"nm"``, ``"Å"``, or :data:`RELATIVE_UNIT`)."""
    return {"angstrom": "Å", "nm": "nm"}.get(unit or "", unit or "unit unknown")


def rmsf_name(unit: str | None) -> str:
    """What the values are: ``"RMSF"``, or ``"relative RMSF"`` for :data:`RELATIVE_UNIT`."""
    return "relative RMSF" if unit == RELATIVE_UNIT else "RMSF"
