"""Refusing a handshake with a real HTTP response (ASGI's websocket denial-response extension).

    from ravyn_channels import DenialResponse, WebSocketDenial

    async def current_user(websocket: WebSocket, token: str = Query("")) -> User:
        user = await user_for(token)
        if user is None:    # the client gets HTTP 401 {"detail": "bad token"}
            raise WebSocketDenial(401, "bad token", headers={"WWW-Authenticate": "Bearer"})
        return user

    @websocket("/feed")
    async def feed(websocket: WebSocket) -> None:
        if overloaded():
            await websocket.send_denial_response(DenialResponse("try later", status_code=429))
            return
        ...

A server without the extension (daphne with ``PATCH_DAPHNE = False``, or
older servers) cannot send these: ``send_denial_response`` raises
``RuntimeError`` there, and a ``WebSocketDenial`` refuses with a plain 403.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from . import status
from .websocket import HeaderItems, Receive, Send, WebSocketException, header_pairs

__all__ = ["DenialResponse", "WebSocketDenial", "asgi_response"]

ASGIResponse = Callable[[Any, Receive, Send], Awaitable[None]]


def _check_status(status_code: Any) -> int:
    if not isinstance(status_code, int) or isinstance(status_code, bool) or not 300 <= status_code <= 599:
        raise ValueError(
            f"A denial response needs a redirect or error status (300-599), got {status_code!r}; "
            "to accept the connection call websocket.accept()."
        )
    return status_code


class DenialResponse:
    """An HTTP response that refuses a websocket handshake (Starlette's ``Response`` shape).

    ``content`` may be ``str`` (``text/plain``), ``bytes``
    (``application/octet-stream``), a ``dict``/``list`` (JSON) or ``None``;
    ``media_type`` overrides the content type. ``headers`` is a dict or
    ``(name, value)`` pairs. The object is an ASGI application, so it can be
    passed wherever Starlette's responses are.
    """

    def __init__(
        self,
        content: Any = None,
        status_code: int = 403,
        headers: HeaderItems | None = None,
        media_type: str | None = None,
    ):
        self.status_code = _check_status(status_code)
        if content is None:
            body, default_type = b"", None
        elif isinstance(content, bytes):
            body, default_type = content, "application/octet-stream"
        elif isinstance(content, str):
            body, default_type = content.encode("utf-8"), "text/plain; charset=utf-8"
        else:
            try:
                text = json.dumps(content, separators=(",", ":"), ensure_ascii=False)
            except TypeError as exc:
                raise TypeError(f"DenialResponse content must be str, bytes or JSON-serialisable: {exc}") from None
            body, default_type = text.encode("utf-8"), "application/json"
        self.body = body
        self.headers = header_pairs(headers)
        content_type = media_type or default_type
        names = {name for name, _ in self.headers}
        if content_type and b"content-type" not in names:
            self.headers.append((b"content-type", content_type.encode("latin-1")))
        if b"content-length" not in names:
            self.headers.append((b"content-length", str(len(body)).encode("ascii")))

    async def __call__(self, scope: Any, receive: Receive, send: Send) -> None:
        await send({"type": "websocket.http.response.start", "status": self.status_code, "headers": self.headers})
        await send({"type": "websocket.http.response.body", "body": self.body})

    def __repr__(self) -> str:
        return f"DenialResponse(status_code={self.status_code}, body={self.body[:60]!r})"


class WebSocketDenial(WebSocketException):
    """Refuse the handshake with an HTTP response; raise it from a dependency, a permission or a handler.

    ``WebSocketDenial(401, "token expired", headers={"WWW-Authenticate": "Bearer"})``
    sends HTTP 401 with the JSON body ``{"detail": "token expired"}`` (FastAPI's
    ``HTTPException`` shape; ``detail`` defaults to the status phrase). Pass
    ``response=`` (a ``DenialResponse``, a Django ``HttpResponse`` or an ASGI
    response) to send exactly that instead.

    Where the server cannot send HTTP responses, the handshake is refused with
    403. Raised after ``accept``, it closes the connection with ``code``
    (default 1008) like any ``WebSocketException``.
    """

    def __init__(
        self,
        status_code: int = 403,
        detail: Any = None,
        headers: HeaderItems | None = None,
        *,
        response: Any = None,
        code: int = status.WS_1008_POLICY_VIOLATION,
        reason: str | None = None,
    ):
        if response is None:
            _check_status(status_code)
            if detail is None:
                try:
                    detail = HTTPStatus(status_code).phrase
                except ValueError:  # a status http.HTTPStatus does not name
                    detail = ""
            response = DenialResponse({"detail": detail}, status_code=status_code, headers=headers)
        else:
            asgi_response(response)  # fails here, in the code that raises, when it cannot be sent
            status_code = getattr(response, "status_code", status_code)
        super().__init__(code, reason)
        self.status_code = status_code
        self.detail = detail
        self.response = response

    def __str__(self) -> str:
        detail = f": {self.detail}" if self.detail is not None else ""
        return f"HTTP {self.status_code}{detail}"


def asgi_response(response: Any) -> ASGIResponse:
    """``response`` as an ASGI application that sends a denial response.

    Takes a ``DenialResponse``, a Django ``HttpResponse`` (its status, headers,
    cookies and content) or any ASGI response callable (Starlette's ``Response``).
    """
    if isinstance(response, DenialResponse):
        return response
    if _is_django_response(response):
        return _from_django(response)
    if callable(response):
        return response  # type: ignore[no-any-return]
    raise TypeError(
        f"Cannot send {response!r} as a denial response; give a ravyn_channels.DenialResponse, "
        "a Django HttpResponse or an ASGI response (e.g. Starlette's Response)."
    )


def _is_django_response(response: Any) -> bool:
    try:
        from django.http import HttpResponseBase
    except ImportError:  # pragma: no cover - Django is a dependency
        return False
    return isinstance(response, HttpResponseBase)


def _from_django(response: Any) -> DenialResponse:
    if getattr(response, "streaming", False):
        raise TypeError(
            f"Cannot send the streaming {type(response).__name__} as a denial response; "
            "use an HttpResponse (a denial's body is sent in one piece)."
        )
    headers: list[tuple[str, str]] = list(response.items())
    headers += [("Set-Cookie", cookie.output(header="").strip()) for cookie in response.cookies.values()]
    return DenialResponse(bytes(response.content), status_code=response.status_code, headers=headers)
