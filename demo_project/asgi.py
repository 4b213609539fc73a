"""ASGI entry point: ``daphne demo_project.asgi:application``."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_project.settings")

from ravyn_channels.asgi import get_asgi_application

application = get_asgi_application()
