"""The browser client (static/ravyn_channels/topics.js) in headless Chromium against real daphne."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import Server, StartServer, free_port
from .test_browser import browser  # noqa: F401  (the headless Chromium fixture)
from .test_topics import write_app

pytestmark = [pytest.mark.integration, pytest.mark.browser]

SETTINGS = """\
SECRET_KEY = "x"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django.contrib.staticfiles",
                  "channels", "ravyn_channels"]
DATABASES = {}
ROOT_URLCONF = "topics_urls"
STATIC_URL = "/static/"
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
RAVYN_CHANNELS = {"AUTODISCOVER": []}
"""

URLS = """\
from django.http import HttpResponse
from django.urls import path

def page(request):
    return HttpResponse("<!doctype html><title>topics</title><p>topics test page</p>")

urlpatterns = [path("", page)]
"""

LOAD = "async () => { window.t = await import('/static/ravyn_channels/topics.js'); return Object.keys(window.t); }"


def serve(tmp_path: Path, start_server: StartServer, port: int | None = None) -> Server:
    write_app(tmp_path)
    (tmp_path / "topics_settings.py").write_text(SETTINGS)
    (tmp_path / "topics_urls.py").write_text(URLS)
    return start_server("topics_app:app", cwd=tmp_path, settings="topics_settings", port=port)


def open_page(chromium: Any, server: Server) -> Any:
    page = chromium.new_page()
    page.goto(server.http + "/")
    assert {"Socket", "Channel", "Presence", "ReplyError", "TimeoutError", "PROTOCOL"} <= set(page.evaluate(LOAD))
    return page


def wait_for(page: Any, expression: str, timeout: float = 10.0) -> Any:
    page.wait_for_function(expression, timeout=timeout * 1000)
    return page.evaluate(expression)


def test_two_topics_on_one_socket(browser: Any, tmp_path: Path, start_server: StartServer) -> None:  # noqa: F811
    server = serve(tmp_path, start_server)
    page = open_page(browser, server)
    result = page.evaluate(
        """async () => {
            const a = new t.Socket("/live").connect();
            const b = new t.Socket("/live").connect();
            const got = [];
            const one = a.channel("room:1"), two = a.channel("room:2");
            one.on("message", (p) => got.push(["room:1", p.text]));
            two.on("message", (p) => got.push(["room:2", p.text]));
            const joined = [await one.join({nick: "ann"}), await two.join()];
            await b.channel("room:2").join();
            const reply = await b.channel("room:2").push("message", {text: "hi"});
            await new Promise((r) => setTimeout(r, 300));
            await one.leave();
            await b.channel("room:1").join();
            await b.channel("room:1").push("message", {text: "after leave"});
            await new Promise((r) => setTimeout(r, 300));
            return {joined, reply, got, attempts: a.attempts, state: a.state, channels: [one.state, two.state]};
        }"""
    )
    assert result["joined"] == [{"room": 1, "nick": "ann"}, {"room": 2, "nick": None}]
    assert result["reply"] == {"sent": "hi"}
    assert result["got"] == [["room:2", "hi"]]
    assert result["attempts"] == 1 and result["state"] == "open"
    assert result["channels"] == ["closed", "joined"]


def test_refused_join_and_reply_timeout(browser: Any, tmp_path: Path, start_server: StartServer) -> None:  # noqa: F811
    server = serve(tmp_path, start_server)
    page = open_page(browser, server)
    result = page.evaluate(
        """async () => {
            const s = new t.Socket("/live").connect();
            const out = {};
            try { await s.channel("room:403").join(); out.refused = "no"; }
            catch (e) { out.refused = [e.name, e.reason, s.channel("room:403").state]; }
            const room = s.channel("room:5");
            await room.join();
            try { await room.push("slow", 2, {timeout: 300}); out.timeout = "no"; }
            catch (e) { out.timeout = e.name; }
            try { await room.push("message", {txt: 1}); } catch (e) { out.invalid = e.response.errors[0].field; }
            out.after = await room.push("message", {text: "still open"}, {timeout: 5000});
            out.state = s.state;
            return out;
        }"""
    )
    assert result["refused"] == ["ReplyError", "this room is closed", "errored"]
    assert result["timeout"] == "TimeoutError"
    assert result["invalid"] == "text"
    assert result["after"] == {"sent": "still open"} and result["state"] == "open"


def test_server_restart_rejoins_without_duplicates(
    browser: Any,  # noqa: F811
    tmp_path: Path,
    start_server: StartServer,
) -> None:
    port = free_port()
    server = serve(tmp_path, start_server, port)
    page = open_page(browser, server)
    page.evaluate(
        """async () => {
            window.s = new t.Socket("/live", {backoff: () => 200}).connect();
            window.room = s.channel("room:8");
            window.other = s.channel("room:9");
            await room.join({nick: "bot"});
            await other.join();
        }"""
    )
    server.stop()
    wait_for(page, "window.s.state === 'retrying'")
    again = serve(tmp_path, start_server, port)
    wait_for(page, "window.room.joins === 2 && window.other.joins === 2 && window.room.state === 'joined'", 20)
    time.sleep(0.5)
    log = again.log()
    assert log.count("JOINED 8") == 1 and log.count("JOINED 9") == 1
    state = page.evaluate("async () => [s.connections, room.joins, await room.push('message', {text: 'back'})]")
    assert state == [2, 2, {"sent": "back"}]


def test_no_reconnect_loop_after_a_refused_handshake(
    browser: Any,  # noqa: F811
    tmp_path: Path,
    start_server: StartServer,
) -> None:
    server = serve(tmp_path, start_server)
    page = open_page(browser, server)
    page.evaluate("() => { window.s = new t.Socket('/nowhere', {backoff: () => 100}).connect(); }")
    wait_for(page, "window.s.state === 'refused'")
    time.sleep(1.5)
    # One handshake, and one more to tell a refusal from a restart that finished meanwhile: no loop.
    assert page.evaluate("[s.state, s.attempts, s.connections]") == ["refused", 2, 0]
    assert server.log().count("no route matches") == 2


def test_policy_close_is_not_retried_but_a_drop_is(
    browser: Any,  # noqa: F811
    tmp_path: Path,
    start_server: StartServer,
) -> None:
    server = serve(tmp_path, start_server)
    page = open_page(browser, server)
    result = page.evaluate(
        """async () => {
            // A fake server socket: opens, then closes with the code asked for.
            const codes = [4000, 1008];
            class Fake extends EventTarget {
                constructor(url, protocols) {
                    super(); this.protocol = t.PROTOCOL; this.code = codes.shift();
                    setTimeout(() => this.onopen && this.onopen(), 10);
                    setTimeout(() => this.onclose && this.onclose({code: this.code, reason: ""}), 50);
                }
                send() {} close() {}
            }
            const s = new t.Socket("/live", {WebSocket: Fake, backoff: () => 20}).connect();
            await new Promise((r) => setTimeout(r, 600));
            return [s.state, s.attempts, s.connections];
        }"""
    )
    assert result == ["refused", 2, 2]


def test_presence_helper(browser: Any, tmp_path: Path, start_server: StartServer) -> None:  # noqa: F811
    server = serve(tmp_path, start_server)
    page = open_page(browser, server)
    page.evaluate(
        """async () => {
            window.a = new t.Socket("/live").connect();
            window.b = new t.Socket("/live").connect();
            window.pa = new t.Presence(a.channel("room:7"));
            window.events = [];
            pa.onJoin((id) => events.push("join"));
            pa.onLeave((id) => events.push("leave"));
            await a.channel("room:7").join();
            await b.channel("room:7").join();
        }"""
    )
    wait_for(page, "window.pa.list().length === 2")
    page.evaluate("() => b.disconnect()")
    wait_for(page, "window.pa.list().length === 1")
    assert page.evaluate("events") == ["join", "join", "leave"]


def test_positions_rejoin_and_resync_in_the_browser(browser: Any, tmp_path: Path, start_server: StartServer) -> None:  # noqa: F811
    server = serve(tmp_path, start_server)
    page = open_page(browser, server)
    result = page.evaluate(
        """async () => {
            const a = new t.Socket("/live").connect(), b = new t.Socket("/live").connect();
            const room = a.channel("kept:x");
            await room.join();
            const joinedAt = room.position;
            const got = [];
            room.on("message", (p, position) => got.push([p.n, position]));
            const sender = b.channel("kept:x");
            await sender.join();
            for (const n of [1, 2, 3]) await sender.push("say", {n});
            while (got.length < 3) await new Promise((r) => setTimeout(r, 20));
            const epoch = room.position.split(":")[0];
            // Another page that kept position 1 resumes from it: 2 and 3, once, in order.
            const c = new t.Socket("/live").connect();
            const later = c.channel("kept:x"), resumed = [], resyncs = [];
            later.on("message", (p, position) => resumed.push([p.n, position]));
            later.on("resync", (p, position) => resyncs.push([p.reason, position]));
            await later.join({}, {position: `${epoch}:1`});
            const afterResume = later.position;
            // A position that cannot be continued: a resync event, then the live pushes.
            const d = new t.Socket("/live").connect();
            const lost = d.channel("kept:x"), lostResyncs = [];
            lost.on("resync", (p, position) => lostResyncs.push([p.reason, position]));
            await lost.join({}, {position: "garbage"});
            return {joinedAt, got, epoch, resumed, resyncs, afterResume, lostResyncs, lostAt: lost.position};
        }"""
    )
    epoch = result["epoch"]
    assert result["joinedAt"] == f"{epoch}:0"
    assert result["got"] == [[1, f"{epoch}:1"], [2, f"{epoch}:2"], [3, f"{epoch}:3"]]
    assert result["resumed"] == [[2, f"{epoch}:2"], [3, f"{epoch}:3"]] and result["resyncs"] == []
    assert result["afterResume"] == f"{epoch}:3"
    assert result["lostResyncs"] == [["malformed", f"{epoch}:3"]] and result["lostAt"] == f"{epoch}:3"


def test_a_rejoin_the_server_asks_to_retry_is_retried(browser: Any, tmp_path: Path, start_server: StartServer) -> None:  # noqa: F811
    server = serve(tmp_path, start_server)
    page = open_page(browser, server)
    result = page.evaluate(
        """async () => {
            // A fake server: the first connection drops; on the second, the first two rejoins are
            // answered "history unavailable" with retry (as while Redis restarts), the third is joined.
            let connections = 0;
            const joins = [];
            class Fake extends EventTarget {
                constructor(url, protocols) {
                    super(); this.protocol = t.PROTOCOL; this.n = ++connections;
                    setTimeout(() => this.onopen && this.onopen(), 10);
                    if (this.n === 1) setTimeout(() => this.onclose && this.onclose({code: 4000, reason: ""}), 200);
                }
                send(text) {
                    const f = JSON.parse(text);
                    if (f.event !== "join") return;
                    joins.push(this.n);
                    const retry = this.n === 2 && joins.filter((n) => n === 2).length <= 2;
                    const payload = retry
                        ? {status: "error", response: {reason: "history unavailable: join again later", retry: true}}
                        : {status: "ok", response: {}};
                    const reply = {topic: f.topic, event: "reply", ref: f.ref, payload};
                    setTimeout(() => this.onmessage && this.onmessage({data: JSON.stringify(reply)}), 5);
                }
                close() {}
            }
            const s = new t.Socket("/live", {WebSocket: Fake, backoff: () => 20}).connect();
            const room = s.channel("room:1");
            await room.join();
            const deadline = Date.now() + 5000;
            while (room.joins < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
            return [room.state, room.joins, joins, s.connections];
        }"""
    )
    assert result == ["joined", 2, [1, 2, 2, 2], 2]
