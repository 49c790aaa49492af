"""Counted nouns in messages: one rule instead of an inline plural in every message."""

from __future__ import annotations

__all__ = ["counted"]


def counted(n: int, noun: str) -> str:
    """``counted(1, "shard")`` -> ``"1 shard"``, ``counted(3, "shard")`` -> ``"3 shards"``
    (regular plurals; write the noun so that an added ``s`` is its plural)."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
