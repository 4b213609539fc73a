"""Token routes and the views that log in, out and change a password (tests/integration/test_tokens.py).

HTTP (form POSTs, no CSRF: a test app): ``/login/`` (username, password) logs in and
answers a token; ``/token/`` answers a new token for the session's user; ``/logout/``;
``/password/`` (password) sets a new password as Django's ``PasswordChangeView`` does;
``/revoke/`` revokes the session user's tokens (``revoke_tokens``).
Websocket ``/feed``: a token in ``["bearer", token]``; echoes text until the client
leaves, then prints how the handler ended (the test reads the server log).
Websocket ``/me``: the session's user (cookie), no token; echoes text the same way.
"""

from __future__ import annotations

from django.contrib.auth import authenticate, login, logout, update_session_auth_hash
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from ravyn_channels import Inject, WebSocket, WebSocketDisconnect, websocket
from ravyn_channels.asgi import get_asgi_application
from ravyn_channels.auth import issue_token, revoke_tokens, token_subprotocol, token_user
from ravyn_channels.permissions import IsAuthenticated


@websocket("/feed", permissions=[IsAuthenticated])
async def feed(websocket: WebSocket, user: object = Inject(token_user)) -> None:
    await websocket.accept(subprotocol=token_subprotocol(websocket))
    try:
        async for text in websocket.iter_text():
            await websocket.send_text(f"{websocket.user.username}: {text}")
    except WebSocketDisconnect as exc:  # pragma: no cover - iter_text ends without raising
        print(f"feed raised {exc.code}", flush=True)
    print(f"feed of {websocket.user.username} ended: {websocket.close_code}", flush=True)


@websocket("/me")
async def me(websocket: WebSocket) -> None:
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(f"{websocket.user.username or 'anonymous'}: {text}")
    print(f"me of {websocket.user.username} ended: {websocket.close_code}", flush=True)


@csrf_exempt
def login_view(request: HttpRequest) -> HttpResponse:
    user = authenticate(request, username=request.POST["username"], password=request.POST["password"])
    if user is None:
        return HttpResponse("bad credentials", status=403)
    login(request, user)
    return HttpResponse(issue_token(user))


def token_view(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return HttpResponse("log in first", status=403)
    return HttpResponse(issue_token(request.user))


@csrf_exempt
def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)
    return HttpResponse("bye")


@csrf_exempt
def password_view(request: HttpRequest) -> HttpResponse:
    user = request.user
    user.set_password(request.POST["password"])  # type: ignore[union-attr]
    user.save()  # type: ignore[union-attr]
    update_session_auth_hash(request, user)  # type: ignore[arg-type]
    return HttpResponse("changed")


@csrf_exempt
def revoke_view(request: HttpRequest) -> HttpResponse:
    revoke_tokens(request.user)
    return HttpResponse("revoked")


urlpatterns = [
    path("revoke/", revoke_view),
    path("login/", login_view),
    path("token/", token_view),
    path("logout/", logout_view),
    path("password/", password_view),
]

application = get_asgi_application()
