"""What ravyn_channels adjusts in the server it runs under.

daphne sends close frames through autobahn's ``sendClose``, which accepts only
1000 and 3000-4999: any RFC code (1001, 1003, 1007-1014) makes it raise and
the connection hangs. It also drops empty messages, ignores the close reason,
and fails oversized frames by dropping the TCP connection instead of closing
with 1009 (at a fixed 1 MiB), and its SIGTERM handler stops at the first
connection without an application, so no handler hears of shutdown.
``install_daphne_adapter()`` fixes those points, and only those, by wrapping
``WebSocketProtocol.handle_reply`` and ``onConnect`` and replacing
``Server.kill_all_applications``; ``MAX_MESSAGE_SIZE`` becomes daphne's limit.

When the adapter is switched off (``RAVYN_CHANNELS["PATCH_DAPHNE"] = False``)
under daphne, ``close_code()`` mirrors RFC codes into the private range:
1001 -> 4001, 1009 -> 4009, 1011 -> 4011 (``4000 + code - 1000``).
uvicorn and other servers send every code as given.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from . import status
from .conf import get_settings

__all__ = ["close_code", "daphne_adapter_installed", "install_daphne_adapter"]

logger = logging.getLogger("ravyn_channels")

_installed = False


def daphne_adapter_installed() -> bool:
    """Whether daphne's protocol has been adapted in this process."""
    return _installed


def close_code(code: int) -> int:
    """The code to hand to the server for a close with ``code``."""
    if code == 1000 or code >= 3000 or _installed or "daphne.ws_protocol" not in sys.modules:
        return code
    return 4000 + (code - 1000)


def install_daphne_adapter() -> bool:
    """Adapt daphne's ``WebSocketProtocol`` (idempotent). Returns whether it is installed."""
    global _installed
    if _installed:
        return True
    if not get_settings().PATCH_DAPHNE:
        return False
    try:
        from autobahn.websocket.protocol import WebSocketProtocol as AutobahnProtocol
        from autobahn.websocket.utf8validator import Utf8Validator  # noqa: F401 (present check)
        from daphne.server import Server
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:
        return False

    original_reply = WebSocketProtocol.handle_reply
    original_connect = WebSocketProtocol.onConnect

    def handle_reply(self: Any, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if self.state == AutobahnProtocol.STATE_OPEN:
            if kind == "websocket.close":
                code = message.get("code") or status.WS_1000_NORMAL_CLOSURE
                reason = message.get("reason") or None
                payload = reason.encode("utf-8")[:123] if reason else None
                self.sendCloseFrame(code=code, reasonUtf8=payload, isReply=False)
                return
            if kind == "websocket.send":
                data_bytes = message.get("bytes")
                data_text = message.get("text")
                if data_bytes is not None and data_text is not None:
                    raise ValueError(
                        f"Got invalid WebSocket reply message {message!r}: it has both "
                        "'bytes' and 'text'; send one of them."
                    )
                if data_bytes is not None:
                    self.sendMessage(bytes(data_bytes), True)
                elif data_text is not None:
                    self.sendMessage(data_text.encode("utf-8"), False)
                return
        original_reply(self, message)

    def onConnect(self: Any, request: Any) -> Any:
        # Fail oversized or invalid frames with a close frame (1009, 1002, 1007)
        # instead of dropping the TCP connection.
        self.failByDrop = False
        # daphne's limit is a fixed 1 MiB; MAX_MESSAGE_SIZE is the server-wide ceiling.
        limit = get_settings().MAX_MESSAGE_SIZE
        self.maxMessagePayloadSize = self.maxFramePayloadSize = limit
        return original_connect(self, request)

    def kill_all_applications(self: Any) -> Any:
        # daphne's own version stops at the first connection that has no
        # application (KeyError), so on SIGTERM no handler was ever cancelled.
        import asyncio

        from twisted.internet import defer

        pending = []
        for details in self.connections.values():
            instance = details.get("application_instance")
            if instance is not None and not instance.done():
                instance.cancel()
                pending.append(instance)
        logger.info("Closing %d websocket connection(s) for shutdown", len(pending))
        waiting = defer.Deferred.fromFuture(asyncio.gather(*pending, return_exceptions=True))
        waiting.addErrback(lambda _: None)
        return waiting

    Server.kill_all_applications = kill_all_applications
    handle_reply.__wrapped__ = original_reply  # type: ignore[attr-defined]
    onConnect.__wrapped__ = original_connect  # type: ignore[attr-defined]
    WebSocketProtocol.handle_reply = handle_reply
    WebSocketProtocol.onConnect = onConnect
    _installed = True
    logger.debug("daphne adapter installed (RFC close codes, empty messages, 1009)")
    return True
