"""Temperatures to predict at: single values, repeated values and ``start:stop:step`` sweeps."""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

from voxelflex.errors import ConfigError

__all__ = [
    "MAX_TEMPERATURES",
    "parse_sweep",
    "parse_temperature",
    "resolve_temperatures",
]

MAX_TEMPERATURES = 10_000


_RANGE = re.compile(r"\s*(\d+(?:\.\d*)?)\s*(?:-|–|\.\.|to)\s*(\d+(?:\.\d*)?)\s*")


def _sweep_hint(text: str) -> str:
    """``"; for a sweep use --temperatures 300:450:10"`` when ``text`` looks like a range."""
    found = _RANGE.fullmatch(text)
    if found:
        lo, hi = found[1], found[2]
        return f"; for a sweep from {lo} to {hi} K use --temperatures {lo}:{hi}:10"
    if text.count(":") == 2:
        return f"; a sweep START:STOP:STEP goes to --temperatures {text}"
    return ""


def parse_temperature(text: str, *, option: str = "--temperature") -> float:
    """One temperature in K from a command-line value.

    Raises
    ------
    ConfigError
        Not a number; a range (``300-450``) or sweep written here points to
        ``--temperatures START:STOP:STEP``.
    """
    try:
        return float(text)
    except ValueError:
        pass
    raise ConfigError(
        f"{option} {text!r} is not a temperature in K (e.g. {option} 320){_sweep_hint(text)}"
    )


def parse_sweep(spec: str) -> np.ndarray:
    """Parse ``"start:stop:step"`` (kelvin) into the temperatures start, start+step, ... ≤ stop.

    ``stop`` is included when the steps land on it (within 1e-6 K), so ``"300:450:10"`` gives
    16 values from 300 to 450 K.

    Returns
    -------
    numpy.ndarray, float32, shape (n,)
    """
    parts = spec.split(":")
    try:
        if len(parts) != 3:
            raise ValueError
        start, stop, step = (float(x) for x in parts)
    except ValueError:
        hint = _sweep_hint(spec) if _RANGE.fullmatch(spec) else ""
        raise ConfigError(
            f"temperature sweep {spec!r} is not START:STOP:STEP in kelvin; e.g. 300:450:10{hint}"
        ) from None
    if not (np.isfinite([start, stop, step]).all() and step > 0 and stop >= start):
        raise ConfigError(
            f"temperature sweep {spec!r}: need finite values, STEP > 0 and STOP >= START; "
            "e.g. 300:450:10"
        )
    count = int(np.floor((stop - start) / step + 1e-6)) + 1
    if count > MAX_TEMPERATURES:
        raise ConfigError(
            f"temperature sweep {spec!r} gives {count} temperatures, more than "
            f"{MAX_TEMPERATURES}; use a larger STEP"
        )
    return (start + step * np.arange(count)).astype(np.float32)


def resolve_temperatures(
    values: Iterable[float] = (), sweep: str | None = None
) -> np.ndarray | None:
    """Join single temperatures and an optional sweep into one sorted, duplicate-free array.

    Returns
    -------
    numpy.ndarray, float32, shape (n,), or None
        Kelvin, ascending; None when neither was given (the caller picks a default).
    """
    temps = [np.asarray(list(values), dtype=np.float32)]
    if sweep:
        temps.append(parse_sweep(sweep))
    out = np.unique(np.concatenate(temps))
    if len(out) == 0:
        return None
    if not (np.isfinite(out).all() and (out > 0).all()):
        raise ConfigError(f"temperatures must be finite and > 0 K, got {out.tolist()}")
    return out
