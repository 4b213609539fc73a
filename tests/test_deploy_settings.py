"""The production settings of the docs (Getting started, "In a Django project") pass ``manage.py check --deploy``."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = "# settings.py (mysite)"


def readme_settings() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "getting-started.md").read_text(), flags=re.S)
    [block] = [b for b in blocks if b.startswith(MARKER)]
    return block


def check_deploy(tmp_path: Path, settings: str) -> subprocess.CompletedProcess[str]:
    site = tmp_path / "mysite"
    site.mkdir()
    (site / "__init__.py").write_text("")
    (site / "settings.py").write_text(settings)
    (site / "urls.py").write_text("urlpatterns = []\n")
    asgi = "from ravyn_channels.asgi import get_asgi_application\napplication = get_asgi_application()\n"
    (site / "asgi.py").write_text(asgi)
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(
        DJANGO_SETTINGS_MODULE="mysite.settings",
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]),
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        REDIS_URL="redis://127.0.0.1:6379/0",
    )
    argv = [sys.executable, "-m", "django", "check", "--deploy", "--fail-level", "WARNING"]
    return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_readme_production_settings_pass_check_deploy(tmp_path: Path) -> None:
    result = check_deploy(tmp_path, readme_settings())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_check_deploy_would_catch_a_weaker_copy(tmp_path: Path) -> None:
    """The test can fail: the same settings without the clickjacking middleware and with DEBUG do not pass."""
    weaker = readme_settings().replace("DEBUG = False", "DEBUG = True")
    weaker = weaker.replace('    "django.middleware.clickjacking.XFrameOptionsMiddleware",\n', "")
    result = check_deploy(tmp_path, weaker)
    assert result.returncode != 0
    assert "security.W018" in result.stdout + result.stderr and "security.W002" in result.stdout + result.stderr
