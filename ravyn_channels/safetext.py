"""Untrusted text made safe to print: one line, no terminal or bidi tricks.

Paths, origins, subprotocols, headers, close reasons and presence meta come
from clients. Written raw, ``%0D%0A`` in a path forges a log line and U+202E
reverses what a terminal shows. :func:`escape` turns every such character into
a visible ``\\uXXXX`` (``\\r``, ``\\n``, ``\\t`` for those three) and caps the
length; every log line of ravyn_channels passes client values through it.
"""

from __future__ import annotations

import re

__all__ = ["escape", "escape_json"]

# C0 and C1 controls, DEL, line/paragraph separators, and the bidi controls
# (Unicode's "Trojan Source" set: ALM, LRM, RLM, LRE-RLO, LRI-PDI).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# The same without C0 controls: json.dumps escapes those, and its own newlines are layout.
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SHORT = {"\r": "\\r", "\n": "\\n", "\t": "\\t"}


def _replace(match: re.Match[str]) -> str:
    char = match.group()
    return _SHORT.get(char) or f"\\u{ord(char):04x}"


def escape(value: object, limit: int | None = 1000) -> str:
    """``str(value)`` with control and bidi characters escaped, cut to ``limit`` characters."""
    text = value if isinstance(value, str) else str(value)
    if limit is not None and len(text) > limit:
        text = f"{text[:limit]}…({len(text) - limit} more)"
    return _UNSAFE.sub(_replace, text)


def escape_json(text: str) -> str:
    """JSON text (from ``json.dumps``) with bidi and C1 characters as ``\\uXXXX``: the same data."""
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
