"""Credentials out of text: every message, log line and stored description of a URL.

A module of its own, importing nothing of voxelflex, so that :mod:`voxelflex.errors` can redact
every error's message at construction (library callers read ``str(exc)`` too).
"""

from __future__ import annotations

import re

__all__ = ["redact_url"]

# The user information of a URL (``https://user:token@host``): what aiohttp sends as credentials.
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
# A URL's query (``?X-Amz-Signature=...``, ``?sig=...``): signatures and tokens, up to a space,
# a quote or the end, less the punctuation of the sentence ("URL?sig=x: not found").
_QUERY = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+://[^\s?'\"]*)\?[^\s'\"]*?(?=[:;,.)]*(?:[\s'\"]|$))")


def redact_url(text: str) -> str:
    """``text`` with the user information and the query of every URL in it replaced by ``***``.

    Messages and logs name URLs; credentials given in one (``https://user:token@host/shards``,
    ``https://host/shards?sig=...``) must not end up in a log file, a terminal scrollback or a
    missing report.
    """
    return _QUERY.sub(r"\1?***", _USERINFO.sub("***@", text))
