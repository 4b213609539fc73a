"""Per-connection limits a hostile client could otherwise push without bound."""

from __future__ import annotations

from . import status
from .websocket import WebSocketException

__all__ = ["TooManyRooms"]


class TooManyRooms(WebSocketException):
    """``ConnectionManager.connect`` refused a room: the connection is in ``limit`` rooms of that manager already.

    A ``WebSocketException`` with code 1008: catch it to answer the client and
    keep the connection; uncaught, it closes the connection with 1008 and one
    INFO line. The limit is ``RAVYN_CHANNELS["MAX_ROOMS_PER_CONNECTION"]``.
    """

    def __init__(self, room: str, limit: int):
        self.room = room
        self.limit = limit
        super().__init__(status.WS_1008_POLICY_VIOLATION, f"too many rooms (limit {limit})")
