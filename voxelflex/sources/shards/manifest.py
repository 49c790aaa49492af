"""The shard manifest: what a shard folder holds, versioned and checked on load.

``manifest.json`` lists every shard (file name, byte size, SHA-256, domains in write order) and
every domain (record key, residue count, and for each of its two tar members the byte offset of
its data in the shard, its size and CRC-32), plus the frame and compression settings. The
offsets let a reader fetch a domain's record alone (``pread``, ``mmap``, an HTTP range request)
without parsing tar headers. It is written last and atomically, so a folder with a
manifest is complete; see the Shards section of ``docs/formats.md`` for the full format.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from voxelflex.atomic import atomic_write_text
from voxelflex.errors import ShardError
from voxelflex.frame import PACKED_BYTES, FrameSpec
from voxelflex.index import IndexMeta

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "KEYS_MEMBER",
    "MANIFEST_NAME",
    "VOX_MEMBER",
    "DomainRecord",
    "ShardEntry",
    "ShardManifest",
    "domain_key",
    "file_sha256",
    "shard_name",
]

FORMAT_NAME = "voxelflex-shards"
FORMAT_VERSION = 3  # 2: voxel-file fingerprint, keys.json checksums; 3: member byte offsets
# What identifies the voxel file shards were built from (as the index records it).
FINGERPRINT_KEYS = ("size", "mtime_ns", "key_hash")
MANIFEST_NAME = "manifest.json"
VOX_MEMBER = "vox.zst"  # zstd frame of the stacked packed rows, uint8 (n_residues, 5789)
KEYS_MEMBER = "keys.json"  # {"domain", "chains", "resids"} in row order


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _describe(fingerprint: dict) -> str:
    return ", ".join(f"{k} {fingerprint.get(k)}" for k in FINGERPRINT_KEYS)


def shard_name(i: int) -> str:
    """File name of shard ``i`` (zero-padded, so brace patterns and sorting work)."""
    return f"shard-{i:06d}.tar"


def domain_key(domain: str) -> str:
    """WebDataset record key of a domain: no dots or slashes (they delimit keys and paths)."""
    return domain.replace(".", "_").replace("/", "_")


@dataclass(frozen=True)
class DomainRecord:
    """One domain's record in a shard.

    Attributes
    ----------
    domain : str
        HDF5 domain key.
    key : str
        Record key in the tar (``<key>.vox.zst``, ``<key>.keys.json``).
    n_residues : int
    vox_offset : int
        Byte offset of the compressed voxel member's data in the shard file.
    vox_bytes : int
        Size of the compressed voxel member.
    crc32 : int
        CRC-32 of the compressed voxel member.
    keys_offset : int
        Byte offset of the ``keys.json`` member's data in the shard file.
    keys_bytes : int
        Size of the ``keys.json`` member.
    keys_crc32 : int
        CRC-32 of the ``keys.json`` member (it names the domain and its residues).
    """

    domain: str
    key: str
    n_residues: int
    vox_offset: int
    vox_bytes: int
    crc32: int
    keys_offset: int
    keys_bytes: int
    keys_crc32: int

    @property
    def start(self) -> int:
        """First byte of the record's member data in the shard."""
        return min(self.vox_offset, self.keys_offset)

    @property
    def end(self) -> int:
        """One past the record's last member byte (the span holds the header in between)."""
        return max(self.vox_offset + self.vox_bytes, self.keys_offset + self.keys_bytes)

    @property
    def payload_bytes(self) -> int:
        """Bytes of the two members' data."""
        return self.vox_bytes + self.keys_bytes


