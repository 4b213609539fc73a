"""Reports a blocked event loop, with the stack of the code that blocks it.

A handler that does sync work (ORM, ``time.sleep``, a slow library) without
``sync_to_async`` stalls every connection of the process. A daemon thread pings
the loop; when a ping waits longer than the threshold, it logs one WARNING with
the loop thread's current stack (which names the handler), and one INFO line
when the loop runs again. On by default when ``DEBUG`` is True (1.0 s).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback

from django.conf import settings

from .conf import get_settings

__all__ = ["ensure_watchdog", "threshold"]

logger = logging.getLogger("ravyn_channels")

_watched: set[int] = set()
_lock = threading.Lock()


def threshold() -> float | None:
    """Seconds of blocking that warrant a warning, or ``None`` when not watching."""
    configured = get_settings().LOOP_BLOCK_WARNING
    if configured is None:
        return 1.0 if settings.DEBUG else None
    return configured if configured > 0 else None


def ensure_watchdog() -> None:
    """Watch the running loop (once per loop) if a threshold is configured."""
    seconds = threshold()
    if seconds is None:
        return
    loop = asyncio.get_running_loop()
    with _lock:
        if id(loop) in _watched:
            return
        _watched.add(id(loop))
    thread = threading.Thread(
        target=_watch, args=(loop, threading.get_ident(), seconds), name="ravyn-loop-watchdog", daemon=True
    )
    thread.start()


def _watch(loop: asyncio.AbstractEventLoop, loop_thread: int, seconds: float) -> None:
    while not loop.is_closed():
        answered = threading.Event()
        started = time.monotonic()
        try:
            loop.call_soon_threadsafe(answered.set)
        except RuntimeError:  # the loop was closed
            break
        if not answered.wait(seconds):
            frame = sys._current_frames().get(loop_thread)
            stack = "".join(traceback.format_stack(frame)) if frame is not None else "(no stack)\n"
            logger.warning(
                "The event loop has been blocked for more than %.1fs; no connection of this process "
                "is served meanwhile. Run sync work with sync_to_async. The blocking code:\n%s",
                seconds,
                stack.rstrip(),
            )
            while not answered.wait(1.0):
                if loop.is_closed():
                    return
            logger.info("The event loop ran again after %.1fs.", time.monotonic() - started)
        time.sleep(seconds / 2)
