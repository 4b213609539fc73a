"""What ravyn_channels adjusts in the server it runs under.

daphne (4.2) falls short of DESIGN.md's close-code table and of bounded memory
in a few precise places, each fixed here by wrapping one daphne method:

- ``WebSocketProtocol.handle_reply``: autobahn's ``sendClose`` accepts only 1000
  and 3000-4999 (any RFC code such as 1001, 1003, 1007-1014 makes it raise and
  the connection hangs) and daphne drops the close reason and empty messages.
  Closes now go through ``sendCloseFrame`` with code and reason; empty
  messages are sent. A client whose unsent data exceeds ``SEND_BUFFER_LIMIT``
  (it stopped reading) is dropped instead of buffering without limit.
- ``WebSocketProtocol.onConnect``: a non-ASCII ``Sec-WebSocket-Protocol`` header
  gets HTTP 400 instead of a 500 and a traceback; oversized or invalid frames get a close frame
  (1009, 1002, 1007) instead of a TCP reset (``failByDrop = False``), and
  ``MAX_MESSAGE_SIZE`` replaces daphne's fixed 1 MiB limit.
- Writes (every frame: data, close, pong) go to the socket at once when
  nothing is waiting in Twisted's buffer, as asyncio's own transports do;
  only what the kernel does not take is left to Twisted. Twisted alone
  registers the socket for writing and writes it on the next loop turn, once
  per frame when the application yields between frames: a broadcast to N
  clients then costs 2N ``epoll_ctl`` calls and N reactor callbacks more.
- ``Server.create_application``: the application's input queue pauses reading
  from the socket while ``RECEIVE_QUEUE_LIMIT`` messages wait, so a flooding
  client meets TCP backpressure instead of growing the server's memory.
- ``Server.kill_all_applications``: daphne's version stops at the first
  connection with no application (``KeyError``), so on SIGTERM no handler was
  cancelled; ours cancels them all, and each closes its client with 1001.

With ``RAVYN_CHANNELS["PATCH_DAPHNE"] = False`` nothing is changed and, under
daphne, ``close_code()`` mirrors RFC codes into the private range:
1001 -> 4001, 1009 -> 4009, 1011 -> 4011 (``4000 + code - 1000``).
uvicorn and other servers send every code as given.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from functools import partial
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


class FlowControlQueue(asyncio.Queue):  # type: ignore[type-arg]
    """An application input queue that pauses the socket while ``high`` messages wait."""

    def __init__(self, transport: Any, high: int):
        super().__init__()
        self._transport = transport
        self._high = high
        self._low = max(high // 4, 1)
        self.paused = False

    def put_nowait(self, item: Any) -> None:
        super().put_nowait(item)
        if not self.paused and self.qsize() >= self._high:
            self.paused = True
            self._transport.pauseProducing()

    def get_nowait(self) -> Any:
        item = super().get_nowait()
        if self.paused and self.qsize() <= self._low:
            self.paused = False
            self._transport.resumeProducing()
        return item


def _unsent_bytes(transport: Any) -> int:
    """Bytes a Twisted TCP transport has accepted but not yet written to the socket."""
    try:
        return len(transport.dataBuffer) - transport.offset + transport._tempDataLen  # type: ignore[no-any-return]
    except AttributeError:  # not a Twisted FileDescriptor transport
        return 0


_backlog = False


def take_backlog() -> bool:
    """Whether a write since the last call was left to Twisted's buffer (the client is behind); resets it."""
    global _backlog
    was, _backlog = _backlog, False
    return was


def _write_now(transport: Any, later: Any, data: bytes) -> None:
    """``transport.write`` that sends at once when Twisted holds nothing unsent (order is kept)."""
    global _backlog
    if (
        transport.connected
        and not transport.disconnecting
        and not transport._tempDataLen
        and transport.offset == len(transport.dataBuffer)
        and data
    ):
        sent = transport.writeSomeData(data)
        if isinstance(sent, int) and sent > 0:
            if sent == len(data):
                return
            data = data[sent:]
        # Nothing sent (kernel buffer full) or the connection failed: Twisted
        # buffers it, and its next write attempt reports a lost connection.
    _backlog = True
    later(data)


def _write_eagerly(protocol: Any) -> None:
    """Route ``protocol``'s writes through ``_write_now`` (plain TCP transports only, not TLS)."""
    from twisted.internet.tcp import Connection

    transport = protocol.transport
    if isinstance(transport, Connection) and "write" not in vars(transport):
        transport.write = partial(_write_now, transport, transport.write)  # type: ignore[method-assign]


