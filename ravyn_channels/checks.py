"""Django system checks for ravyn_channels (``python manage.py check``)."""

from __future__ import annotations

from typing import Any

from django.core.checks import Error, Warning, register

from .conf import get_settings, unknown_keys

__all__ = ["check_settings"]


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Warning | Error]:
    """``ravyn_channels.W001``: unknown keys in ``RAVYN_CHANNELS``; ``E001``: a bad ``PRESENCE_TTL``."""
    found: list[Warning | Error] = [
        Warning(
            f"RAVYN_CHANNELS has an unknown key {key!r}; it is ignored.",
            hint="See the README's Settings table for the keys ravyn_channels reads.",
            id="ravyn_channels.W001",
        )
        for key in unknown_keys()
    ]
    ttl = get_settings().PRESENCE_TTL
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl <= 0:
        found.append(
            Error(
                f"RAVYN_CHANNELS['PRESENCE_TTL'] must be a positive number of seconds, got {ttl!r}.",
                hint="Use e.g. 30 (the default): crashed processes' connections leave presence within that time.",
                id="ravyn_channels.E001",
            )
        )
    return found
