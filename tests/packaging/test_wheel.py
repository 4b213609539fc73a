"""The package as a user gets it: built into an sdist and a wheel, installed (not editable) into a
fresh virtualenv, and the seed program served by daphne from that install, away from this checkout."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
import websockets

from tests.integration.conftest import Server, free_port

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration

SEED = '''\
from ravyn_channels import Ravyn, websocket, WebSocket, WebSocketDisconnect

@websocket("/ws/{client_id}")
async def chat_socket(websocket: WebSocket, client_id: str) -> None:
    await websocket.accept()
    try:
        while True:
            data = await websocket.receive_text()
            await websocket.send_text(f"Message from {client_id}: {data}")
    except WebSocketDisconnect:
        print(f"Client {client_id} disconnected")

app = Ravyn(routes=[chat_socket])
'''


def _run(*argv: str | Path, cwd: Path = ROOT) -> str:
    # Not the checkout: tox puts it on PYTHONPATH, which would shadow the installed wheel.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")}
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{argv} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _package_files() -> set[str]:
    """Every file git tracks under ravyn_channels/ (code, py.typed, static files, templates)."""
    out = _run("git", "ls-files", "ravyn_channels")
    return {line for line in out.splitlines() if line and "__pycache__" not in line}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--outdir", out, ROOT)
    return out


def test_sdist_and_wheel_pass_twine_check(dist: Path) -> None:
    wheels, sdists = list(dist.glob("*.whl")), list(dist.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(dist.iterdir())
    out = _run(sys.executable, "-m", "twine", "check", "--strict", *wheels, *sdists)
    assert out.count("PASSED") == 2, out


def test_wheel_ships_every_package_file(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        shipped = set(zf.namelist())
    missing = sorted(_package_files() - shipped)
    assert not missing, f"files of ravyn_channels/ missing from the wheel: {missing}"


def test_seed_program_runs_from_the_installed_wheel(dist: Path, tmp_path: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    _run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", wheel, cwd=tmp_path)

    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "echo.py").write_text(SEED)
    # The installed package, not this checkout: its location is inside the fresh venv.
    where = _run(python, "-c", "import os, ravyn_channels; print(os.path.dirname(ravyn_channels.__file__))",
                 cwd=app_dir)
    assert where.strip().startswith(str(env_dir)), where
    static = _run(python, "-c", "import ravyn_channels, pathlib; p = pathlib.Path(ravyn_channels.__file__).parent; "
                  "print(sorted(str(f.relative_to(p.parent)) for f in p.rglob('*') if f.is_file() "
                  "and f.suffix not in ('.py', '.pyc')))", cwd=app_dir)
    for name in _package_files():
        if not name.endswith(".py"):
            assert name in static, f"{name} not installed from the wheel: {static}"

    port = free_port()
    env = {"PATH": f"{env_dir / 'bin'}:/usr/bin:/bin", "PYTHONUNBUFFERED": "1", "HOME": str(tmp_path)}
    server = Server([str(env_dir / "bin" / "daphne"), "-b", "127.0.0.1", "-p", str(port), "echo:app"],
                    app_dir, env, port, tmp_path / "daphne.log")
    try:
        async def talk() -> list[str]:
            async with websockets.connect(f"ws://127.0.0.1:{port}/ws/42") as ws:
                replies = []
                for text in ("hello", "wheel"):
                    await ws.send(text)
                    replies.append(str(await asyncio.wait_for(ws.recv(), 10)))
                return replies

        assert asyncio.run(talk()) == ["Message from 42: hello", "Message from 42: wheel"]
    finally:
        server.stop()
    assert "Traceback" not in server.log(), server.log()
