"""Build bit-packed zstd WebDataset shards from an index and its voxel HDF5.

One tar record per domain: ``<key>.vox.zst`` (one zstd frame of the domain's stacked packed rows)
and ``<key>.keys.json`` (domain, chains, residue keys in row order). Domains are shuffled once
with ``seed`` and cut into shards of ``domains_per_shard``. Domains are read, packed and
compressed in parallel worker processes; the main process writes each shard to a temporary file,
records it in ``.build/`` (so an interrupted build resumes) and renames it into place; the
manifest is written last.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import multiprocessing
import os
import re
import tarfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import webdataset as wds
import zstandard
from tqdm import tqdm

from voxelflex.atomic import atomic_path, atomic_write_text, temporary_names
from voxelflex.errors import ShardError
from voxelflex.formats import DEFAULT_DOMAINS_PER_SHARD, DEFAULT_ZSTD_LEVEL
from voxelflex.index import LoadedIndex, read_index
from voxelflex.index.fingerprint import file_fingerprint, fingerprint_change
from voxelflex.logs import command_log
from voxelflex.paths import redact_url
from voxelflex.sources.hdf5 import Hdf5Reader
from voxelflex.sources.shards.manifest import (
    FORMAT_NAME,
    FORMAT_VERSION,
    KEYS_MEMBER,
    MANIFEST_NAME,
    VOX_MEMBER,
    DomainRecord,
    ShardEntry,
    ShardManifest,
    domain_key,
    file_sha256,
    shard_name,
)

__all__ = ["ShardBuildReport", "build_shards"]

log = logging.getLogger(__name__)

_STATE_DIR = ".build"


@dataclass(frozen=True)
class ShardBuildReport:
    """What :func:`build_shards` wrote.

    Attributes
    ----------
    manifest_path : Path
    n_shards, n_domains, n_residues : int
    total_bytes : int
        Bytes of all shard files.
    built, reused : int
        Shards written by this run / kept from an earlier, interrupted run.
    seconds : float
    """

    manifest_path: Path
    n_shards: int
    n_domains: int
    n_residues: int
    total_bytes: int
    built: int
    reused: int
    seconds: float


def _domain_residues(table: pa.Table) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """Every domain of the index (all splits) with its residue keys, sorted."""
    cols = ["domain", "chain", "resnum", "icode", "resid_str"]
    keys = table.select(cols).group_by(cols, use_threads=False).aggregate([])
    keys = keys.sort_by([(c, "ascending") for c in cols[:4]])
    domain = np.asarray(keys["domain"].to_numpy(zero_copy_only=False), dtype=str)
    chain = keys["chain"].to_pylist()
    resid = keys["resid_str"].to_pylist()
    starts = np.flatnonzero(np.r_[True, domain[1:] != domain[:-1]])
    bounds = np.append(starts, len(domain)).tolist()
    names = domain[starts].tolist()
    chains = [chain[a:b] for a, b in itertools.pairwise(bounds)]
    resids = [resid[a:b] for a, b in itertools.pairwise(bounds)]
    return names, chains, resids


_worker_reader: Hdf5Reader | None = None


def _encode_domain(task: tuple[str, str, list[str], list[str], int]) -> tuple[str, bytes, bytes]:
    """Read, pack and compress one domain (runs in a build worker)."""
    global _worker_reader
    voxel_file, domain, chains, resids, level = task
    if _worker_reader is None or _worker_reader.path != voxel_file:
        _worker_reader = Hdf5Reader(voxel_file)
    packed = _worker_reader.read_domain(domain, np.asarray(chains), np.asarray(resids))
    vox = zstandard.ZstdCompressor(level=level, write_checksum=True).compress(packed.tobytes())
    keys = json.dumps({"domain": domain, "chains": chains, "resids": resids}).encode()
    return domain, vox, keys


def _write_shard(
    path: Path, encoded: list[tuple[str, bytes, bytes]], n_res: list[int], state: dict
) -> ShardEntry:
    """Write one shard atomically; return its manifest entry (with each member's offset).

    Its build record (``state`` plus the entry) is written before the shard is renamed into
    place, so every shard file of the folder is named by a record: what proves it this build's.
    """
    with atomic_path(path) as tmp:
        with wds.TarWriter(str(tmp), encoder=False, mtime=0) as writer:
            for domain, vox, keys in encoded:
                writer.write({"__key__": domain_key(domain), VOX_MEMBER: vox, KEYS_MEMBER: keys})
        # Where each member's data landed, as any tar reader sees it (whatever headers the
        # writer chose); read once here so that readers never parse tar headers.
        with tarfile.open(tmp) as tar:
            offsets = {m.name: (m.offset_data, m.size) for m in tar.getmembers()}
        records = []
        for (domain, vox, keys), n in zip(encoded, n_res, strict=True):
            key = domain_key(domain)
            vox_at, keys_at = offsets[f"{key}.{VOX_MEMBER}"], offsets[f"{key}.{KEYS_MEMBER}"]
            if (vox_at[1], keys_at[1]) != (len(vox), len(keys)):
                raise ShardError(f"{tmp}: tar member sizes of {key} differ from what was written")
            records.append(
                DomainRecord(
                    domain=domain,
                    key=key,
                    n_residues=n,
                    vox_offset=vox_at[0],
                    vox_bytes=len(vox),
                    crc32=zlib.crc32(vox),
                    keys_offset=keys_at[0],
                    keys_bytes=len(keys),
                    keys_crc32=zlib.crc32(keys),
                )
            )
        entry = ShardEntry(
            name=path.name,
            bytes=tmp.stat().st_size,
            sha256=file_sha256(tmp),
            records=tuple(records),
        )
        atomic_write_text(
            path.parent / _STATE_DIR / f"{path.name}.json",
            json.dumps({**state, "entry": entry.to_dict()}),
        )
    return entry


def _inputs_digest(voxels: dict, domains: list[str], chains: list, resids: list) -> str:
    """SHA-256 of what a shard is made from: the voxel file's fingerprint and residue keys.

    Compared on resume, so a shard built from another voxel file or index is rebuilt, not reused.
    """
    blob = json.dumps([voxels, domains, chains, resids], sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def _reusable(
    out: Path, i: int, planned: list[str], settings: dict, inputs: str
) -> ShardEntry | None:
    """The entry of shard ``i`` from an earlier run if it is complete, intact and current."""
    state = out / _STATE_DIR / f"{shard_name(i)}.json"
    path = out / shard_name(i)
    if not (state.is_file() and path.is_file()):
        return None
    try:
        saved = json.loads(state.read_text())
        entry = ShardEntry.from_dict(saved["entry"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    if saved.get("settings") != settings or saved.get("inputs") != inputs:
        return None
    if saved.get("format_version") != FORMAT_VERSION:
        return None
    if [r.domain for r in entry.records] != planned:
        return None
    if path.stat().st_size != entry.bytes or file_sha256(path) != entry.sha256:
        return None
    return entry


_LEFTOVER = temporary_names(r"shard-\d+\.tar|manifest\.json")
_SHARD_FILE = re.compile(r"^shard-\d+\.tar$")


def _own_files(out: Path) -> set[str]:
    """Shard files of ``out`` that its own build records or manifest name (free to replace).

    Leftover temporary files of an interrupted write are removed. Anything else in the folder
    (another program's files, a ``shard-*.tar`` no record names, an unrelated
    ``manifest.json``) is refused: a build replaces only what a build wrote. Shards that only
    the manifest names get a build record, so they stay this build's once the manifest is
    removed.

    Raises
    ------
    ShardError
        Naming every foreign file.
    """
    state = out / _STATE_DIR
    named = {
        p.name.removesuffix(".json")
        for p in state.glob("shard-*.tar.json")
        if _SHARD_FILE.match(p.name.removesuffix(".json"))
    }
    foreign: list[str] = []
    listed: dict[str, dict] = {}  # shard name: its manifest entry
    manifest = out / MANIFEST_NAME
    if manifest.is_file():
        try:
            d = json.loads(manifest.read_text())
            if d.get("format") != FORMAT_NAME:
                raise ValueError("another format")
            listed = {str(e["name"]): e for e in d["shards"]}
            if not all(_SHARD_FILE.match(n) for n in listed):
                raise ValueError("names that are not shard files")
        except (ValueError, KeyError, TypeError, AttributeError):
            foreign.append(MANIFEST_NAME)
            listed = {}
    for entry in sorted(out.iterdir()):
        if entry.name in (_STATE_DIR, MANIFEST_NAME) or entry.name in named | listed.keys():
            continue
        if _LEFTOVER.match(entry.name) and entry.is_file():
            entry.unlink()
            continue
        foreign.append(entry.name + ("/" if entry.is_dir() else ""))
    if foreign:
        raise ShardError(
            f"shard folder {out} holds {len(foreign)} entries that no voxelflex shard build of "
            f"this folder wrote (no build record in {state} or manifest names them): {foreign}; "
            "shards build replaces only its own files: move those files away, or choose a new "
            "or empty --output folder"
        )
    for name in listed.keys() - named:  # not reusable (no settings or inputs): rebuilt
        if (out / name).is_file():
            atomic_write_text(state / f"{name}.json", json.dumps({"entry": listed[name]}))
    return {n for n in named | listed.keys() if (out / n).is_file()}


def _results(tasks: list, workers: int) -> Iterator[tuple[str, bytes, bytes]]:
    global _worker_reader
    if workers <= 1:
        try:
            yield from map(_encode_domain, tasks)
        finally:  # in this process: do not keep the voxel file open after the build
            if _worker_reader is not None:
                _worker_reader.close()
            _worker_reader = None
        return
    # fork: workers inherit the imported modules; the parent holds no open HDF5 handle.
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield from pool.imap(_encode_domain, tasks, chunksize=4)


def build_shards(
    index: LoadedIndex | str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    domains_per_shard: int = DEFAULT_DOMAINS_PER_SHARD,
    workers: int = 1,
    seed: int = 0,
    zstd_level: int = DEFAULT_ZSTD_LEVEL,
    progress: bool = True,
) -> ShardBuildReport:
    """Write the voxels of every domain in ``index`` as shards into ``out_dir``.

    Parameters
    ----------
    index : LoadedIndex or path
        Sample index (all splits are included); its ``meta.voxel_file`` is read.
    out_dir : path
        Shard folder; shards and ``manifest.json`` go here. Rerunning with the same settings,
        voxel file (size, mtime) and residue keys reuses complete shards (checked by SHA-256)
        and writes only the missing or outdated ones.
    domains_per_shard : int
        Domains per tar file (default 64: ≈85 shards for mdCATH's 5,398 domains).
    workers : int
        Processes reading and compressing domains (1: in this process).
    seed : int
        Seed of the domain order across shards.
    zstd_level : int
        zstd compression level of the voxel members.
    progress : bool
        Show a progress bar over domains.
    """
    t0 = time.perf_counter()
    if not isinstance(domains_per_shard, int) or domains_per_shard < 1:
        raise ShardError(f"domains_per_shard must be a positive integer, got {domains_per_shard!r}")
    if isinstance(index, str | os.PathLike):
        index = read_index(index)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ShardError(f"--output {out} is a file; shards go into a folder: name a folder")
    out.mkdir(parents=True, exist_ok=True)
    with command_log(out, "shards build"):
        ours = _own_files(out)
        # No manifest while shards change: readers never see a half-updated folder as complete.
        (out / MANIFEST_NAME).unlink(missing_ok=True)
        names, chains, resids = _domain_residues(index.table)
        keys = [domain_key(d) for d in names]
        if len(set(keys)) != len(keys):
            raise ShardError(
                f"{index.path}: domain names collide once dots/slashes become "
                "'_' (record keys); rename the domains in the voxel file"
            )
        order = np.random.default_rng(seed).permutation(len(names))
        groups = [
            order[i : i + domains_per_shard].tolist()
            for i in range(0, len(names), domains_per_shard)
        ]
        settings = {"zstd_level": zstd_level, "domains_per_shard": domains_per_shard, "seed": seed}
        voxel_file = index.meta.voxel_file
        voxels = {k: index.meta.fingerprints["voxel_file"][k] for k in ("size", "mtime_ns")}
        inputs = [
            _inputs_digest(
                voxels, [names[d] for d in g], [chains[d] for d in g], [resids[d] for d in g]
            )
            for g in groups
        ]
        entries = [
            _reusable(out, i, [names[d] for d in g], settings, inputs[i])
            for i, g in enumerate(groups)
        ]
        pending = [i for i, e in enumerate(entries) if e is None]
        tasks = [
            (voxel_file, names[d], chains[d], resids[d], zstd_level)
            for i in pending
            for d in groups[i]
        ]
        log.info(
            "building %d of %d shards (%d reused) from %s, %d workers",
            len(pending),
            len(groups),
            len(groups) - len(pending),
            voxel_file,
            workers,
        )
        # The shards are recorded as built from the voxel file the index fingerprinted: a file
        # rewritten while they are read would leave shards of other voxels under that name.
        start = file_fingerprint(voxel_file) if os.path.isfile(voxel_file) else None
        with tqdm(total=len(tasks), unit="domain", disable=not progress, desc="shards") as bar:
            results = _results(tasks, workers)
            for i in pending:
                encoded = []
                for _ in groups[i]:
                    encoded.append(next(results))
                    bar.update()
                entries[i] = _write_shard(
                    out / shard_name(i),
                    encoded,
                    [len(chains[d]) for d in groups[i]],
                    {"format_version": FORMAT_VERSION, "settings": settings, "inputs": inputs[i]},
                )
            results.close()
        if start is not None and (detail := fingerprint_change(start)):
            for i in pending:  # read from either version: never reused by a rerun
                (out / shard_name(i)).unlink(missing_ok=True)
                (out / _STATE_DIR / f"{shard_name(i)}.json").unlink(missing_ok=True)
            raise ShardError(
                f"voxel file {voxel_file} changed while the shards were built ({detail}); "
                f"rebuild the index ({index.path}) with `voxelflex index build`, "
                f"then the shards with `voxelflex shards build --index INDEX --output {out}`"
            )
        planned = {shard_name(i) for i in range(len(groups))}
        for name in sorted(ours - planned):
            log.info("removing %s, left over from an earlier build with other settings", out / name)
            (out / name).unlink(missing_ok=True)
            (out / _STATE_DIR / f"{name}.json").unlink(missing_ok=True)
        manifest = ShardManifest(
            frame=index.meta.frame,
            settings=settings,
            source={
                "voxel_file": str(voxel_file),
                "index": redact_url(str(index.path)),  # the manifest is published with the shards
                "voxel_fingerprint": index.meta.fingerprints["voxel_file"],
            },
            shards=tuple(entries),
        )
        path = manifest.save(out)
        return ShardBuildReport(
            manifest_path=path,
            n_shards=len(entries),
            n_domains=manifest.n_domains,
            n_residues=manifest.n_residues,
            total_bytes=manifest.total_bytes,
            built=len(pending),
            reused=len(groups) - len(pending),
            seconds=time.perf_counter() - t0,
        )
