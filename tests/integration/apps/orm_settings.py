"""Settings for tests/integration/test_orm.py's server: a real database, chosen by the test.

``ORM_DB`` is ``sqlite:<path>`` or ``postgresql:<database name>`` (127.0.0.1:5432, the
current user, trust auth); ``ORM_CONN_MAX_AGE`` is seconds or ``none`` (persistent);
``ORM_APP_NAME`` tags the server's PostgreSQL sessions so the test can count them.
"""

import os

SECRET_KEY = "orm-tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "channels", "ravyn_channels"]
ROOT_URLCONF = "ravyn_channels.standalone"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
RAVYN_CHANNELS = {"AUTODISCOVER": []}

_engine, _, _name = os.environ.get("ORM_DB", "sqlite::memory:").partition(":")
_age = os.environ.get("ORM_CONN_MAX_AGE", "0")
_max_age = None if _age == "none" else int(_age)
if _engine == "postgresql":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": _name,
            "HOST": "127.0.0.1",
            "PORT": 5432,
            "CONN_MAX_AGE": _max_age,
            "OPTIONS": {"application_name": os.environ.get("ORM_APP_NAME", "ravyn-orm-tests")},
        }
    }
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": _name, "CONN_MAX_AGE": _max_age}}
