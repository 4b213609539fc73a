"""The ``WebSocket`` a handler receives, and ``WebSocketDisconnect``.

The API follows Starlette and Ravyn/Lilya (``accept``, ``receive_text``,
``send_json``, ``iter_text``, ...). A ``WebSocket`` wraps an ASGI ``receive``
and ``send`` pair; in a generated consumer ``receive`` reads the connection's
bounded inbox and ``send`` writes straight to the server.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping
from types import SimpleNamespace
from typing import Any, Literal, NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit

from . import status

__all__ = [
    "URL",
    "Address",
    "HeaderItems",
    "Headers",
    "QueryParams",
    "WebSocket",
    "WebSocketDisconnect",
    "WebSocketException",
    "WebSocketPayloadError",
    "WebSocketState",
]

logger = logging.getLogger("ravyn_channels")

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: Response headers as ``accept(headers=...)`` and denial responses take them: a mapping
#: or an iterable of ``(name, value)`` pairs, each ``str`` (latin-1) or ``bytes``.
HeaderItems = Mapping[str, str] | Mapping[bytes, bytes] | Iterable[tuple[str | bytes, str | bytes]]


def header_pairs(headers: HeaderItems | None) -> list[tuple[bytes, bytes]]:
    """ASGI header pairs (lower-case ``bytes`` names, ``bytes`` values) from a dict or pairs.

    Raises ``TypeError`` for anything else and ``ValueError`` for a name or value
    that would break the HTTP response (CR, LF, or not latin-1).
    """
    if headers is None:
        return []
    items: Iterable[Any] = headers.items() if isinstance(headers, Mapping) else headers
    if isinstance(items, (str, bytes)):
        raise TypeError(f"headers= takes a dict or (name, value) pairs, got {headers!r}.")
    pairs = []
    for item in items:
        try:
            name, value = item
        except (TypeError, ValueError):
            raise TypeError(
                f"headers= takes a dict or (name, value) pairs, e.g. {{'x-token': 'abc'}} or "
                f"[(b'x-token', b'abc')]; got the item {item!r}."
            ) from None
        try:
            pair = [part.encode("latin-1") if isinstance(part, str) else part for part in (name, value)]
        except UnicodeEncodeError:
            raise ValueError(
                f"header {item!r}: HTTP headers are latin-1; pass the value as bytes (e.g. value.encode()) "
                "or percent-encode it."
            ) from None
        if not all(isinstance(part, bytes) for part in pair):
            raise TypeError(f"header {item!r}: name and value must be str or bytes.")
        if any(b"\r" in part or b"\n" in part for part in pair) or not pair[0]:
            raise ValueError(f"header {item!r}: a name must be non-empty and neither may contain CR or LF.")
        pairs.append((pair[0].lower(), pair[1]))
    return pairs


class WebSocketDisconnect(Exception):
    """The client has gone: raised by ``receive_*`` and ``send_*``.

    ``code`` is the close code the client sent (1006 when the connection
    dropped without a close frame) and ``reason`` its reason, if any.
    """

    def __init__(self, code: int = status.WS_1000_NORMAL_CLOSURE, reason: str | None = None):
        self.code = code
        self.reason = reason or ""
        super().__init__(code, self.reason)

    def __repr__(self) -> str:
        return f"WebSocketDisconnect(code={self.code!r}, reason={self.reason!r})"


class WebSocketPayloadError(ValueError):
    """A client frame could not be used as asked: wrong frame type or invalid data.

    Left uncaught in a handler, it closes the connection with ``code``
    (1003 for a text/binary mismatch, 1007 for invalid JSON or UTF-8) and
    logs one WARNING, without a traceback.
    """

    def __init__(self, code: int, message: str):
        self.code = code
        super().__init__(message)


class WebSocketException(Exception):
    """Refuse or close the connection with ``code`` (default 1008, policy violation).

    Raised by a dependency or a permission, it refuses the handshake (HTTP 403;
    ``WebSocketDenial``, a subclass, chooses the HTTP response). Raised by a
    handler after ``accept`` and left uncaught, it closes the
    connection with ``code`` and ``reason``. Either way the server logs one
    INFO line and no traceback. ``reason`` reaches the client: keep it short
    (at most 123 bytes are sent) and free of secrets.
    """

    #: The HTTP response that refuses the handshake when the server supports the
    #: denial-response extension (``None``: a plain 403). See ``WebSocketDenial``.
    response: Any = None

    def __init__(self, code: int = status.WS_1008_POLICY_VIOLATION, reason: str | None = None):
        status.check_sendable(code)
        self.code = code
        self.reason = reason or ""
        super().__init__(code, self.reason)

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"  # Starlette's format

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, reason={self.reason!r})"


def describe_refusal(exc: WebSocketException) -> str:
    """How log lines name a refusal: a subclass's own ``str``, else the reason (or the class and code)."""
    if type(exc).__str__ is not WebSocketException.__str__:
        return str(exc)
    return exc.reason or f"{type(exc).__name__}(code={exc.code})"


