"""The two physical quantities voxelflex handles: RMSF (in nm or Å, as the data says) and
temperature (K). The one list of RMSF units and the one test of "outside the training range"."""

from __future__ import annotations

import numpy as np

from voxelflex.errors import ConfigError

__all__ = [
    "ANGSTROM_PER",
    "RMSF_UNITS",
    "accessibility_scale_warnings",
    "check_rmsf_unit",
    "outside_range",
    "rmsf_scale_warnings",
    "temperature_key",
    "temperature_scale_warnings",
    "to_angstrom",
]

RMSF_UNITS: tuple[str, ...] = ("nm", "angstrom")
ANGSTROM_PER = {"nm": 10.0, "angstrom": 1.0}  # Å in one unit of each
# Median residue RMSF of a whole data set, Å: crystal B-factors of 5-80 Å² give 0.4-1.7 Å,
# mdCATH 1-4 Å over its temperatures. Outside this band the unit is the likelier mistake (x10).
PLAUSIBLE_MEDIAN_ANGSTROM = (0.3, 8.0)
# Lowest plausible temperature, K: cryo-crystallography runs at 77-100 K (liquid nitrogen; the
# real set has 78 K), MD above 250 K; temperatures in °C (25, 37, 47) would pass as kelvin.
PLAUSIBLE_MIN_KELVIN = 60.0


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


def rmsf_scale_warnings(values: np.ndarray, unit: str, *, source: str) -> list[str]:
    """A warning when the median of ``values`` (RMSF in ``unit``) is implausible in Å.

    A CSV in Å declared as nm (or the reverse) trains and predicts without error, ten times
    off; the median over the data set is where that shows.
    """
    values = np.asarray(values, dtype=np.float64)
    if not len(values):
        return []
    median = float(np.median(values))
    angstrom = median * ANGSTROM_PER[check_rmsf_unit(unit)]
    lo, hi = PLAUSIBLE_MEDIAN_ANGSTROM
    if lo <= angstrom <= hi:
        return []
    other = "angstrom" if unit == "nm" else "nm"
    return [
        f"the median RMSF of {source} is {median:.3g} {unit} = {angstrom:.3g} Å, outside the "
        f"{lo}-{hi} Å usual for a protein data set: is the unit right? (--rmsf-unit {other} if "
        "the values are in that unit)"
    ]


def temperature_scale_warnings(
    values: np.ndarray, *, source: str, fix: str = "add 273.15 to temperature_feature"
) -> list[str]:
    """A warning when temperatures (K) below :data:`PLAUSIBLE_MIN_KELVIN` occur in ``values``.

    Temperatures in °C train and predict without error, as a temperature scale 273 K off; the
    lowest values are where that shows. ``source`` names where the values come from (an RMSF
    CSV, the requested temperatures), ``fix`` how to give kelvin there (default: in an RMSF
    CSV).

    Parameters
    ----------
    values : numpy.ndarray of float, shape (N,)
        Temperatures as given, read as kelvin.
    source : str
        Where they come from, first in the message (``"predict"``, the CSV's path).
    fix : str
        How to give kelvin there, completing "if it is °C, ...".

    Returns
    -------
    list of str
        One warning naming the low values, their row count and an example in kelvin; empty
        when none is below :data:`PLAUSIBLE_MIN_KELVIN`.
    """
    values = np.asarray(values, dtype=np.float64)
    low = values < PLAUSIBLE_MIN_KELVIN
    if not low.any():
        return []
    found = np.unique(values[low])
    shown = ", ".join(f"{t:g}" for t in found[:5]) + (", ..." if len(found) > 5 else "")
    rows = int(low.sum())
    where = f" in {rows} rows" if rows > len(found) else ""
    many = len(found) > 1
    return [
        f"{source}: temperature{'s' if many else ''} {shown} K {'are' if many else 'is'} below "
        f"{PLAUSIBLE_MIN_KELVIN:g} K{where}, colder than any protein sample (cryo-"
        f"crystallography: 77-100 K) or simulation: temperatures are read in kelvin; if "
        f"{'these are' if many else 'it is'} °C, {fix} (e.g. {found[0] + 273.15:g} K for "
        f"{found[0]:g} °C)"
    ]


def accessibility_scale_warnings(values: np.ndarray, *, source: str) -> list[str]:
    """A warning when relative accessibilities (fractions, NaN = none) fall outside 0-1.01.

    Percentages or absolute SASA (Å²) are read without error, and then fall outside every
    accessibility bin of ``evaluate``, whose stratified metrics lose those rows.
    """
    values = np.asarray(values, dtype=np.float64)
    outside = np.isfinite(values) & ((values < 0) | (values > 1.01))
    if not outside.any():
        return []
    return [
        f"{int(outside.sum())} row(s) of {source} have a relative_accessibility outside 0-1 "
        f"(values from {np.nanmin(values):g} to {np.nanmax(values):g}): it is a fraction; "
        "percent? divide by 100 (absolute "
        "SASA: divide by the residue's maximum); evaluate puts such rows in no accessibility bin"
    ]


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


def temperature_key(t: float) -> str:
    """JSON/CSV label of a temperature (K): the shortest text of its float32 value.

    ``"320"`` for whole kelvins, ``"298.15"``, ``"310.1231"``; temperatures are float32 in the
    index, and two that differ there never share a label (``%g`` alone gave 310.1231 and 310.1234
    one key, so one's metrics or counts overwrote the other's).
    """
    t32 = np.float32(t)
    short = f"{float(t32):g}"
    return short if np.float32(short) == t32 else str(t32)
