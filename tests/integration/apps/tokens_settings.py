"""Settings for tests/integration/test_tokens.py's server: sessions, auth and a SQLite file (``TOKENS_DB``)."""

import os

SECRET_KEY = "tokens-tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "channels",
    "ravyn_channels",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "tests.integration.apps.tokens"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
RAVYN_CHANNELS = {"AUTODISCOVER": []}
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ.get("TOKENS_DB", ":memory:")}}
