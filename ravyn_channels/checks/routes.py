"""E001 to E003 (routes and handlers as served) and E060/W060 (topic sockets)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register

from ..params import REQUIRED

_CONVERTER_NAME = re.compile(r"<([^:<>]+):[^<>]+>")


def _routes(app_configs: Iterable[Any] | None, routes: Iterable[Any] | None) -> list[Any]:
    from ..routing import registered_routes

    chosen = registered_routes() if routes is None else list(routes)
    if app_configs is None:
        return chosen
    names = {config.name for config in app_configs}
    prefixes = tuple(f"{name}." for name in names)
    modules = [(r, str(getattr(r.function, "__module__", ""))) for r in chosen]  # r.function: partials unwrapped
    return [r for r, module in modules if module in names or module.startswith(prefixes)]


def _shape(route: Any) -> str:
    """A route's path with parameter names dropped: ``/a/{x}`` and ``/a/{y}`` collide."""
    return str(_CONVERTER_NAME.sub(r"<\1>", route.route))


def _auth_middleware_runs() -> bool:
    from django.apps import apps

    return bool(
        apps.is_installed("django.contrib.sessions") and apps.is_installed("django.contrib.auth") and settings.DATABASES
    )


@register("ravyn_channels")
def check_routes(app_configs: Any = None, routes: Iterable[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """E001 duplicate paths, E002 handlers that are not async, E003 parameters that cannot be filled."""
    from ..signatures import plan_for

    messages: list[CheckMessage] = []
    everything = _routes(None, routes)
    selected = {id(r) for r in _routes(app_configs, everything)}
    first: dict[str, Any] = {}
    for route in everything:
        shape = _shape(route)
        other = first.setdefault(shape, route)
        if other is not route and (id(route) in selected or id(other) in selected):
            messages.append(
                Error(
                    f"Routes {other.qualname} and {route.qualname} both serve {route.path!r}; "
                    f"{other.qualname} (declared first) gets every connection.",
                    hint="Give one of them another path, or remove one. The same module imported under "
                    "two names (e.g. 'sockets' and 'chat.sockets') declares its routes twice.",
                    obj=route,
                    id="ravyn_channels.E001",
                )
            )
    auth_runs = _auth_middleware_runs()
    for route in everything:
        if id(route) not in selected:
            continue
        if not inspect.iscoroutinefunction(route.endpoint):
            messages.append(
                Error(
                    f"The handler of {route.path!r} ({route.qualname}) is not an 'async def' function.",
                    hint="Write the handler as 'async def'; run sync work inside it with "
                    "channels.db.database_sync_to_async. Do not replace route.endpoint after decoration.",
                    obj=route,
                    id="ravyn_channels.E002",
                )
            )
            continue
        try:
            plan = plan_for(route.endpoint, route.param_types)
        except TypeError as exc:
            messages.append(
                Error(
                    str(exc),
                    hint="Fix the handler's signature as the message says.",
                    obj=route,
                    id="ravyn_channels.E003",
                )
            )
            continue
        if not auth_runs:
            for owner, slot in plan.walk():
                if slot.kind == "user" and slot.user_required and slot.default is REQUIRED:
                    messages.append(
                        Error(
                            f"{owner}: parameter {slot.name!r} needs a logged-in user, but no "
                            "authentication runs, so every connection would be refused.",
                            hint="Add 'django.contrib.sessions' and 'django.contrib.auth' to INSTALLED_APPS "
                            "with a database (routes are then wrapped in Channels' AuthMiddlewareStack), "
                            "or take the user from a dependency, e.g. user=Inject(ravyn_channels.auth.token_user).",
                            obj=route,
                            id="ravyn_channels.E003",
                        )
                    )
    return messages


@register("ravyn_channels")
def check_topics(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E060/W060: topic sockets (``ravyn_channels.topics``), checked only when some are declared."""
    from ..topics.checks import check_topics as check

    return check(app_configs, **kwargs)