@dataclass(frozen=True)
class ShardEntry:
    """One shard file: name, size, checksum and its domain records in write order."""

    name: str
    bytes: int
    sha256: str
    records: tuple[DomainRecord, ...]

    @property
    def n_residues(self) -> int:
        return sum(r.n_residues for r in self.records)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "n_residues": self.n_residues,
            "records": [asdict(r) for r in self.records],
        }

    @classmethod
    def from_dict(cls, d: dict) -> ShardEntry:
        return cls(
            name=d["name"],
            bytes=int(d["bytes"]),
            sha256=d["sha256"],
            records=tuple(DomainRecord(**r) for r in d["records"]),
        )

    def check_offsets(self, *, where: str) -> None:
        """Refuse records that overlap or reach past the end of the shard (a damaged manifest)."""
        spans = sorted((r.start, r.end, r.domain) for r in self.records)
        for (_, end, domain), (start, _, after) in itertools.pairwise(spans):
            if start < end:
                raise ShardError(
                    f"{where}: records of domains {domain} and {after} overlap in {self.name}; "
                    "rebuild with `voxelflex shards build`"
                )
        if spans and (spans[0][0] < 0 or spans[-1][1] > self.bytes):
            raise ShardError(
                f"{where}: a record of {self.name} lies outside its {self.bytes} bytes; rebuild "
                "with `voxelflex shards build`"
            )


