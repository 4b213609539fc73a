"""A login that ends closes its sockets, on every process (``RAVYN_CHANNELS["CLOSE_ON_LOGOUT"]``).

- ``user_logged_out`` (Django's ``logout``/``alogout``): the sockets opened with that
  session close (every socket of the user when the request had no session);
- a save of the user with ``is_active=False``: every socket of the user closes;
- a save that changes the session auth hash (a new password): every socket of the
  user opened with the old hash closes (the browser that changed it reconnects with
  its updated session; every other session is logged out by Django anyway).

Each is one ``ravyn.close`` event (``ravyn_channels.ops``), sent once the
transaction commits. The client sees 1008 and a reason (``"logged out"``,
``"account deactivated"``, ``"password changed"``). A layer failure is logged,
never raised into the logout or the save.
"""

from __future__ import annotations

from typing import Any

from django.db import router, transaction

from . import ops
from .conf import get_settings

__all__ = ["connect_signals"]

#: Saves that only touch these fields cannot end a login.
_WATCHED = frozenset({"password", "is_active"})


def _logged_out(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    if not get_settings().CLOSE_ON_LOGOUT or user is None or getattr(user, "pk", None) is None:
        return
    session = getattr(request, "session", None)
    key = getattr(session, "session_key", None)
    session_key = key if isinstance(key, str) else None
    ops.send_event_logged(ops.user_event(user, ops.SESSION_END_CODE, "logged out", session=session_key))


def _user_saved(
    sender: Any, instance: Any, created: bool = False, raw: bool = False, update_fields: Any = None, **kwargs: Any
) -> None:
    if created or raw or not get_settings().CLOSE_ON_LOGOUT or getattr(instance, "pk", None) is None:
        return
    if update_fields is not None and not (_WATCHED & set(update_fields)):
        return  # e.g. update_last_login at every login
    event = ops.user_event(instance, ops.SESSION_END_CODE, "")
    if not getattr(instance, "is_active", True):
        event.update(inactive=True, reason="account deactivated")
    else:
        get_hash = getattr(instance, "get_session_auth_hash", None)
        if not callable(get_hash):
            return
        # Closes only the sockets whose user had another hash: a password change.
        event.update(hash=str(get_hash()), reason="password changed")
    transaction.on_commit(lambda: ops.send_event_logged(event), using=router.db_for_write(sender))


def connect_signals() -> None:
    """Connect the receivers (called by the app's ``ready()`` when ``django.contrib.auth`` is installed)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.signals import user_logged_out
    from django.db.models.signals import post_save

    user_logged_out.connect(_logged_out, dispatch_uid="ravyn_channels.logouts")
    post_save.connect(_user_saved, sender=get_user_model(), dispatch_uid="ravyn_channels.logouts")
