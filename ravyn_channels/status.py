"""WebSocket close codes (RFC 6455 section 7.4) used by ravyn_channels.

The names follow Starlette's ``status`` module so handlers port unchanged.
"""

from __future__ import annotations

__all__ = [
    "WS_1000_NORMAL_CLOSURE",
    "WS_1001_GOING_AWAY",
    "WS_1002_PROTOCOL_ERROR",
    "WS_1003_UNSUPPORTED_DATA",
    "WS_1005_NO_STATUS_RCVD",
    "WS_1006_ABNORMAL_CLOSURE",
    "WS_1007_INVALID_FRAME_PAYLOAD_DATA",
    "WS_1008_POLICY_VIOLATION",
    "WS_1009_MESSAGE_TOO_BIG",
    "WS_1010_MANDATORY_EXT",
    "WS_1011_INTERNAL_ERROR",
    "WS_1012_SERVICE_RESTART",
    "WS_1013_TRY_AGAIN_LATER",
    "WS_1014_BAD_GATEWAY",
    "check_sendable",
    "is_sendable",
]

WS_1000_NORMAL_CLOSURE = 1000
WS_1001_GOING_AWAY = 1001
WS_1002_PROTOCOL_ERROR = 1002
WS_1003_UNSUPPORTED_DATA = 1003
WS_1005_NO_STATUS_RCVD = 1005
WS_1006_ABNORMAL_CLOSURE = 1006
WS_1007_INVALID_FRAME_PAYLOAD_DATA = 1007
WS_1008_POLICY_VIOLATION = 1008
WS_1009_MESSAGE_TOO_BIG = 1009
WS_1010_MANDATORY_EXT = 1010
WS_1011_INTERNAL_ERROR = 1011
WS_1012_SERVICE_RESTART = 1012
WS_1013_TRY_AGAIN_LATER = 1013
WS_1014_BAD_GATEWAY = 1014

#: Codes a server may put in a close frame (1005, 1006 and 1015 are reserved
#: for reporting and never sent; 1010 is for clients).
_SENDABLE_RFC = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1011, 1012, 1013, 1014})


def is_sendable(code: int) -> bool:
    """Whether a server may send ``code`` in a close frame."""
    return code in _SENDABLE_RFC or 3000 <= code <= 4999


def check_sendable(code: int) -> None:
    """Raise ``ValueError`` naming the valid ranges unless ``code`` may be sent."""
    if not is_sendable(code):
        raise ValueError(
            f"{code} is not a close code a server may send; use 1000-1003, 1007-1014 "
            "or 3000-4999 (see ravyn_channels.status)."
        )
