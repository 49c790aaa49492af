"""The two physical quantities voxelflex handles: RMSF (in nm or Å, as the data says) and
temperature (K). The one list of RMSF units and the one test of "outside the training range"."""

from __future__ import annotations

import numpy as np

from voxelflex.errors import ConfigError

__all__ = ["ANGSTROM_PER", "RMSF_UNITS", "check_rmsf_unit", "outside_range", "to_angstrom"]

RMSF_UNITS: tuple[str, ...] = ("nm", "angstrom")
ANGSTROM_PER = {"nm": 10.0, "angstrom": 1.0}  # Å in one unit of each


def check_rmsf_unit(unit: str | None) -> str:
    """Return ``unit`` if it is one of :data:`RMSF_UNITS`; there is deliberately no default.

    Raises
    ------
    ConfigError
        No unit, or an unknown one; the message gives the flag to pass.
    """
    if unit not in RMSF_UNITS:
        got = "no RMSF unit given" if unit is None else f"RMSF unit {unit!r} is not one of "
        valid = "" if unit is None else f"{list(RMSF_UNITS)}"
        raise ConfigError(
            f"{got}{valid}; a unit is required with an RMSF CSV (mdCATH RMSF is in nm): pass "
            "--rmsf-unit nm or --rmsf-unit angstrom"
        )
    return unit


def to_angstrom(values: np.ndarray, unit: str) -> np.ndarray:
    """RMSF ``values`` (float array, any shape) in ``unit`` → Å (float64, same shape)."""
    return np.asarray(values, dtype=np.float64) * ANGSTROM_PER[check_rmsf_unit(unit)]


def outside_range(
    temperature: np.ndarray | float, temperature_range: tuple[float, float] | list[float] | None
) -> np.ndarray:
    """``bool`` array, same shape as ``temperature`` (K): outside ``[min, max]`` of training.

    Predictions there are extrapolations. All False when the range is unknown (None).
    """
    t = np.asarray(temperature, dtype=np.float64)
    if temperature_range is None:
        return np.zeros(t.shape, dtype=bool)
    lo, hi = temperature_range
    return (t < lo) | (t > hi)
