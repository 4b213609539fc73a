"""ravyn_channels: Ravyn/FastAPI-style websocket handlers on Django Channels.

    from ravyn_channels import Ravyn, websocket, WebSocket, WebSocketDisconnect
    from ravyn_channels import Query, Header, Cookie, Inject   # handler parameters
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import status
from .denial import DenialResponse, WebSocketDenial
from .history import HistoryConfig, HistoryPage, HistoryUnavailable, Position, Replay
from .limits import RateLimit, TooManyRooms
from .manager import ConnectionManager
from .params import Cookie, Header, Inject, Query
from .presence import Member, OnlineUser
from .rooms import ChannelsGroup
from .routing import WebSocketRoute, websocket
from .websocket import WebSocket, WebSocketDisconnect, WebSocketException, WebSocketPayloadError, WebSocketState

if TYPE_CHECKING:
    from .asgi import Ravyn

__all__ = [
    "ChannelsGroup",
    "ConnectionManager",
    "Cookie",
    "DenialResponse",
    "Header",
    "HistoryConfig",
    "HistoryPage",
    "HistoryUnavailable",
    "Inject",
    "Member",
    "OnlineUser",
    "Position",
    "Query",
    "RateLimit",
    "Ravyn",
    "Replay",
    "TooManyRooms",
    "WebSocket",
    "WebSocketDenial",
    "WebSocketDisconnect",
    "WebSocketException",
    "WebSocketPayloadError",
    "WebSocketRoute",
    "WebSocketState",
    "status",
    "websocket",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Ravyn pulls in Channels' routing and Django's ASGI handler: load it on first use.
    if name == "Ravyn":
        from .asgi import Ravyn

        return Ravyn
    raise AttributeError(f"module 'ravyn_channels' has no attribute {name!r}")