class WebSocketState(enum.Enum):
    """Where one side of the connection is: ``CONNECTING``, ``CONNECTED`` or ``DISCONNECTED``.

    ``RESPONSE``: the application is answering the handshake with an HTTP
    response (``send_denial_response``) and has not sent its last body part yet.
    """

    CONNECTING = 0
    CONNECTED = 1
    DISCONNECTED = 2
    RESPONSE = 3


class Address(NamedTuple):
    """The peer's host and port, as the server reported them."""

    host: str
    port: int


class URL(str):
    """The connection's URL as a ``str``, with its parts as properties."""

    @property
    def _parts(self) -> Any:
        return urlsplit(self)

    @property
    def scheme(self) -> str:
        return str(self._parts.scheme)

    @property
    def netloc(self) -> str:
        return str(self._parts.netloc)

    @property
    def hostname(self) -> str | None:
        return self._parts.hostname  # type: ignore[no-any-return]

    @property
    def port(self) -> int | None:
        return self._parts.port  # type: ignore[no-any-return]

    @property
    def path(self) -> str:
        return str(self._parts.path)

    @property
    def query(self) -> str:
        return str(self._parts.query)


class Headers(Mapping[str, str]):
    """Request headers, case-insensitive; repeated headers are joined by ``getlist``."""

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]):
        self.raw = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in raw]

    def __getitem__(self, key: str) -> str:
        key = key.lower()
        for k, v in self.raw:
            if k == key:
                return v
        raise KeyError(key)

    def __iter__(self) -> Any:
        return iter(dict.fromkeys(k for k, _ in self.raw))

    def __len__(self) -> int:
        return len(dict.fromkeys(k for k, _ in self.raw))

    def getlist(self, key: str) -> list[str]:
        """Every value sent for ``key``, in order."""
        key = key.lower()
        return [v for k, v in self.raw if k == key]

    def __repr__(self) -> str:
        return f"Headers({dict(self)!r})"


class QueryParams(Mapping[str, str]):
    """The query string as an immutable multi-dict (Starlette's ``QueryParams``, Django's ``QueryDict`` reads).

    ``params["a"]``, ``params.get("a")`` and ``dict(params)`` give the last
    value sent for a key; ``getlist("a")`` every value, ``multi_items()``
    every pair in order; ``urlencode()`` (or ``str()``) the encoded query.
    """

    def __init__(self, query: str | bytes | Iterable[tuple[str, str]] = ""):
        if isinstance(query, bytes):
            query = query.decode("latin-1")
        if isinstance(query, str):
            self._list = _parse_query(query)
        else:
            self._list = [(str(k), str(v)) for k, v in query]
        self._dict = dict(self._list)

    def __getitem__(self, key: str) -> str:
        return self._dict[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QueryParams):
            return NotImplemented
        return sorted(self._list) == sorted(other._list)

    __hash__ = None  # type: ignore[assignment]

    def getlist(self, key: str) -> list[str]:
        """Every value sent for ``key``, in order (``[]`` when none)."""
        return [v for k, v in self._list if k == key]

    def multi_items(self) -> list[tuple[str, str]]:
        """Every ``(key, value)`` pair, repeated keys included, in the order sent."""
        return list(self._list)

    def lists(self) -> list[tuple[str, list[str]]]:
        """``(key, every value)`` per key, as Django's ``QueryDict.lists()``."""
        return [(k, self.getlist(k)) for k in self._dict]

    def urlencode(self) -> str:
        """The parameters encoded as a query string (``a=1&a=2&b=x``)."""
        return urlencode(self._list)

    def __str__(self) -> str:
        return self.urlencode()

    def __repr__(self) -> str:
        return f"QueryParams({self.urlencode()!r})"


