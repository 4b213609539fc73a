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
- ``WebSocketProtocol.onMessage*``: a fragmented message is joined into one buffer as
  it arrives (autobahn kept each frame as its own object, ~55 bytes per 1-byte
  fragment), and a message in more than ``MAX_MESSAGE_FRAGMENTS`` frames closes with 1009.
- ``WebSocketProtocol.onPing``: pongs count in ``SEND_BUFFER_LIMIT``; a client that
  pings and never reads is dropped.
- ``WebSocketProtocol.onClose``: when autobahn closed the connection itself (1002,
  1007, 1009), the application hears that code, even if the client never replied.
- ``HTTPFactory.buildProtocol``: a connection must send its whole request head (the
  websocket upgrade) within ``HANDSHAKE_TIMEOUT`` seconds, however slowly it trickles.
- Writes (every frame: data, close, pong) are framed once per message, gathered
  per connection during a loop turn and sent in one ``send`` at its end; only what
  the kernel does not take is left to Twisted (``writes.py``).
- ``Server.create_application``: the application's input queue pauses reading
  from the socket while ``RECEIVE_QUEUE_LIMIT`` messages wait, so a flooding
  client meets TCP backpressure instead of growing the server's memory.
- ``Server.kill_all_applications``: daphne's version stops at the first
  connection with no application (``KeyError``), so on SIGTERM no handler was
  cancelled; ours cancels them all, and each closes its client with 1001.
- ASGI parity with uvicorn (also in ``handle_reply``, ``onClose`` and
  ``sendHttpErrorResponse``): ``websocket.accept`` sends its ``headers``
  (daphne dropped them); the client's close reason reaches the application
  (``websocket.disconnect`` carries ``reason``; a close frame without a code
  reads 1005, not ``None``); sends after the close handshake began are dropped
  (the disconnect follows) instead of raising autobahn's ``Disconnected``; and
  the websocket denial-response extension is implemented and advertised in
  ``scope["extensions"]``: ``websocket.http.response.start``/``.body`` before
  ``accept`` answer the handshake with that HTTP response.

With ``RAVYN_CHANNELS["PATCH_DAPHNE"] = False`` nothing is changed and, under
daphne, ``close_code()`` mirrors RFC codes into the private range:
1001 -> 4001, 1009 -> 4009, 1011 -> 4011 (``4000 + code - 1000``).
uvicorn and other servers send every code as given.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import sys
from functools import partial
from http import HTTPStatus
from typing import Any

