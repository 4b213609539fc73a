"""Every Python block of the README and the docs runs, so a snippet that stops working fails CI.

A block is run according to the comment just before its fence:

- none: a complete module: executed in a fresh namespace under the test settings (its routes are
  registered in a throw-away registry; the demo's apps, such as ``chat``, are importable), and each
  ``async def test_*`` it defines is then run;
- ``<!-- snippet: fragment -->``: part of a larger program (a signature, a settings excerpt): it
  must still be valid Python, and is compiled;
- ``<!-- snippet: server module=NAME path=/ws/x send=TEXT expect=TEXT -->``: a program served
  with ``daphne NAME:app`` (no settings module) in a temporary folder; a real client connects to
  ``path``, sends ``send`` and must read ``expect``.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import re
import shlex
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ravyn_channels import routing

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^(?P<indent>[ \t]*)```python[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
MARKER = re.compile(r"<!--\s*snippet:\s*(?P<kind>\w+)(?P<args>[^>]*?)-->\s*$")


@dataclass
class Snippet:
    path: Path
    line: int
    code: str
    kind: str = "module"
    args: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def snippets() -> Iterator[Snippet]:
    for path in documents():
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            before = text[: match.start()].rstrip().splitlines()
            line = text.count("\n", 0, match.start()) + 1
            snippet = Snippet(path, line, textwrap.dedent(match.group("body")))
            marker = MARKER.search(before[-1]) if before else None
            if marker:
                snippet.kind = marker.group("kind")
                snippet.args = dict(part.split("=", 1) for part in shlex.split(marker.group("args")))
            yield snippet


ALL = list(snippets())


def test_the_docs_have_snippets() -> None:
    kinds = {s.kind for s in ALL}
    assert len(ALL) >= 10 and {"module", "fragment"} <= kinds, [s.id for s in ALL]
    unknown = {s.id: s.kind for s in ALL if s.kind not in {"module", "fragment", "server"}}
    assert not unknown, f"unknown snippet kinds: {unknown}"


@pytest.mark.parametrize("snippet", [s for s in ALL if s.kind == "fragment"], ids=lambda s: s.id)
def test_fragment_is_valid_python(snippet: Snippet) -> None:
    compile(snippet.code, snippet.id, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)  # fragments of handlers await


@pytest.mark.parametrize("snippet", [s for s in ALL if s.kind == "module"], ids=lambda s: s.id)
async def test_module_runs(snippet: Snippet, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routing, "_registry", [])
    monkeypatch.syspath_prepend(str(ROOT / "demo_project"))
    namespace: dict[str, object] = {"__name__": f"snippet_{snippet.line}", "__file__": str(snippet.path)}
    exec(compile(snippet.code, snippet.id, "exec"), namespace)
    for name, value in namespace.items():
        if name.startswith("test_") and inspect.iscoroutinefunction(value):
            await value()


@pytest.mark.integration
@pytest.mark.parametrize("snippet", [s for s in ALL if s.kind == "server"], ids=lambda s: s.id)
def test_server_program_serves(snippet: Snippet, tmp_path: Path) -> None:
    import websockets

    from tests.integration.conftest import Server, free_port, server_env

    module = snippet.args["module"]
    (tmp_path / f"{module}.py").write_text(snippet.code, encoding="utf-8")
    port = free_port()
    daphne = str(Path(sys.executable).parent / "daphne")
    env = server_env()
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
    server = Server([daphne, "-b", "127.0.0.1", "-p", str(port), f"{module}:app"], tmp_path, env, port,
                    tmp_path / "daphne.log")
    try:
        async def talk() -> str:
            async with websockets.connect(f"ws://127.0.0.1:{port}{snippet.args['path']}") as ws:
                await ws.send(snippet.args["send"])
                return str(await asyncio.wait_for(ws.recv(), 10))

        assert asyncio.run(talk()) == snippet.args["expect"]
    finally:
        server.stop()
    assert "Traceback" not in server.log(), server.log()
