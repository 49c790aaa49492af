"""Per-domain and per-residue views: RMSF along the sequence, and RMSF against temperature.

- ``rmsf_profile``: predicted RMSF (solid) and truth (dashed, where known) along a domain's
  residues, one panel per temperature (at most five).
- ``temperature_response``: predicted RMSF of chosen residues against temperature (best from a
  ``--temperatures`` sweep), truth as markers, the training temperature range shaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from matplotlib.lines import Line2D

from voxelflex.analysis.plots.common import (
    new_figure,
    rmsf_name,
    save,
    temperature_colors,
    unit_label,
)
from voxelflex.errors import InputError
from voxelflex.formats import ImageFormat
from voxelflex.metrics import grouped_pearson, pearson
from voxelflex.quantities import temperature_key

__all__ = [
    "check_picks",
    "choose_domain",
    "choose_residues",
    "plot_rmsf_profile",
    "plot_temperature_response",
]

MAX_PROFILE_TEMPERATURES = 5


def _np(table: pa.Table, name: str) -> np.ndarray:
    col = table[name]
    if pa.types.is_floating(col.type):
        return pc.fill_null(col, np.nan).to_numpy(zero_copy_only=False).astype(np.float64)
    return np.asarray(col.to_pylist())


def choose_domain(table: pa.Table) -> str:
    """A representative domain: median per-domain Pearson r among domains with targets.

    Falls back to the first domain when no domain has a defined r.
    """
    domains = _np(table, "domain")
    names, codes = np.unique(domains, return_inverse=True)
    groups, r = grouped_pearson(_np(table, "target_rmsf"), _np(table, "predicted_rmsf"), codes)
    ok = np.isfinite(r)
    if not ok.any():
        return str(domains[0])
    groups, r = groups[ok], r[ok]
    return str(names[groups[np.argsort(r)[len(r) // 2]]])


def _domain_rows(table: pa.Table, domain: str) -> pa.Table:
    rows = table.filter(pc.equal(table["domain"], domain))
    if rows.num_rows == 0:
        some = ", ".join(sorted(set(table["domain"].to_pylist()))[:10])
        raise InputError(f"domain {domain!r} is not in the predictions; some that are: {some}")
    return rows


def _profile_temperatures(
    rows: pa.Table, domain: str, temperatures: Sequence[float] | None
) -> np.ndarray:
    """Panel temperatures (K, float64) of the profile of ``domain`` (its ``rows``).

    Default: those with targets (else all predicted), at most five, spread out.

    Raises
    ------
    InputError
        A temperature given that the domain has no predictions at.
    """
    t = _np(rows, "temperature").astype(np.float32)  # compared as the index stores it
    y = _np(rows, "target_rmsf")
    if temperatures is None:
        pool = np.unique(t[np.isfinite(y)]) if np.isfinite(y).any() else np.unique(t)
        return _pick(pool, MAX_PROFILE_TEMPERATURES)
    # one panel per temperature as stored (float32): one given twice is drawn once
    temps = np.unique(np.asarray(temperatures, dtype=np.float32)).astype(np.float64)
    absent = [temperature_key(x) for x in temps if not (t == np.float32(x)).any()]
    if absent:
        raise InputError(
            f"domain {domain!r} has no predictions at {', '.join(absent)} K; predicted "
            f"temperatures: {', '.join(temperature_key(x) for x in np.unique(t))} K; pass "
            "one of them to --profile-temperature"
        )
    return temps


def check_picks(
    table: pa.Table,
    domain: str | None,
    residues: Sequence[str] | None,
    temperatures: Sequence[float] | None,
) -> None:
    """Refuse a ``--domain``, ``--residue`` or ``--profile-temperature`` the predictions do not
    hold, before any plot is written (the profile plots come last).

    Raises
    ------
    InputError
        Naming the pick and some that are there.
    """
    if domain is not None or temperatures is not None:
        domain = domain or choose_domain(table)
        _profile_temperatures(_domain_rows(table, domain), domain, temperatures)
    for spec in residues or ():
        _select_residue(table, spec)


def _residue_labels(rows: pa.Table) -> np.ndarray:
    chains = _np(rows, "chain")
    resid = np.char.add(_np(rows, "resnum").astype(str), _np(rows, "icode").astype(str))
    if len(np.unique(chains)) > 1:
        return np.char.add(np.char.add(chains.astype(str), ":"), resid)
    return resid


def _pick(values: np.ndarray, k: int) -> np.ndarray:
    if len(values) <= k:
        return values
    return values[np.unique(np.round(np.linspace(0, len(values) - 1, k)).astype(int))]


def plot_rmsf_profile(
    table: pa.Table,
    out_dir: Path,
    *,
    rmsf_unit: str | None,
    domain: str | None = None,
    temperatures: Sequence[float] | None = None,
    fmt: ImageFormat | str = "png",
) -> list[Path]:
    """RMSF along ``domain``'s sequence at several temperatures, predicted and true.

    Residues are placed by chain (in order of appearance), number and insertion code, so the
    rows may come in any order.

    ``temperatures`` default: those with targets (else all predicted), at most five, spread out.
    """
    domain = domain or choose_domain(table)
    rows = _domain_rows(table, domain)
    t = _np(rows, "temperature").astype(np.float32)  # compared as the index stores it
    y = _np(rows, "target_rmsf")
    temps = _profile_temperatures(rows, domain, temperatures)
    labels = _residue_labels(rows)
    # Residue position: chains in order of appearance, then residue number and insertion code,
    # in whatever order the rows come (a predictions CSV re-sorted by temperature or resid).
    _, chain_first, chain_of = np.unique(
        _np(rows, "chain").astype(str), return_index=True, return_inverse=True
    )
    chain_rank = np.argsort(np.argsort(chain_first))[chain_of]
    order = np.lexsort((_np(rows, "icode").astype(str), _np(rows, "resnum"), chain_rank))
    new = np.r_[True, labels[order][1:] != labels[order][:-1]]
    pos = np.empty(len(labels), dtype=np.int64)
    pos[order] = np.cumsum(new) - 1
    ordered = labels[order][new]
    predicted = _np(rows, "predicted_rmsf")
    # Small multiples, one panel per temperature on shared axes: predicted and true stay
    # readable where five overlaid pairs of lines were not.
    fig = new_figure(max(8, min(16, 0.12 * pos.max() + 4)), 1.0 + 1.7 * len(temps))
    axes = np.atleast_1d(fig.subplots(len(temps), 1, sharex=True, sharey=True, squeeze=False))
    axes = axes.ravel()
    keep = np.zeros(len(t), dtype=bool)
    for ax, temp, colour in zip(axes, temps, temperature_colors(temps), strict=True):
        at_t = t == np.float32(temp)  # 310.1231 and 310.1234 K are two panels
        keep |= at_t
        sel = np.flatnonzero(at_t)[np.argsort(pos[at_t], kind="stable")]  # along the chain
        ax.plot(pos[sel], predicted[sel], color=colour, lw=1.6, label="predicted")
        note = ""
        if np.isfinite(y[sel]).any():
            ax.plot(pos[sel], y[sel], color="0.15", lw=1.0, ls="--", label="true")
            note = f", r = {pearson(y[sel], predicted[sel]):.2f}"
        ax.text(
            0.005,
            0.95,
            f"{temperature_key(temp)} K{note}",
            transform=ax.transAxes,
            va="top",
            ha="left",
            fontsize="small",
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"},
        )
        ax.set_ylabel(f"{rmsf_name(rmsf_unit)} ({unit_label(rmsf_unit)})", fontsize="small")
        ax.grid(alpha=0.3)
    # every line style of any panel, so a first panel without truth (a sweep temperature)
    # still names the dashed line of the others
    styles = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            styles.setdefault(label, handle)
    axes[0].legend(styles.values(), styles.keys(), fontsize="small", loc="upper right", ncols=2)
    step = max(1, int(np.ceil((pos.max() + 1) / 25)))
    ticks = np.arange(0, pos.max() + 1, step)
    multi_chain = ":" in labels[0]
    axes[-1].set_xticks(ticks, ordered[ticks], rotation=90 if multi_chain else 0, fontsize="small")
    axes[-1].set_xlabel("chain:residue number" if multi_chain else "residue number")
    drawn = "predicted and true" if np.isfinite(y[keep]).any() else "predicted (no targets)"
    fig.suptitle(f"{rmsf_name(rmsf_unit)} profile of {domain}: {drawn}, one panel per temperature")
    data = rows.filter(pa.array(keep)).select(
        [
            "domain",
            "chain",
            "resid_str",
            "resnum",
            "icode",
            "resname",
            "temperature",
            "predicted_rmsf",
            "target_rmsf",
        ]
    )
    return save(fig, data, out_dir, f"rmsf_profile_{domain}", fmt)


def choose_residues(table: pa.Table, domain: str, k: int = 4) -> list[str]:
    """``k`` residues of ``domain`` spanning its range of mean predicted RMSF, as specs.

    The mean is over each residue's finite predictions: a NaN one (an edited or merged file)
    would otherwise make the mean NaN, which sorts last, as the most flexible residue. A
    residue without any finite prediction is not chosen (unless no residue has one).
    """
    rows = _domain_rows(table, domain)
    labels = _residue_labels(rows)
    names, inv = np.unique(labels, return_inverse=True)
    predicted = _np(rows, "predicted_rmsf")
    finite = np.isfinite(predicted)
    counts = np.bincount(inv, finite, len(names))
    total = np.bincount(inv, np.where(finite, predicted, 0.0), len(names))
    known = counts > 0 if (counts > 0).any() else np.ones(len(names), dtype=bool)
    with np.errstate(invalid="ignore"):  # 0 / 0 only when no residue has a prediction
        mean = total[known] / counts[known]
    picked = _pick(names[known][np.argsort(mean, kind="stable")], k)
    chain = _np(rows, "chain")[0]
    return [f"{domain}:{lab}" if ":" in lab else f"{domain}:{chain}:{lab}" for lab in picked]


def _select_residue(table: pa.Table, spec: str) -> pa.Table:
    parts = spec.split(":")
    if len(parts) != 3:
        raise InputError(f"residue {spec!r}: expected DOMAIN:CHAIN:RESIDUE, e.g. 1a00A00:A:12")
    domain, chain, resid = parts
    rows = _domain_rows(table, domain)
    rows = rows.filter(pc.equal(rows["chain"], chain))
    full = np.char.add(_np(rows, "resnum").astype(str), _np(rows, "icode").astype(str))
    hit = (full == resid) | (_np(rows, "resid_str").astype(str) == resid)
    if not hit.any():
        some = ", ".join(f"{domain}:{chain}:{r}" for r in _np(rows, "resid_str")[:5].tolist())
        raise InputError(
            f"residue {spec!r} is not in the predictions of domain {domain!r} chain {chain!r}; "
            f"pick one that is (e.g. {some or 'none in this chain'})"
        )
    return rows.filter(pa.array(hit))


def plot_temperature_response(
    table: pa.Table,
    out_dir: Path,
    *,
    rmsf_unit: str | None,
    training_range: Sequence[float] | None = None,
    residues: Sequence[str] | None = None,
    domain: str | None = None,
    fmt: ImageFormat | str = "png",
) -> list[Path]:
    """Predicted RMSF against temperature for each residue in ``residues`` (DOMAIN:CHAIN:RESIDUE).

    Default residues: four of ``domain`` (default :func:`choose_domain`) from least to most
    flexible.
    """
    residues = list(residues or choose_residues(table, domain or choose_domain(table)))
    fig = new_figure(8, 4.5)
    ax = fig.subplots()
    if training_range is not None:
        ax.axvspan(*training_range, color="0.9", zorder=0, label="training temperature range")
    parts = []
    for i, spec in enumerate(residues):
        rows = _select_residue(table, spec).sort_by("temperature")  # a line, in any row order
        t, p, y = _np(rows, "temperature"), _np(rows, "predicted_rmsf"), _np(rows, "target_rmsf")
        name = f"{spec} {rows['resname'][0].as_py()}"
        ax.plot(t, p, color=f"C{i}", lw=1.8, marker="." if len(t) > 8 else "o", label=name)
        if np.isfinite(y).any():
            ax.plot(t, y, ls="none", marker="x", ms=7, color=f"C{i}")
        parts.append(
            pa.table(
                {
                    "residue": [spec] * len(t),
                    "resname": rows["resname"],
                    "temperature": t,
                    "predicted_rmsf": p,
                    "target_rmsf": y,
                }
            )
        )
    handles, labels = ax.get_legend_handles_labels()
    if any(np.isfinite(part["target_rmsf"].to_numpy()).any() for part in parts):
        handles.append(Line2D([], [], ls="none", marker="x", color="0.2", label="true"))
        labels.append("true")
    ax.legend(handles, labels, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_xlabel("temperature (K)")
    ax.set_ylabel(f"{rmsf_name(rmsf_unit)} ({unit_label(rmsf_unit)})")
    ax.set_title("Predicted temperature response")
    ax.grid(alpha=0.3)
    return save(fig, pa.concat_tables(parts), out_dir, "temperature_response", fmt)
