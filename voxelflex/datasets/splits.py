"""Domain-level train/val/test splits for an imported dataset.

Random with a seed and fractions, optionally grouped so that every domain of one group (a CATH
superfamily) lands in one split; or the user's own split files.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence

import numpy as np

from voxelflex.errors import ConfigError, InputError
from voxelflex.inputs.splits import read_split_file
from voxelflex.paths import read_text_file

__all__ = [
    "SPLIT_NAMES",
    "check_random_split",
    "parse_fractions",
    "random_splits",
    "read_groups",
    "splits_from_files",
]

SPLIT_NAMES = ("train", "val", "test")
_CATH_SUPERFAMILY = re.compile(r"^\d+\.\d+\.\d+\.\d+$")

log = logging.getLogger(__name__)


def parse_fractions(text: str) -> tuple[float, float, float]:
    """``"0.8,0.1,0.1"`` → (train, val, test) fractions; they must sum to 1 and train, val > 0."""
    try:
        values = tuple(float(x) for x in text.replace(":", ",").split(","))
    except ValueError:
        values = ()
    return _check_fractions(values, f"--fractions {text!r}")  # type: ignore[return-value]


def check_random_split(fractions: Sequence[float], seed: int) -> None:
    """Refuse fractions or a seed :func:`random_splits` cannot use (checked before an import's
    hours of work, not after).

    Parameters
    ----------
    fractions : sequence of float
        Train, val and test shares of the domains.
    seed : int
        Random split seed (≥ 0).

    Raises
    ------
    ConfigError
        Not three finite fractions ≥ 0 summing to 1 with train and val above 0, or a seed that
        is not an integer ≥ 0.
    """
    _check_fractions(tuple(fractions), f"fractions {tuple(fractions)}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"--seed {seed!r}: give an integer ≥ 0")


def _check_fractions(values: tuple, given: str) -> tuple:
    """``values`` if they are usable split fractions, else a ConfigError naming ``given``."""
    # NaN passes every comparison below unless refused first: "nan,0.5,0.5" put every domain
    # in one split (argmax takes NaN as the largest deficit).
    if (
        len(values) != 3
        or not all(math.isfinite(v) for v in values)
        or min(values) < 0
        or abs(sum(values) - 1) > 1e-6
        or values[0] <= 0
        or values[1] <= 0
    ):
        raise ConfigError(
            f"{given}: give train,val,test fractions that sum to 1, train and val above 0 "
            "(e.g. 0.8,0.1,0.1)"
        )
    return values


def read_groups(path: str | os.PathLike) -> dict[str, str]:
    """Read a ``domain_id,superfamily`` mapping.

    One line per domain with exactly two comma-separated fields, the domain id and its CATH
    superfamily id (``3.40.50.300``); an optional header line ``domain_id,superfamily`` (or
    ``domain,...``) first; blank lines and ``#`` comment lines are skipped, and so are empty
    trailing fields (a spreadsheet's trailing commas).

    Returns
    -------
    dict of str to str
        Domain id → superfamily id, as written.

    Raises
    ------
    InputError
        A missing or not UTF-8 file; a line of other than two fields (the file, line and fields
        named: a file of CATH's levels, domain,class,architecture,topology,superfamily, would
        otherwise be grouped by class); a field with a space or ``#`` (a whitespace-separated
        file, a trailing comment: ``3.40.50.300 # kinase`` would be a superfamily of its own);
        or a domain given two superfamilies.
    """
    text = read_text_file(path, what="superfamily mapping", option="--superfamilies")
    groups: dict[str, str] = {}
    header = True
    for line_no, row in enumerate(csv.reader(text.splitlines()), start=1):
        row = [c.strip() for c in row]
        while row and not row[-1]:  # a spreadsheet's trailing commas: nothing is dropped
            row.pop()
        if not row or row[0].startswith("#"):
            continue
        if header and row[0].lower() in ("domain_id", "domain"):  # after any comment lines
            header = False
            continue
        header = False
        problem = _bad_group_line(row)
        if problem:
            raise InputError(
                f"{path}, line {line_no}: expected two comma-separated fields, "
                f"domain_id,superfamily (a CATH superfamily id like 3.40.50.300), got {problem}"
            )
        if groups.setdefault(row[0], row[1]) != row[1]:
            raise InputError(
                f"{path}, line {line_no}: domain {row[0]} is given two superfamilies "
                f"({groups[row[0]]} and {row[1]}); keep one line per domain"
            )
    odd = sorted({g for g in groups.values() if not _CATH_SUPERFAMILY.match(g)})
    if odd:
        log.warning(
            "%s: %d of %d superfamily ids are not CATH superfamily ids (class.architecture."
            "topology.superfamily, e.g. 3.40.50.300), e.g. %s; each is kept in one split as "
            "given. A coarser level (class, topology) can leave the fractions unmet; a finer "
            "grouping (a sequence cluster) lets homologues span the splits",
            path,
            len(odd),
            len(set(groups.values())),
            odd[:5],
        )
    return groups


def _bad_group_line(row: list[str]) -> str | None:
    """What is wrong with the fields of a mapping line and the fix, or None if it is usable."""
    if len(row) > 2:
        # never the second field as the superfamily: of domain,C,A,T,H it is the class
        return (
            f"{len(row)} fields {row[:6]}: write the superfamily as one field; for CATH's "
            'levels in fields 2-5, awk -F, \'{print $1 "," $2 "." $3 "." $4 "." $5}\' '
            "makes the file"
        )
    if len(row[0].split()) > 1:
        return (
            f"fields separated by spaces or tabs {row}: make a CSV, e.g. from CATH's "
            "cath-domain-list.txt with the awk line of docs/mdcath.md"
        )
    if len(row) < 2 or not all(row):
        return f"{row}: give every domain one line with its superfamily"
    for field in row:
        if len(field.split()) > 1 or "#" in field:
            return f"{field!r}, a field with a space or '#': put a comment on a line of its own"
    return None


def random_splits(
    domains: Sequence[str],
    fractions: tuple[float, float, float],
    seed: int,
    groups: Mapping[str, str] | None = None,
) -> dict[str, list[str]]:
    """Assign domains to train/val/test at random, whole groups at a time.

    Groups (or single domains without ``groups``) are shuffled with ``seed`` and each goes to
    the split furthest below its target share of domains, so fractions hold to within one
    group's size. The result depends only on the domains, the fractions, the seed and the
    mapping, not on the order the domains are given in.

    Raises
    ------
    ConfigError
        Unusable fractions or seed (:func:`check_random_split`).
    InputError
        With ``groups``: domains the mapping lacks (named; a domain without a superfamily
        could leak into two splits through a relative, so none is guessed). Also a train or
        val split that comes out empty (too few domains or groups for the fractions), naming
        the counts; an empty test split whose fraction is above 0 is a logged warning.
    """
    check_random_split(fractions, seed)
    domains = sorted(set(domains))
    if groups is not None:
        lacking = [d for d in domains if d not in groups]
        if lacking:
            raise InputError(
                f"the superfamily mapping lacks {len(lacking)} of {len(domains)} domains, e.g. "
                f"{lacking[:5]}; add a 'domain_id,superfamily' line for each"
            )
    key = (lambda d: groups[d]) if groups is not None else (lambda d: d)
    members: dict[str, list[str]] = {}
    for d in domains:
        members.setdefault(key(d), []).append(d)
    names = sorted(members)
    order = np.random.default_rng(seed).permutation(len(names))
    target = np.asarray(fractions) * len(domains)
    filled = np.zeros(3)
    out: dict[str, list[str]] = {s: [] for s in SPLIT_NAMES}
    for i in order:
        group = members[names[i]]
        s = int(np.argmax(target - filled))
        out[SPLIT_NAMES[s]] += group
        filled[s] += len(group)
    _check_filled(out, fractions, len(domains), len(names) if groups is not None else None)
    return {s: sorted(v) for s, v in out.items()}


def _check_filled(
    out: Mapping[str, list[str]], fractions: Sequence[float], n_domains: int, n_groups: int | None
) -> None:
    """Refuse a split without train or val domains; warn about an empty test split that its
    fraction asked for (training runs without one)."""
    empty = [s for s, f in zip(SPLIT_NAMES, fractions, strict=True) if f > 0 and not out[s]]
    if not empty:
        return
    of = f"{n_domains} domains" + (f" in {n_groups} superfamilies" if n_groups else "")
    said = (
        f"the random split of {of} at fractions {','.join(f'{f:g}' for f in fractions)} "
        f"leaves {' and '.join(empty)} empty ({', '.join(f'{s} {len(out[s])}' for s in out)})"
    )
    fix = (
        "give the small splits larger fractions (e.g. --fractions 0.5,0.25,0.25), more domains"
        + (" or superfamilies" if n_groups else "")
        + ", or your own --train-split/--val-split/--test-split files"
    )
    if {"train", "val"} & set(empty):
        raise InputError(
            f"{said}: training needs train and val domains; {fix}. A rerun keeps the imported "
            "domains and does not redo them"
        )
    log.warning("%s: there is nothing to test on; %s", said, fix)


def splits_from_files(
    domains: Sequence[str], files: Mapping[str, str | os.PathLike | None]
) -> tuple[dict[str, list[str]], list[str], dict[str, list[str]]]:
    """The user's split files, kept to the imported domains.

    Returns
    -------
    splits : dict of str to list of str
        ``train``/``val``/``test`` → imported domains listed in that file.
    unassigned : list of str
        Imported domains in no file (they get no split and are not trained on).
    absent : dict of str to list of str
        Per split, listed domains that were not imported (refused or not given).

    Raises
    ------
    InputError
        A domain in two files (named), or a split file whose ids are none of them imported.
    """
    present = set(domains)
    splits, absent, seen = {}, {}, {}
    for name in SPLIT_NAMES:
        path = files.get(name)
        listed = (
            []
            if path is None
            else read_split_file(path, what=f"{name} split file", option=f"--{name}-split")
        )
        for d in listed:
            other = seen.setdefault(d, name)
            if other != name:
                raise InputError(
                    f"domain {d} is in both the {other} and the {name} split file; a domain "
                    "belongs to one split"
                )
        splits[name] = sorted(d for d in set(listed) if d in present)
        absent[name] = sorted(d for d in set(listed) if d not in present)
        if listed and not splits[name]:
            raise InputError(
                f"{name} split file {path} lists {len(listed)} ids, none of them an imported "
                f"domain (its first: {listed[:3]}); imported domains are like "
                f"{sorted(present)[:3]}. Write one domain id a line (ids are case-sensitive) "
                "and rerun the same command: the imported domains are kept and not redone"
            )
    unassigned = sorted(present - set(seen))
    return splits, unassigned, absent
