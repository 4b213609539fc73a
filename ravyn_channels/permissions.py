"""Permissions: who may open a route, and who may go on sending to it.

    @websocket("/admin/feed", permissions=[IsAuthenticated, HasPerm("news.view_story")])

A permission is any object with ``has_permission(websocket) -> bool`` (or an
``async def`` returning ``bool``); a class with a no-argument constructor may
be given instead of an instance. Plain (sync) ``has_permission`` methods run
in a thread with Django's database hygiene, so they may use the ORM; write
``async def`` for checks that need no I/O. A permission may also raise
``WebSocketException`` (or Django's ``PermissionDenied``) itself.

The route's permissions are checked after its parameters are resolved (so a
dependency can authenticate, see ``ravyn_channels.auth``) and before the
handler runs: a refusal refuses the handshake (HTTP 403, one INFO line naming
the permission). A permission with a ``status_code`` attribute (e.g. 401)
refuses with that HTTP status and the JSON body ``{"detail": "permission denied"}``
where the server supports the websocket denial-response extension; one that
raises ``WebSocketDenial`` chooses the whole response. After ``accept``, ``await check_permissions(websocket, ...)``
checks again, e.g. per message; a refusal raises ``PermissionRefused``, which
closes the connection with 1008 and one INFO line when left uncaught.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Iterable
from typing import Any, Protocol, runtime_checkable

from . import status
from .denial import DenialResponse
from .websocket import WebSocket, WebSocketException

__all__ = [
    "BasePermission",
    "HasPerm",
    "IsAuthenticated",
    "IsStaff",
    "Permission",
    "PermissionRefused",
    "check_permissions",
    "permission_list",
    "permission_name",
]


@runtime_checkable
class Permission(Protocol):
    """What a permission is: ``has_permission(websocket)`` returning a bool or an awaitable of one."""

    def has_permission(self, websocket: WebSocket) -> bool | Awaitable[bool]: ...


class BasePermission:
    """Optional base class: ``message`` says why it refuses (in the log line, not to the client).

    ``status_code``: the HTTP status of a refusal before ``accept`` (``None``: 403).
    """

    message = "permission refused"
    status_code: int | None = None

    def has_permission(self, websocket: WebSocket) -> bool | Awaitable[bool]:
        return True

    def __repr__(self) -> str:
        return type(self).__name__


class PermissionRefused(WebSocketException):
    """A permission refused the connection: 403 (or its ``status_code``) before ``accept``, close 1008 after.

    The client only sees the reason ``"permission denied"``; the log line
    names the permission and its ``message``.
    """

    def __init__(self, permission: Any, detail: str | None = None):
        self.permission = permission
        self.detail = detail or getattr(permission, "message", None) or "permission refused"
        super().__init__(status.WS_1008_POLICY_VIOLATION, "permission denied")
        status_code = getattr(permission, "status_code", None)
        if status_code is not None:
            self.response = DenialResponse({"detail": "permission denied"}, status_code=status_code)

    def __str__(self) -> str:
        return f"permission {permission_name(self.permission)} refused: {self.detail}"


def permission_name(permission: Any) -> str:
    """How logs and ``ws_routes`` name a permission: its ``repr`` if it has one, else its class name."""
    if getattr(type(permission), "__repr__", None) is object.__repr__:
        return type(permission).__name__
    return repr(permission)


def _user(websocket: WebSocket) -> Any:
    return websocket.user


class IsAuthenticated(BasePermission):
    """A logged-in user (``websocket.user.is_authenticated``)."""

    message = "the connection has no logged-in user"

    async def has_permission(self, websocket: WebSocket) -> bool:
        return bool(getattr(_user(websocket), "is_authenticated", False))


class IsStaff(BasePermission):
    """A logged-in, active user with ``is_staff`` (the admin's rule)."""

    message = "the user is not an active staff member"

    async def has_permission(self, websocket: WebSocket) -> bool:
        user = _user(websocket)
        return all(getattr(user, flag, False) for flag in ("is_authenticated", "is_active", "is_staff"))


class HasPerm(BasePermission):
    """A logged-in user with every Django permission named: ``HasPerm("app_label.codename", ...)``.

    Checked with ``user.has_perms`` (the configured auth backends), in a thread.
    """

    def __init__(self, *perms: str):
        if not perms:
            raise TypeError('HasPerm() needs at least one permission, e.g. HasPerm("chat.add_message").')
        for perm in perms:
            if not isinstance(perm, str) or perm.count(".") < 1 or perm.startswith(".") or perm.endswith("."):
                raise ValueError(
                    f"HasPerm({perm!r}): name permissions as 'app_label.codename' (e.g. 'chat.add_message')."
                )
        self.perms = perms
        self.message = f"the user lacks {', '.join(perms)}"

    async def has_permission(self, websocket: WebSocket) -> bool:
        user = _user(websocket)
        if not getattr(user, "is_authenticated", False):
            return False
        from channels.db import database_sync_to_async

        return bool(await database_sync_to_async(user.has_perms)(self.perms))

    def __repr__(self) -> str:
        return f"HasPerm({', '.join(repr(p) for p in self.perms)})"


def permission_list(items: Iterable[Any] | None, where: str) -> tuple[Permission, ...]:
    """Instances for ``permissions=[...]`` (classes are instantiated); errors name ``where`` and the fix."""
    if items is None:
        return ()
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise TypeError(f"{where}: permissions= takes a list, e.g. permissions=[IsAuthenticated]; got {items!r}.")
    result: list[Permission] = []
    for item in items:
        if inspect.isclass(item):
            if not callable(getattr(item, "has_permission", None)):
                raise TypeError(f"{where}: permission {item.__name__} has no has_permission(websocket) method.")
            try:
                item = item()
            except TypeError as exc:
                raise TypeError(
                    f"{where}: permission class {item.__name__} cannot be built without arguments ({exc}); "
                    f"pass an instance, e.g. {item.__name__}(...)."
                ) from None
        if not callable(getattr(item, "has_permission", None)):
            raise TypeError(
                f"{where}: {item!r} is not a permission; give a class or object with "
                "has_permission(websocket) -> bool (see ravyn_channels.permissions)."
            )
        code = getattr(item, "status_code", None)
        if code is not None and (not isinstance(code, int) or isinstance(code, bool) or not 300 <= code <= 599):
            raise ValueError(
                f"{where}: permission {permission_name(item)} has status_code={code!r}; "
                "give an HTTP status from 300 to 599 (e.g. 401), or None for 403."
            )
        result.append(item)
    return tuple(result)


async def _allowed(permission: Any, websocket: WebSocket) -> bool:
    method = permission.has_permission
    if inspect.iscoroutinefunction(method):
        result = await method(websocket)
    else:
        from channels.db import database_sync_to_async

        result = await database_sync_to_async(method)(websocket)
        if inspect.isawaitable(result):
            result = await result
    return bool(result)


async def check_permissions(websocket: WebSocket, permissions: Iterable[Any] | None = None) -> None:
    """Raise ``PermissionRefused`` unless every permission allows ``websocket``.

    ``permissions`` defaults to the route's ``permissions=[...]``. In a
    handler, after ``accept``, an uncaught refusal closes with 1008.
    """
    if permissions is None:
        consumer = getattr(websocket, "consumer", None)
        route = getattr(consumer, "route", None)
        checked: tuple[Any, ...] = getattr(route, "permissions", ())
    else:
        checked = permission_list(permissions, "check_permissions()")
    for permission in checked:
        try:
            allowed = await _allowed(permission, websocket)
        except WebSocketException:
            raise
        except Exception as exc:
            from django.core.exceptions import PermissionDenied

            if isinstance(exc, PermissionDenied):
                raise PermissionRefused(permission, str(exc) or None) from exc
            raise
        if not allowed:
            raise PermissionRefused(permission)