from . import metrics, status, writes
from .conf import fragment_limit, get_settings
from .safetext import escape

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
    """An application input queue that pauses the socket while ``high`` messages wait.

    ``disconnect_extra`` is merged into the ``websocket.disconnect`` message
    (our ``onClose`` puts the client's close reason there before daphne's runs).
    """

    def __init__(self, transport: Any, high: int):
        super().__init__()
        self._transport = transport
        self._high = high
        self._low = max(high // 4, 1)
        self.paused = False
        self.disconnect_extra: dict[str, Any] = {}

    def put_nowait(self, item: Any) -> None:
        if self.disconnect_extra and item.get("type") == "websocket.disconnect":
            item = {**item, **self.disconnect_extra}
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


def _path(protocol: Any) -> str:
    request = getattr(protocol, "request", None)
    return escape(getattr(request, "path", "?"))  # client-written


def _client(protocol: Any) -> str:
    addr = getattr(protocol, "client_addr", None)
    return escape(f"{addr[0]}:{addr[1]}") if addr else "?"  # daphne --proxy-headers: client-written


def _dropped_for_send_limit(protocol: Any, why: str) -> bool:
    """Abort a connection with more than ``SEND_BUFFER_LIMIT`` bytes unsent (one WARNING); True if it was."""
    limit = get_settings().SEND_BUFFER_LIMIT
    if limit is None:
        return False
    unsent = writes.unsent_bytes(protocol.transport)
    if unsent <= limit:
        return False
    protocol._rc_dropped = True
    logger.warning(
        "Dropped websocket client %s on %s: %d bytes wait to be sent (SEND_BUFFER_LIMIT=%d); %s",
        _client(protocol),
        _path(protocol),
        unsent,
        limit,
        why,
    )
    protocol.transport.abortConnection()
    metrics.event("slow_reader_drops")
    return True


def _send(protocol: Any, message: dict[str, Any]) -> None:
    data_bytes = message.get("bytes")
    data_text = message.get("text")
    if data_bytes is not None and data_text is not None:
        raise ValueError(
            f"Got invalid WebSocket reply message {message!r}: it has both 'bytes' and 'text'; send one of them."
        )
    if getattr(protocol, "_rc_dropped", False):
        return  # dropped for SEND_BUFFER_LIMIT: the abort is under way, the disconnect follows
    if _dropped_for_send_limit(protocol, "it is not reading."):
        return
    data = data_bytes if data_bytes is not None else data_text
    if data is None:
        return
    payload, frame = writes.framed(data)
    if writes.plain(protocol, len(payload)):
        protocol.transport.write(frame)
    else:
        protocol.sendMessage(payload, data_bytes is not None)


_warned_proxy_headers = False


def _keep_peer(server: Any, protocol: Any, scope: dict[str, Any]) -> None:
    """Keep the TCP peer in the scope: ``daphne --proxy-headers`` replaces ``client`` with a header's value."""
    from .proxies import PEER_KEY

    global _warned_proxy_headers
    peer = protocol.transport.getPeer()
    if hasattr(peer, "host") and hasattr(peer, "port"):
        scope[PEER_KEY] = [str(peer.host), peer.port]
    if server.proxy_forwarded_address_header and not _warned_proxy_headers and not get_settings().TRUSTED_PROXIES:
        _warned_proxy_headers = True
        logger.warning(
            "daphne --proxy-headers takes the client's address from the leftmost %s entry, which any client "
            "can write; websocket.client is not to be trusted. Set RAVYN_CHANNELS['TRUSTED_PROXIES'] to your "
            "proxies' addresses (see the README's Security section).",
            server.proxy_forwarded_address_header,
        )


class RequestHeadDeadline:
    """Aborts an HTTP connection whose request head does not arrive within ``timeout`` seconds.

    Armed when the connection opens and again after each response on a kept-alive
    connection; disarmed once all headers are in (after which a websocket upgrade
    is daphne's: its own timeouts run from there). Twisted's idle timer restarts
    on every byte, so a client trickling one byte a second is never idle.
    """

    __slots__ = ("_call", "_channel", "_protocol", "_timeout")

    def __init__(self, protocol: Any, channel: Any, timeout: float):
        self._protocol = protocol
        self._channel = channel
        self._timeout = timeout
        self._call: Any = None
        made, head, done, lost = (
            channel.connectionMade,
            channel.allHeadersReceived,
            channel.requestDone,
            channel.connectionLost,
        )

        def connectionMade() -> None:
            self.arm()
            made()

        def allHeadersReceived() -> None:
            self.disarm()
            head()

        def requestDone(request: Any) -> None:
            done(request)
            if channel.persistent and channel.transport is not None and not channel.transport.disconnecting:
                self.arm()

        def connectionLost(reason: Any) -> None:
            self.disarm()
            lost(reason)

        channel.connectionMade = connectionMade
        channel.allHeadersReceived = allHeadersReceived
        channel.requestDone = requestDone
        channel.connectionLost = connectionLost

    def arm(self) -> None:
        """Start (or restart) the deadline."""
        self.disarm()
        self._call = self._channel.callLater(self._timeout, self._expire)

    def disarm(self) -> None:
        """Cancel the deadline, if it is running."""
        if self._call is not None:
            if self._call.active():
                self._call.cancel()
            self._call = None

    def _expire(self) -> None:
        self._call = None
        channel = self._channel
        transport = channel.transport
        if transport is None or getattr(self._protocol, "_channel", channel) is not channel:
            return  # the connection moved on (HTTP/2 took over)
        peer = transport.getPeer()
        logger.info(
            "Closed connection from %s:%s: no complete request head within %gs (HANDSHAKE_TIMEOUT)",
            getattr(peer, "host", "?"),
            getattr(peer, "port", "?"),
            self._timeout,
        )
        transport.abortConnection()


def _accept_headers(raw: Any) -> dict[str, list[str]]:
    """ASGI accept headers as autobahn's ``succeedHandshake`` takes them (name -> values)."""
    headers: dict[str, list[str]] = {}
    for name, value in _checked_headers(raw):
        headers.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
    return headers


def _checked_headers(raw: Any) -> list[tuple[bytes, bytes]]:
    pairs = []
    for name, value in raw or ():
        if not isinstance(name, bytes) or not isinstance(value, bytes):
            raise ValueError(f"ASGI header names and values must be bytes, got {(name, value)!r}.")
        if b"\r" in name + value or b"\n" in name + value or b":" in name:
            raise ValueError(f"Invalid ASGI header {(name, value)!r}: CR, LF (or ':' in a name) are not allowed.")
        pairs.append((name, value))
    return pairs


def _http_response(status_code: int, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    """The bytes of an HTTP/1.1 response that refuses a websocket handshake (as uvicorn writes it)."""
    try:
        phrase = HTTPStatus(status_code).phrase
    except ValueError:
        phrase = "Unknown"
    names = {name.lower() for name, _ in headers}
    defaults = [
        (b"date", email.utils.formatdate(usegmt=True).encode("ascii")),
        (b"connection", b"close"),
        (b"content-length", str(len(body)).encode("ascii")),
        (b"content-type", b"text/plain; charset=utf-8"),
    ]
    lines = [f"HTTP/1.1 {status_code} {phrase}".encode("ascii")]
    lines += [name + b": " + value for name, value in headers + [d for d in defaults if d[0] not in names]]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


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
        from daphne.http_protocol import HTTPFactory
        from daphne.server import Server
        from daphne.ws_protocol import WebSocketProtocol
        from twisted.internet import defer
    except ImportError:
        return False

    original_reply = WebSocketProtocol.handle_reply
    original_connect = WebSocketProtocol.onConnect
    original_create = Server.create_application
    original_close = WebSocketProtocol.onClose
    original_error_response = WebSocketProtocol.sendHttpErrorResponse

    def handle_reply(self: Any, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if self.state == AutobahnProtocol.STATE_OPEN:
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
        elif self.state == AutobahnProtocol.STATE_CONNECTING and hasattr(self, "handshake_deferred"):
            if kind == "websocket.accept" and message.get("headers"):
                headers = _accept_headers(message["headers"])
                self.handshake_deferred.callback((message.get("subprotocol"), headers))
                del self.handshake_deferred
                return
            if kind in ("websocket.http.response.start", "websocket.http.response.body"):
                _denial_reply(self, message)
                return
        elif kind in ("websocket.send", "websocket.close"):
            # The close handshake has begun (the client's close frame, or ours): nothing more can
            # be sent, and the disconnect message with the client's code follows.
            return
        original_reply(self, message)

    def _denial_reply(self: Any, message: dict[str, Any]) -> None:
        pending = getattr(self, "_ravyn_denial", None)
        if message["type"] == "websocket.http.response.start":
            code = message.get("status")
            if pending is not None or not isinstance(code, int) or not 100 <= code <= 599:
                raise ValueError(f"Invalid websocket.http.response.start {message!r}: one status, 100-599.")
            self._ravyn_denial = (code, _checked_headers(message.get("headers")), bytearray())
            return
        if pending is None:
            raise ValueError("websocket.http.response.body came before websocket.http.response.start.")
        code, headers, body = pending
        body += message.get("body", b"")
        if message.get("more_body", False):
            return
        # autobahn's failHandshake writes the response (our sendHttpErrorResponse) and drops the TCP.
        self._ravyn_denial_bytes = _http_response(code, headers, bytes(body))
        deferred = self.handshake_deferred
        del self.handshake_deferred
        deferred.errback(ConnectionDeny(code, "denied by the application"))  # type: ignore[no-untyped-call]
        self.server.protocol_disconnected(self)
        client = f"{self.client_addr[0]}:{self.client_addr[1]}" if self.client_addr else None
        self.server.log_action("websocket", "rejected", {"path": self.request.path, "client": client})

    def sendHttpErrorResponse(self: Any, code: int, reason: str, responseHeaders: Any = None) -> None:
        denial = getattr(self, "_ravyn_denial_bytes", None)
        if denial is None:
            original_error_response(self, code, reason, responseHeaders)
        else:
            self._ravyn_denial_bytes = None
            self.sendData(denial)

    # When autobahn itself closed the connection (1009 oversized, 1002, 1007, too many
    # fragments), the application hears that code, not the client's echo or 1006 when the
    # client vanished without replying. A clean close without a code reads 1005, and the
    # client's reason reaches the handler (daphne passes neither).
    def onClose(self: Any, wasClean: bool, code: int | None, reason: str | None) -> None:
        if self.failedByMe and self.localCloseCode is not None:
            code = self.localCloseCode
        queue = getattr(self, "application_queue", None)
        if wasClean:
            code = status.WS_1005_NO_STATUS_RCVD if code is None else code
            if reason and isinstance(queue, FlowControlQueue):
                queue.disconnect_extra = {"reason": reason}
        original_close(self, wasClean, code, reason)

    def onConnect(self: Any, request: Any) -> Any:
        protocols = request.headers.get("sec-websocket-protocol", "")
        if not protocols.isascii():
            # daphne decodes it as ASCII and answers 500 with a traceback; it is a bad request.
            self.server = self.factory.server_class
            self.server.protocol_connected(self)
            self.request, self.client_addr = request, None
            logger.info("Refused websocket %s: non-ASCII Sec-WebSocket-Protocol header", escape(request.path))
            raise ConnectionDeny(400, "Sec-WebSocket-Protocol must be ASCII")  # type: ignore[no-untyped-call]
        self.failByDrop = False
        writes.write_eagerly(self)
        self.maxMessagePayloadSize = self.maxFramePayloadSize = get_settings().MAX_MESSAGE_SIZE
        return original_connect(self, request)

    def create_application(self: Any, protocol: Any, scope: dict[str, Any]) -> Any:
        if not isinstance(protocol, WebSocketProtocol):
            return original_create(self, protocol, scope)
        _keep_peer(self, protocol, scope)
        # daphne's own body, with a flow-controlled queue instead of an unbounded one.
        assert "application_instance" not in self.connections[protocol]
        queue = FlowControlQueue(protocol.transport, get_settings().RECEIVE_QUEUE_LIMIT)
        scope.setdefault("asgi", {"version": "3.0"})
        scope["extensions"] = {**(scope.get("extensions") or {}), "websocket.http.response": {}}
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

    original_begin = WebSocketProtocol.onMessageBegin
    original_end = WebSocketProtocol.onMessageEnd

    # A fragmented message: autobahn keeps every frame's payload as its own bytes object in
    # a list (~55 bytes of memory per 1-byte fragment). The first chunk stays as it is (a
    # message in one frame costs no copy); from the second on they are joined into one
    # bytearray. Frames are counted against MAX_MESSAGE_FRAGMENTS.
    def onMessageBegin(self: Any, isBinary: bool) -> None:
        original_begin(self, isBinary)
        self._rc_fragments = 0

    def onMessageFrameData(self: Any, payload: bytes) -> None:
        if self.failedByMe:
            return
        data = self.message_data
        if isinstance(data, bytearray):
            data += payload
        elif not data:
            data.append(payload)
        else:
            joined = self.message_data = bytearray(data[0])
            joined += payload

    def onMessageFrame(self: Any, payload: list[bytes]) -> None:
        # ``payload`` is the frame's chunk list, left empty: the chunks are in message_data.
        if self.failedByMe:
            return
        self._rc_fragments += 1
        limit = fragment_limit(get_settings())
        if self._rc_fragments > limit:
            logger.warning(
                "Closing websocket %s from %s with 1009: a message in more than %d fragments (MAX_MESSAGE_FRAGMENTS).",
                _path(self),
                _client(self),
                limit,
            )
            self.message_data = []
            self._fail_connection(status.WS_1009_MESSAGE_TOO_BIG, "message in too many fragments")

    def onMessageEnd(self: Any) -> None:
        if isinstance(self.message_data, bytearray):
            self.message_data = [bytes(self.message_data)]
        original_end(self)

    original_ping = WebSocketProtocol.onPing

    # Pongs go out like any frame: a client that pings and never reads grows the unsent
    # buffer, so the send bound counts them too.
    def onPing(self: Any, payload: bytes) -> None:
        if getattr(self, "_rc_dropped", False):
            return  # dropped already: the rest of this read's pings get no pong and no WARNING
        if self.state == AutobahnProtocol.STATE_OPEN and _dropped_for_send_limit(
            self, "it sends pings and is not reading pongs."
        ):
            return
        original_ping(self, payload)

    original_build = HTTPFactory.buildProtocol

    def buildProtocol(self: Any, addr: Any) -> Any:
        protocol = original_build(self, addr)
        timeout = get_settings().HANDSHAKE_TIMEOUT
        channel = getattr(protocol, "_channel", None)
        if timeout is not None and channel is not None:
            RequestHeadDeadline(protocol, channel, timeout)
        return protocol

    patches: tuple[tuple[Any, str, Any, Any], ...] = (
        (WebSocketProtocol, "handle_reply", handle_reply, original_reply),
        (WebSocketProtocol, "onConnect", onConnect, original_connect),
        (WebSocketProtocol, "onMessageBegin", onMessageBegin, original_begin),
        (WebSocketProtocol, "onMessageFrameData", onMessageFrameData, WebSocketProtocol.onMessageFrameData),
        (WebSocketProtocol, "onMessageFrame", onMessageFrame, WebSocketProtocol.onMessageFrame),
        (WebSocketProtocol, "onMessageEnd", onMessageEnd, original_end),
        (WebSocketProtocol, "onPing", onPing, original_ping),
        (WebSocketProtocol, "onClose", onClose, original_close),
        (HTTPFactory, "buildProtocol", buildProtocol, original_build),
        (WebSocketProtocol, "sendHttpErrorResponse", sendHttpErrorResponse, original_error_response),
        (Server, "create_application", create_application, original_create),
        (Server, "kill_all_applications", kill_all_applications, Server.kill_all_applications),
    )
    for cls, name, replacement, original in patches:
        replacement.__wrapped__ = original
        setattr(cls, name, replacement)
    _installed = True
    logger.debug("daphne adapter installed")
    return True