def _parse_query(query: str) -> list[tuple[str, str]]:
    """Parse a query string, bounded by Django's ``DATA_UPLOAD_MAX_NUMBER_FIELDS`` as ``QueryDict`` is."""
    limit: int | None = None
    try:
        from django.conf import settings

        if settings.configured:
            limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
    except ImportError:  # pragma: no cover - Django is a dependency
        pass
    try:
        return parse_qsl(query, keep_blank_values=True, max_num_fields=limit)
    except ValueError:
        from django.core.exceptions import TooManyFieldsSent

        raise TooManyFieldsSent(
            f"The query string has more than {limit} parameters (DATA_UPLOAD_MAX_NUMBER_FIELDS)."
        ) from None


_DEFAULT_PORTS = {"ws": 80, "wss": 443, "http": 80, "https": 443}


def _bad_mode(method: str, mode: object) -> RuntimeError:
    # RuntimeError, as Starlette raises: a programming error, not bad client data.
    return RuntimeError(f'{method}(mode=...) takes "text" or "binary", got {mode!r}.')


def _not_connected(what: str) -> RuntimeError:
    return RuntimeError(f'WebSocket is not connected. Need to call "accept" first, before {what}.')


class WebSocket(Mapping[str, Any]):
    """One client connection, as seen by a handler.

    Create it from an ASGI ``scope``, ``receive`` and ``send``; generated
    consumers do this for you. Like Starlette's, it is also a read-only
    mapping over its scope (``websocket["subprotocols"]``, ``dict(websocket)``);
    two sockets are equal only when they are the same object.
    """

    def __init__(self, scope: Mapping[str, Any], receive: Receive, send: Send):
        if scope.get("type") != "websocket":
            raise ValueError(f"WebSocket needs a 'websocket' scope, got {scope.get('type')!r}")
        self.scope = scope
        self._receive = receive
        self._send = send
        self.client_state = WebSocketState.CONNECTING
        self.application_state = WebSocketState.CONNECTING
        #: The close code and reason once the client has gone (set as soon as the
        #: server knows, before the handler reads the disconnect message).
        self.close_code: int | None = None
        self.close_reason: str = ""
        #: Free per-connection storage, like Starlette's ``websocket.state``.
        self.state = SimpleNamespace()
        #: The Channels consumer serving this socket (``None`` outside generated consumers).
        self.consumer: Any = None
        #: Cluster-wide id, set when a ``ConnectionManager`` connects this socket.
        self.connection_id: str | None = None
        #: Set by the generated consumer; names the handler in log lines.
        self.handler_name = "<websocket handler>"
        #: Called with the reason when the handler reads before accepting.
        self._on_not_accepted: Callable[[str], Awaitable[None]] | None = None

    # -- the scope as a mapping (Starlette's HTTPConnection) ----------------------------

    def __getitem__(self, key: str) -> Any:
        return self.scope[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.scope)

    def __len__(self) -> int:
        return len(self.scope)

    __eq__ = object.__eq__  # not Mapping's: a socket equals only itself
    __hash__ = object.__hash__

    # -- connection facts -------------------------------------------------------------

    @property
    def path_params(self) -> dict[str, Any]:
        """Path parameters after conversion (``{"client_id": 42}``)."""
        params: dict[str, Any] = self.scope.get("path_params") or self.scope.get(
            "url_route", {}
        ).get("kwargs", {})
        return params

    @property
    def url(self) -> URL:
        """``ws://host/path?query`` as the client asked for it."""
        scheme = self.scope.get("scheme") or "ws"
        host = self.headers.get("host")
        if host is None:
            server = self.scope.get("server")
            if server:
                name = str(server[0])
                if ":" in name and not name.startswith("["):  # IPv6
                    name = f"[{name}]"
                port = server[1]
                host = name if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{name}:{port}"
            else:
                host = "localhost"
        root = self.scope.get("root_path", "")
        qs = self.scope.get("query_string", b"").decode("latin-1")
        return URL(f"{scheme}://{host}{root}{self.scope['path']}" + (f"?{qs}" if qs else ""))

    @property
    def query_params(self) -> QueryParams:
        """The query string: ``get`` (last value), ``getlist``, ``multi_items``, ``urlencode``."""
        params = self.__dict__.get("_query_params")
        if params is None:
            params = self.__dict__["_query_params"] = QueryParams(self.scope.get("query_string", b""))
        return params

    @property
    def headers(self) -> Headers:
        """The handshake's request headers."""
        headers = self.__dict__.get("_headers")
        if headers is None:
            headers = self.__dict__["_headers"] = Headers(self.scope.get("headers", []))
        return headers

    @property
    def cookies(self) -> dict[str, str]:
        """Cookies sent with the handshake."""
        from django.http.cookie import parse_cookie

        return parse_cookie(self.headers.get("cookie", ""))

    @property
    def client(self) -> Address | None:
        """The client's address (``None`` when the server does not know it).

        Behind reverse proxies listed in ``RAVYN_CHANNELS["TRUSTED_PROXIES"]`` it is
        the address they forwarded (``ravyn_channels.proxies.client_address``);
        otherwise the server's ``scope["client"]``.
        """
        from .proxies import client_address

        return client_address(self.scope)

    @property
    def user(self) -> Any:
        """The Django user (``AnonymousUser`` when nobody is logged in)."""
        user = self.scope.get("user")
        if user is None:
            try:
                from django.contrib.auth.models import AnonymousUser
            except RuntimeError:  # django.contrib.auth is not installed
                return None
            return AnonymousUser()
        return user

    @property
    def session(self) -> Any:
        """The Django session; needs ``django.contrib.sessions`` in ``INSTALLED_APPS``."""
        if "session" not in self.scope:
            raise RuntimeError(
                "websocket.session needs Django sessions: add 'django.contrib.sessions' to "
                "INSTALLED_APPS (ravyn_channels then wraps routes in Channels' "
                "AuthMiddlewareStack), or wrap your URLRouter in SessionMiddlewareStack."
            )
        return self.scope["session"]

    @property
    def subprotocols(self) -> list[str]:
        """Subprotocols the client offered, in its order of preference."""
        return list(self.scope.get("subprotocols", []))

    # -- raw ASGI -----------------------------------------------------------------------

    async def receive(self) -> Message:
        """Receive the next ASGI message (``websocket.connect``, ``.receive`` or ``.disconnect``)."""
        if self.client_state is WebSocketState.DISCONNECTED:
            raise RuntimeError('Cannot call "receive" once a disconnect message has been received.')
        message = await self._receive()
        kind = message["type"]
        if kind == "websocket.disconnect":
            self._client_gone(message.get("code", status.WS_1000_NORMAL_CLOSURE), message.get("reason"))
            self.client_state = WebSocketState.DISCONNECTED
        elif self.client_state is WebSocketState.CONNECTING:
            if kind != "websocket.connect":
                raise RuntimeError(f'Expected "websocket.connect", got {kind!r}.')
            self.client_state = WebSocketState.CONNECTED
        elif kind != "websocket.receive":
            raise RuntimeError(f'Expected "websocket.receive" or "websocket.disconnect", got {kind!r}.')
        return message

    async def send(self, message: Message) -> None:
        """Send an ASGI message (``websocket.accept``, ``.send`` or ``.close``)."""
        if self.close_code is not None:
            raise WebSocketDisconnect(self.close_code, self.close_reason)
        kind = message["type"]
        state = self.application_state
        if state is WebSocketState.CONNECTED:
            if kind == "websocket.close":
                self.application_state = WebSocketState.DISCONNECTED
            elif kind != "websocket.send":
                raise RuntimeError(f'Expected "websocket.send" or "websocket.close", got {kind!r}.')
        elif state is WebSocketState.CONNECTING:
            if kind == "websocket.accept":
                self.application_state = WebSocketState.CONNECTED
            elif kind == "websocket.close":
                self.application_state = WebSocketState.DISCONNECTED
            elif kind == "websocket.http.response.start":
                self.application_state = WebSocketState.RESPONSE
            elif kind == "websocket.send":
                raise _not_connected("sending")
            else:
                raise RuntimeError(
                    'Expected "websocket.accept", "websocket.close" or "websocket.http.response.start", '
                    f"got {kind!r}."
                )
        elif state is WebSocketState.RESPONSE:
            if kind != "websocket.http.response.body":
                raise RuntimeError(f'Expected "websocket.http.response.body", got {kind!r}.')
            if not message.get("more_body", False):
                self.application_state = WebSocketState.DISCONNECTED
        else:
            raise RuntimeError('Cannot call "send" once a close message has been sent.')
        await self._transport_send(message)

    async def _transport_send(self, message: Message) -> None:
        try:
            await self._send(message)
        except OSError as exc:
            raise await self._send_failed() from exc

    async def _send_failed(self) -> WebSocketDisconnect:
        # The server could not write (uvicorn's ClientDisconnected, a reset socket): for the
        # handler that is the client gone, as when the server reports it. One turn of the loop
        # first, so a disconnect message the server has already queued (the client's close
        # frame, with its code and reason) is recorded before 1006 would be.
        await asyncio.sleep(0)
        self._client_gone(status.WS_1006_ABNORMAL_CLOSURE)
        return WebSocketDisconnect(self.close_code or status.WS_1006_ABNORMAL_CLOSURE, self.close_reason)

    def _client_gone(self, code: int, reason: str | None = None) -> None:
        """Record that the client has gone: sends raise from now on.

        Frames already queued stay readable; ``client_state`` turns
        ``DISCONNECTED`` when the handler reads the disconnect message.
        """
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason or ""

    # -- handshake and close ------------------------------------------------------------

    async def accept(self, subprotocol: str | None = None, headers: HeaderItems | None = None) -> None:
        """Accept the handshake, optionally choosing one of the client's subprotocols.

        ``headers`` are added to the handshake response: a dict
        (``{"x-server": "ravyn"}``) or ``(name, value)`` pairs, ``str`` or ``bytes``.
        """
        pairs = header_pairs(headers)  # a bad header fails here, not in the server
        if self.client_state is WebSocketState.CONNECTING:
            await self.receive()  # the websocket.connect message
        message: Message = {"type": "websocket.accept", "subprotocol": subprotocol}
        if pairs:
            message["headers"] = pairs
        await self.send(message)

    async def send_denial_response(self, response: Any) -> None:
        """Refuse the handshake with an HTTP response (status, headers, body) instead of a 403.

        ``response`` is a ``ravyn_channels.DenialResponse``, a Django
        ``HttpResponse`` or an ASGI response such as Starlette's. The server must
        support ASGI's websocket denial-response extension (uvicorn does, and
        daphne with ravyn_channels' adapter); otherwise this raises
        ``RuntimeError`` and ``websocket.close()`` (HTTP 403) is the way to refuse.
        """
        if "websocket.http.response" not in (self.scope.get("extensions") or {}):
            raise RuntimeError(
                "The server doesn't support the WebSocket Denial Response extension "
                "(scope['extensions'] has no 'websocket.http.response'); refuse with "
                "websocket.close() (HTTP 403), or serve with uvicorn, or daphne with "
                "RAVYN_CHANNELS['PATCH_DAPHNE'] = True."
            )
        if self.application_state is not WebSocketState.CONNECTING:
            raise RuntimeError(
                "send_denial_response() answers the handshake, so it must come before accept() or close()."
            )
        from .denial import asgi_response

        await asgi_response(response)(self.scope, self._receive, self._denial_send)

    async def _denial_send(self, message: Message) -> None:
        kind = message.get("type", "")
        if kind.startswith("http.response."):  # a plain ASGI HTTP response: same messages, prefixed
            message = dict(message, type=f"websocket.{kind}")
        await self.send(message)

    async def close(self, code: int = status.WS_1000_NORMAL_CLOSURE, reason: str | None = None) -> None:
        """Close the connection (before ``accept`` this refuses the handshake with HTTP 403)."""
        status.check_sendable(code)
        await self.send({"type": "websocket.close", "code": code, "reason": reason or ""})

    # -- typed receive ------------------------------------------------------------------

    async def _receive_data(self, what: str) -> Message:
        if self.application_state is not WebSocketState.CONNECTED:
            if self.application_state is WebSocketState.CONNECTING and self._on_not_accepted:
                await self._on_not_accepted(what)
            if self.close_code is None:  # not accepted, or the handler closed it itself
                raise _not_connected(what)
            # The server closed it (1009, 1013, 1001, ...) or the client left: frames already
            # queued stay readable, then the disconnect message raises WebSocketDisconnect.
            if self.client_state is WebSocketState.DISCONNECTED:
                raise WebSocketDisconnect(self.close_code, self.close_reason)
        if self.client_state is WebSocketState.CONNECTED:
            # The receive loop's common case, inlined from receive(): one coroutine less per frame.
            message = await self._receive()
            kind = message["type"]
            if kind == "websocket.receive":
                return message
            if kind != "websocket.disconnect":
                raise RuntimeError(f'Expected "websocket.receive" or "websocket.disconnect", got {kind!r}.')
            self._client_gone(message.get("code", status.WS_1000_NORMAL_CLOSURE), message.get("reason"))
            self.client_state = WebSocketState.DISCONNECTED
        else:
            message = await self.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(self.close_code or status.WS_1000_NORMAL_CLOSURE, self.close_reason)
        return message

    async def receive_text(self) -> str:
        """The next text frame; a binary frame raises ``WebSocketPayloadError`` (1003)."""
        message = await self._receive_data("receive_text()")
        text = message.get("text")
        if text is None:
            raise WebSocketPayloadError(
                status.WS_1003_UNSUPPORTED_DATA,
                "receive_text() got a binary frame; use receive_bytes() or receive() for binary data.",
            )
        return str(text)

    async def receive_bytes(self) -> bytes:
        """The next binary frame; a text frame raises ``WebSocketPayloadError`` (1003)."""
        message = await self._receive_data("receive_bytes()")
        data = message.get("bytes")
        if data is None:
            raise WebSocketPayloadError(
                status.WS_1003_UNSUPPORTED_DATA,
                "receive_bytes() got a text frame; use receive_text() or receive() for text data.",
            )
        return bytes(data)

    async def receive_json(self, mode: Literal["text", "binary"] = "text") -> Any:
        """The next frame decoded as JSON; invalid JSON raises ``WebSocketPayloadError`` (1007)."""
        if mode == "text":
            raw: str | bytes = await self.receive_text()
        elif mode == "binary":
            raw = await self.receive_bytes()
        else:
            raise _bad_mode("receive_json", mode)
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise WebSocketPayloadError(
                status.WS_1007_INVALID_FRAME_PAYLOAD_DATA, f"receive_json() got invalid JSON: {exc}"
            ) from None
        except RecursionError:  # "[[[[...": deeper than Python's decoder can follow
            raise WebSocketPayloadError(
                status.WS_1007_INVALID_FRAME_PAYLOAD_DATA, "receive_json() got JSON nested too deeply to decode"
            ) from None

    async def iter_text(self) -> AsyncIterator[str]:
        """Text frames until the client disconnects (the loop then just ends)."""
        try:
            while True:
                yield await self.receive_text()
        except WebSocketDisconnect:
            pass

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        """Binary frames until the client disconnects."""
        try:
            while True:
                yield await self.receive_bytes()
        except WebSocketDisconnect:
            pass

    async def iter_json(self) -> AsyncIterator[Any]:
        """JSON frames until the client disconnects."""
        try:
            while True:
                yield await self.receive_json()
        except WebSocketDisconnect:
            pass

    # -- typed send ---------------------------------------------------------------------

    async def send_text(self, data: str) -> None:
        """Send a text frame."""
        if self.application_state is WebSocketState.CONNECTED and self.close_code is None:
            try:  # what send() does, one call less
                await self._send({"type": "websocket.send", "text": data})
            except OSError as exc:
                raise await self._send_failed() from exc
        else:
            await self.send({"type": "websocket.send", "text": data})

    async def send_bytes(self, data: bytes) -> None:
        """Send a binary frame."""
        if self.application_state is WebSocketState.CONNECTED and self.close_code is None:
            try:
                await self._send({"type": "websocket.send", "bytes": data})
            except OSError as exc:
                raise await self._send_failed() from exc
        else:
            await self.send({"type": "websocket.send", "bytes": data})

    async def send_json(self, data: Any, mode: Literal["text", "binary"] = "text") -> None:
        """Send ``data`` as compact JSON in a text (default) or binary frame."""
        if mode not in ("text", "binary"):
            raise _bad_mode("send_json", mode)
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        if mode == "text":
            await self.send_text(text)
        else:
            await self.send_bytes(text.encode("utf-8"))

    def __repr__(self) -> str:
        return f"<WebSocket {self.scope.get('path')!r} {self.application_state.name.lower()}>"
