"""The minimal Django that ``Ravyn(routes=[...])`` configures when no settings module is set.

It has no database, sessions or auth: ``websocket.user`` is ``AnonymousUser``;
the channel layer is in memory (one process). Set ``DJANGO_SETTINGS_MODULE``
to serve the same routes with a project's settings.
"""

from __future__ import annotations

from typing import Any

#: No HTTP views: every HTTP request gets Django's 404.
urlpatterns: list[Any] = []

SETTINGS: dict[str, Any] = {
    "DEBUG": False,
    "SECRET_KEY": "ravyn-channels-standalone-not-secret",
    "ALLOWED_HOSTS": ["localhost", "127.0.0.1", "[::1]"],
    "INSTALLED_APPS": [
        "django.contrib.contenttypes",
        "django.contrib.auth",
        "channels",
        "ravyn_channels",
    ],
    "ROOT_URLCONF": "ravyn_channels.standalone",
    "DATABASES": {},
    "CHANNEL_LAYERS": {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}},
    "RAVYN_CHANNELS": {"AUTODISCOVER": []},
    "USE_TZ": True,
    "LOGGING": {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"console": {"class": "logging.StreamHandler"}},
        "loggers": {"ravyn_channels": {"handlers": ["console"], "level": "INFO", "propagate": False}},
    },
}
