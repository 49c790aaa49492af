"""The names of voxelflex's pluggable parts, and nothing else: the one list of each.

A :class:`Registry` maps a name to ``"module:attribute"`` and imports it on first use, so the
config, the CLI and the docs can list and check names without importing torch or h5py. Adding a
sample source, an architecture or a temperature conditioning is one new file plus one line
here (or, from outside the package, :meth:`Registry.register`).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

from voxelflex.errors import ConfigError

__all__ = ["ARCHITECTURES", "CONDITIONINGS", "PRESETS", "SOURCES", "Registry"]


class Registry:
    """Names → implementations, imported lazily.

    Parameters
    ----------
    kind : str
        What the entries are, for messages (``"sample source"``).
    key : str
        The config key that chooses an entry (``"loader.source"``), for messages.
    entries : mapping of str -> str
        Name → ``"package.module:attribute"``.
    """

    def __init__(self, kind: str, key: str, entries: Mapping[str, str]) -> None:
        self.kind = kind
        self.key = key
        self._entries: dict[str, Any] = dict(entries)

    def names(self) -> tuple[str, ...]:
        """Registered names, in registration order."""
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str) -> Any:
        """The implementation registered as ``name`` (imported now if it was not yet).

        Raises
        ------
        ConfigError
            ``name`` is not registered; the message lists the valid names.
        """
        if name not in self._entries:
            raise ConfigError(
                f"unknown {self.kind} {name!r} (config key '{self.key}'); valid: "
                + ", ".join(self._entries)
            )
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attr = entry.partition(":")
            entry = getattr(importlib.import_module(module), attr)
            self._entries[name] = entry
        return entry

    def register(self, name: str, implementation: Any) -> None:
        """Add (or replace) ``name``: an object, or a ``"module:attribute"`` string."""
        self._entries[name] = implementation

    def unregister(self, name: str) -> None:
        """Remove ``name`` (what :meth:`register` added)."""
        self._entries.pop(name, None)


SOURCES = Registry(
    "sample source",
    "loader.source",
    {
        "hdf5": "voxelflex.sources.hdf5:Hdf5Source",
        "shards": "voxelflex.sources.shards.reader:ShardSource",
    },
)
ARCHITECTURES = Registry(
    "architecture",
    "model.name",
    {
        "densenet3d": "voxelflex.models.densenet3d:DenseNet3DTrunk",
        "dilated_resnet3d": "voxelflex.models.dilated_resnet3d:DilatedResNet3DTrunk",
        "multipath": "voxelflex.models.multipath:MultipathTrunk",
        "features_only": "voxelflex.models.no_voxels:NoVoxelsTrunk",
    },
)
CONDITIONINGS = Registry(
    "temperature conditioning",
    "model.conditioning",
    {
        "head": "voxelflex.models.conditioning:HeadConditioning",
        "film": "voxelflex.models.conditioning:FilmConditioning",
    },
)
# Size presets every architecture defines (its class attribute ``PRESETS``).
PRESETS: tuple[str, ...] = ("tiny", "small", "base")
