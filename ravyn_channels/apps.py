"""Django app config: autodiscovers ``sockets.py`` modules and registers checks."""

from __future__ import annotations

import logging

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class RavynChannelsConfig(AppConfig):
    name = "ravyn_channels"
    verbose_name = "Ravyn Channels"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .auth import connect_signals
        from .conf import get_settings
        from .layers import prepare_layers
        from .servers import install_daphne_adapter

        # A LOGGING dict with disable_existing_loggers=True (Django's logging runs before
        # ready()) would silence handler tracebacks; they must always be reported.
        logging.getLogger("ravyn_channels").disabled = False
        install_daphne_adapter()
        # Before any connection: redis-py 8's 5 s socket timeout must not cut RedisChannelLayer's
        # blocking read (plain consumers share the layer object, so they are fixed too).
        prepare_layers()
        connect_signals()
        from django.apps import apps

        if apps.is_installed("django.contrib.auth"):
            from .logouts import connect_signals as close_sockets_on_logout

            close_sockets_on_logout()  # a login that ends closes its sockets on every process (CLOSE_ON_LOGOUT)
        for module in get_settings().AUTODISCOVER:
            autodiscover_modules(module)
