"""Autobahn|Testsuite's ``wstest``, installed once into a cached Python 2.7 virtualenv.

PyPI's ``autobahntestsuite`` is Python 2 code whose wheel pins every dependency
(Twisted 19.10, autobahn 0.10.9, ...). It is installed from PyPI into
``<home>/py27``, a virtualenv made by ``virtualenv<20.22`` (the last release
that runs on and creates Python 2.7) with a Python 2.7 found in
``AUTOBAHN_PYTHON27``, pyenv's versions or ``PATH``. ``<home>`` is ``AUTOBAHN_HOME`` or ``.autobahn/``
at the repository root (git-ignored).
"""

from __future__ import annotations

import fcntl
import glob
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
REQUIREMENT = "autobahntestsuite==25.10.1"
VIRTUALENV = "virtualenv<20.22"


class WstestUnavailable(RuntimeError):
    """No Python 2.7 here, or installing ``autobahntestsuite`` failed."""


def home() -> Path:
    return Path(os.environ.get("AUTOBAHN_HOME") or ROOT / ".autobahn")


def find_python27() -> str | None:
    """A Python 2.7 interpreter: ``AUTOBAHN_PYTHON27``, else pyenv's newest 2.7, else ``python2.7``."""
    explicit = os.environ.get("AUTOBAHN_PYTHON27")
    if explicit:
        return explicit
    roots = [os.environ.get("PYENV_ROOT", ""), os.path.expanduser("~/.pyenv")]
    for root in filter(None, roots):
        found = sorted(glob.glob(os.path.join(root, "versions", "2.7*", "bin", "python2.7")))
        if found:
            return found[-1]
    return shutil.which("python2.7")


def py2_env(**extra: str) -> dict[str, str]:
    """This environment without the Python 3 paths (``PYTHONPATH``, ``VIRTUAL_ENV``)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(extra)
    return env


def _run(argv: list[str], what: str, timeout: float, env: dict[str, str]) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        raise WstestUnavailable(f"{what} took over {timeout:.0f} s: {' '.join(argv)}") from exc
    if done.returncode != 0:
        raise WstestUnavailable(
            f"{what} failed (exit {done.returncode}): {' '.join(argv)}\n{done.stdout[-2000:]}{done.stderr[-4000:]}"
        )


def ensure_wstest(timeout: float = 600.0) -> Path:
    """The path of ``wstest``, building the virtualenv first if it is not there yet."""
    base = home()
    venv = base / "py27"
    wstest = venv / "bin" / "wstest"
    marker = venv / ".installed"
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time; the others wait and reuse it
        if wstest.exists() and marker.exists() and marker.read_text() == REQUIREMENT:
            return wstest
        python27 = find_python27()
        if python27 is None:
            raise WstestUnavailable(
                "Autobahn|Testsuite needs Python 2.7: install it (pyenv install 2.7.18) "
                "or set AUTOBAHN_PYTHON27 to its interpreter."
            )
        # Python 2.7's own pip and virtualenv: the test environment may have no pip (uv).
        tool = base / "virtualenv-py27"
        for stale in (venv, tool):
            shutil.rmtree(stale, ignore_errors=True)
        quiet = py2_env(PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONWARNINGS="ignore")
        argv = [python27, "-m", "pip", "install", "-q", "--target", str(tool), VIRTUALENV]
        _run(argv, f"installing {VIRTUALENV}", timeout, quiet)
        argv = [python27, "-m", "virtualenv", "-q", "-p", python27, str(venv)]
        _run(argv, "creating the Python 2.7 virtualenv", timeout, dict(quiet, PYTHONPATH=str(tool)))
        _run([str(venv / "bin" / "pip"), "install", "-q", REQUIREMENT], f"installing {REQUIREMENT}", timeout, quiet)
        if not wstest.exists():
            raise WstestUnavailable(f"{REQUIREMENT} installed no {wstest}")
        marker.write_text(REQUIREMENT)
        return wstest
