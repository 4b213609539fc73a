"""Django system checks for ravyn_channels (``python manage.py check``)."""

from __future__ import annotations

from typing import Any

from django.core.checks import Error, Warning, register

from .conf import unknown_keys

__all__ = ["check_settings"]


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Warning | Error]:
    """``ravyn_channels.W001``: unknown keys in ``RAVYN_CHANNELS``."""
    return [
        Warning(
            f"RAVYN_CHANNELS has an unknown key {key!r}; it is ignored.",
            hint="See the README's Settings table for the keys ravyn_channels reads.",
            id="ravyn_channels.W001",
        )
        for key in unknown_keys()
    ]