@dataclass(frozen=True)
class ShardManifest:
    """Contents of a shard folder.

    Attributes
    ----------
    frame : FrameSpec
    settings : dict
        ``zstd_level``, ``domains_per_shard``, ``seed`` used by the build.
    source : dict
        Where the voxels came from: ``voxel_file``, ``index`` paths (a URL without its
        credentials, :func:`voxelflex.paths.redact_url`), and ``voxel_fingerprint``,
        the fingerprint the index recorded for its voxel file (``path``, ``size``,
        ``mtime_ns``, ``key_hash``).
    shards : tuple of ShardEntry
    format_version : int
    """

    frame: FrameSpec
    settings: dict
    source: dict
    shards: tuple[ShardEntry, ...]
    format_version: int = FORMAT_VERSION

    def index_mismatch(self, index_meta: IndexMeta, *, index_path: str) -> str | None:
        """Why an index does not belong to these shards (another voxel file, or the voxel file
        changed since one of them was built); ``None`` when the fingerprints agree.

        Parameters
        ----------
        index_meta : IndexMeta
            Of the index about to be served from these shards.
        index_path : str
            The index, for the message.

        Returns
        -------
        str or None
            The message: both voxel files (or the one that changed) and which of index and
            shard folder to replace.
        """
        ours = self.source["voxel_fingerprint"]
        theirs = index_meta.fingerprints.get("voxel_file", {})
        if all(ours.get(k) == theirs.get(k) for k in FINGERPRINT_KEYS):
            return None
        built = (
            f"the shards were built from voxel file {ours.get('path')} ({_describe(ours)}) and "
            f"index {index_path} from voxel file {theirs.get('path')} ({_describe(theirs)})"
        )
        if ours.get("path") == theirs.get("path"):  # the file changed between the two builds
            return (
                f"{built}: the shards are stale; rebuild them with "
                f"`voxelflex shards build --index {index_path}`"
            )
        return (
            f"{built}: either the index or the shard folder is the wrong one; pass the index "
            f"the shards were built for ({self.source.get('index')}), or build shards for this "
            f"index into another folder with `voxelflex shards build --index {index_path} -o DIR`"
        )

    def check_index(self, index_meta: IndexMeta, *, index_path: str, where: str) -> None:
        """Refuse an index built from another voxel file than these shards (or stale shards).

        Parameters
        ----------
        index_meta : IndexMeta
            Of the index about to be served from these shards.
        index_path, where : str
            The index and the shard folder, for the message.

        Raises
        ------
        ShardError
            The voxel-file fingerprints differ (size, mtime or key listing).
        """
        if (why := self.index_mismatch(index_meta, index_path=index_path)) is not None:
            raise ShardError(f"{where}: {why}")

    def domain_map(self) -> dict[str, tuple[int, DomainRecord]]:
        """Domain → (shard position, record)."""
        return {r.domain: (i, r) for i, s in enumerate(self.shards) for r in s.records}

    @property
    def n_domains(self) -> int:
        return sum(len(s.records) for s in self.shards)

    @property
    def n_residues(self) -> int:
        return sum(s.n_residues for s in self.shards)

    @property
    def total_bytes(self) -> int:
        return sum(s.bytes for s in self.shards)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT_NAME,
                "format_version": self.format_version,
                "frame": self.frame.to_dict(),
                "packed_bytes": PACKED_BYTES,
                "members": {"voxels": VOX_MEMBER, "keys": KEYS_MEMBER},
                "settings": self.settings,
                "source": self.source,
                "totals": {
                    "shards": len(self.shards),
                    "domains": self.n_domains,
                    "residues": self.n_residues,
                    "bytes": self.total_bytes,
                },
                "domain_shard": {r.domain: i for i, s in enumerate(self.shards) for r in s.records},
                "shards": [s.to_dict() for s in self.shards],
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str, *, where: str) -> ShardManifest:
        """Parse and check a manifest (format, version, packed row size, domain map)."""
        fix = "rebuild with `voxelflex shards build`"
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ShardError(f"{where}: manifest is not valid JSON ({exc}); {fix}") from exc
        if d.get("format") != FORMAT_NAME:
            raise ShardError(f"{where}: not a voxelflex shard manifest; {fix}")
        if d.get("format_version") != FORMAT_VERSION:
            raise ShardError(
                f"{where}: shard format version {d.get('format_version')} unsupported, "
                f"expected {FORMAT_VERSION}; {fix}"
            )
        if d.get("packed_bytes") != PACKED_BYTES:
            raise ShardError(
                f"{where}: packed rows of {d.get('packed_bytes')} bytes, expected {PACKED_BYTES}; "
                f"{fix}"
            )
        try:
            manifest = cls(
                frame=FrameSpec.from_dict(d["frame"]),
                settings=d["settings"],
                source=d["source"],
                shards=tuple(ShardEntry.from_dict(s) for s in d["shards"]),
            )
            listed = {k: int(v) for k, v in d["domain_shard"].items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise ShardError(
                f"{where}: manifest field missing or malformed ({exc!r}); {fix}"
            ) from exc
        if any(
            not isinstance(getattr(r, f.name), int)
            for s in manifest.shards
            for r in s.records
            for f in fields(r)
            if f.type == "int"
        ):
            raise ShardError(
                f"{where}: a record's offset, size or checksum is not an integer; {fix}"
            )
        if not isinstance(manifest.source.get("voxel_fingerprint"), dict):
            raise ShardError(f"{where}: manifest lacks source.voxel_fingerprint; {fix}")
        for shard in manifest.shards:
            shard.check_offsets(where=where)
        derived = {dom: i for dom, (i, _) in manifest.domain_map().items()}
        if derived != listed or len(derived) != manifest.n_domains:
            raise ShardError(
                f"{where}: domain_shard map disagrees with the shard list (or a domain is in "
                f"two shards); {fix}"
            )
        return manifest

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``manifest.json`` atomically into ``folder``."""
        path = Path(folder) / MANIFEST_NAME
        atomic_write_text(path, self.to_json())
        return path

    @classmethod
    def load(cls, folder: str | os.PathLike) -> ShardManifest:
        """Read and check ``folder/manifest.json``."""
        path = Path(folder) / MANIFEST_NAME
        if not Path(folder).is_dir():
            kind = "is a file, not" if Path(folder).exists() else "does not exist; give"
            raise ShardError(
                f"{folder} {kind} the shard folder (the --output of `voxelflex shards build`, "
                f"which holds {MANIFEST_NAME} and the shard-*.tar files)"
            )
        if not path.is_file():
            raise ShardError(
                f"{folder}: no {MANIFEST_NAME}; the folder is not a complete shard set "
                "(an interrupted build?): run `voxelflex shards build` to create or finish it"
            )
        return cls.from_json(path.read_text(), where=str(path))