def _send(protocol: Any, message: dict[str, Any]) -> None:
    data_bytes = message.get("bytes")
    data_text = message.get("text")
    if data_bytes is not None and data_text is not None:
        raise ValueError(
            f"Got invalid WebSocket reply message {message!r}: it has both 'bytes' and 'text'; send one of them."
        )
    limit = get_settings().SEND_BUFFER_LIMIT
    if limit is not None:
        unsent = _unsent_bytes(protocol.transport)
        if unsent > limit:
            logger.warning(
                "Dropped websocket client %s on %s: %d bytes wait to be sent (SEND_BUFFER_LIMIT=%d); "
                "it is not reading.",
                protocol.client_addr,
                protocol.path.decode("ascii", "replace"),
                unsent,
                limit,
            )
            protocol.transport.abortConnection()
            return
    if data_bytes is not None:
        protocol.sendMessage(bytes(data_bytes), True)
    elif data_text is not None:
        protocol.sendMessage(data_text.encode("utf-8"), False)


def install_daphne_adapter() -> bool:
    """Adapt daphne (idempotent). Returns whether the adapter is installed."""
    global _installed
    if _installed:
        return True
    if not get_settings().PATCH_DAPHNE:
        return False
    try:
        from autobahn.websocket.protocol import WebSocketProtocol as AutobahnProtocol
        from autobahn.websocket.types import ConnectionDeny
        from daphne.server import Server
        from daphne.ws_protocol import WebSocketProtocol
        from twisted.internet import defer
    except ImportError:
        return False

    original_reply = WebSocketProtocol.handle_reply
    original_connect = WebSocketProtocol.onConnect
    original_create = Server.create_application

    def handle_reply(self: Any, message: dict[str, Any]) -> None:
        if self.state == AutobahnProtocol.STATE_OPEN:
            kind = message.get("type")
            if kind == "websocket.send":
                _send(self, message)
                return
            if kind == "websocket.close":
                reason = message.get("reason") or None
                self.sendCloseFrame(
                    code=message.get("code") or status.WS_1000_NORMAL_CLOSURE,
                    reasonUtf8=reason.encode("utf-8")[:123] if reason else None,
                    isReply=False,
                )
                return
        original_reply(self, message)

    def onConnect(self: Any, request: Any) -> Any:
        protocols = request.headers.get("sec-websocket-protocol", "")
        if not protocols.isascii():
            # daphne decodes it as ASCII and answers 500 with a traceback; it is a bad request.
            self.server = self.factory.server_class
            self.server.protocol_connected(self)
            self.request, self.client_addr = request, None
            logger.info("Refused websocket %s: non-ASCII Sec-WebSocket-Protocol header", request.path)
            raise ConnectionDeny(400, "Sec-WebSocket-Protocol must be ASCII")  # type: ignore[no-untyped-call]
        self.failByDrop = False
        _write_eagerly(self)
        self.maxMessagePayloadSize = self.maxFramePayloadSize = get_settings().MAX_MESSAGE_SIZE
        return original_connect(self, request)

    def create_application(self: Any, protocol: Any, scope: dict[str, Any]) -> Any:
        if not isinstance(protocol, WebSocketProtocol):
            return original_create(self, protocol, scope)
        # daphne's own body, with a flow-controlled queue instead of an unbounded one.
        assert "application_instance" not in self.connections[protocol]
        queue = FlowControlQueue(protocol.transport, get_settings().RECEIVE_QUEUE_LIMIT)
        scope.setdefault("asgi", {"version": "3.0"})
        instance = self.application(scope=scope, receive=queue.get, send=partial(self.handle_reply, protocol))
        if protocol not in self.connections:
            return None
        self.connections[protocol]["application_instance"] = asyncio.ensure_future(
            instance, loop=asyncio.get_event_loop()
        )
        return queue

    def kill_all_applications(self: Any) -> Any:
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

    patches: tuple[tuple[Any, str, Any, Any], ...] = (
        (WebSocketProtocol, "handle_reply", handle_reply, original_reply),
        (WebSocketProtocol, "onConnect", onConnect, original_connect),
        (Server, "create_application", create_application, original_create),
        (Server, "kill_all_applications", kill_all_applications, Server.kill_all_applications),
    )
    for cls, name, replacement, original in patches:
        replacement.__wrapped__ = original
        setattr(cls, name, replacement)
    _installed = True
    logger.debug("daphne adapter installed")
    return True
