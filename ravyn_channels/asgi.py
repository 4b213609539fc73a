"""ASGI applications: ``get_asgi_application()`` for a Django project, ``Ravyn`` for a module.

Both route websockets with Channels' ``URLRouter`` over the ``@websocket``
routes, behind Channels' ``AuthMiddlewareStack`` when Django sessions and auth
are installed, and refuse unknown paths with HTTP 403 instead of daphne's 500.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

from channels.routing import ProtocolTypeRouter, URLRouter

from .routing import WebSocketRoute, websocket_urlpatterns

__all__ = ["Ravyn", "get_asgi_application", "websocket_application"]

ASGIApp = Any


def websocket_application(routes: Iterable[WebSocketRoute[Any]] | None = None) -> ASGIApp:
    """The websocket half: routes (default: every registered one) + fallback, with auth if installed."""
    from django.apps import apps
    from django.conf import settings

    app: ASGIApp = URLRouter(websocket_urlpatterns(routes, fallback=True))
    if apps.is_installed("django.contrib.sessions"):
        if apps.is_installed("django.contrib.auth") and settings.DATABASES:
            from channels.auth import AuthMiddlewareStack

            app = AuthMiddlewareStack(app)
        else:
            from channels.sessions import SessionMiddlewareStack

            app = SessionMiddlewareStack(app)
    return app


def _http_application() -> ASGIApp:
    from django.conf import settings
    from django.core.asgi import get_asgi_application as django_asgi_application

    app = django_asgi_application()
    if settings.DEBUG and "django.contrib.staticfiles" in settings.INSTALLED_APPS:
        # Like runserver: serve static files in DEBUG so `daphne project.asgi:application` is enough.
        app = _static_files_handler()(app)
    return app


def _static_files_handler() -> type:
    """Django's ``ASGIStaticFilesHandler``, answering 404 (not 500) to paths outside the static roots."""
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
    from django.core.exceptions import SuspiciousFileOperation
    from django.http import Http404

    class StaticFilesHandler(ASGIStaticFilesHandler):
        def serve(self, request: Any) -> Any:
            try:
                return super().serve(request)
            except SuspiciousFileOperation:  # "/static/../settings.py": a traversal attempt
                raise Http404("No such static file") from None

    return StaticFilesHandler


def get_asgi_application(routes: Iterable[WebSocketRoute[Any]] | None = None) -> ASGIApp:
    """HTTP through Django, websockets through every ``@websocket`` route of the project.

    Use it in ``asgi.py``: ``application = get_asgi_application()``. It calls
    ``django.setup()``, which imports each app's ``sockets.py``.
    """
    from .servers import install_daphne_adapter

    http = _http_application()  # sets Django up (and autodiscovers sockets.py)
    install_daphne_adapter()
    return ProtocolTypeRouter({"http": http, "websocket": websocket_application(routes)})


def _ensure_django(overrides: dict[str, Any] | None) -> None:
    import django
    from django.apps import apps
    from django.conf import settings

    if not settings.configured and not os.environ.get("DJANGO_SETTINGS_MODULE"):
        from .standalone import SETTINGS

        settings.configure(**{**SETTINGS, **(overrides or {})})
    elif overrides:
        raise RuntimeError(
            "Ravyn(settings=...) only applies when no Django settings are configured; "
            "DJANGO_SETTINGS_MODULE is set, so put these values in that module instead."
        )
    if not apps.ready:
        django.setup(set_prefix=False)


class Ravyn:
    """A standalone app serving the given routes, as ``Ravyn(routes=[...])`` does in Ravyn.

    Without ``DJANGO_SETTINGS_MODULE`` it configures a minimal Django (in-memory
    channel layer, ``ALLOWED_HOSTS`` of localhost; ``settings={...}`` overrides
    any of them). With it, the project's settings apply (layer, apps, auth).
    HTTP requests go to Django (404 unless the project has views).
    """

    def __init__(
        self,
        routes: Sequence[WebSocketRoute[Any]] = (),
        *,
        settings: dict[str, Any] | None = None,
    ):
        bad = [r for r in routes if not isinstance(r, WebSocketRoute)]
        if bad:
            raise TypeError(
                f"Ravyn(routes=...) takes @websocket-decorated handlers; got {bad[0]!r}. "
                "Decorate the handler with @websocket('/path')."
            )
        _ensure_django(settings)
        self.routes = list(routes)
        self.application = get_asgi_application(self.routes)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await self.application(scope, receive, send)

    def __repr__(self) -> str:
        return f"<Ravyn routes={[r.path for r in self.routes]!r}>"
