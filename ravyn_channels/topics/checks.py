"""System checks of topic sockets (ids ``ravyn_channels.E060``-``E069``, ``W060``-``W069``).

=========== ======================================================================
``E060``    two topics of one socket have the same pattern shape (the second never matches)
``W060``    a topic anyone may join has event handlers but no join handler or permissions
=========== ======================================================================
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from django.core.checks import CheckMessage, Error, Warning

from .registry import TopicSocket, registered_sockets

__all__ = ["check_topics"]

_CONVERTER_NAME = re.compile(r"<([^:<>]+):[^<>]+>")


def check_topics(
    app_configs: Any = None, sockets: Iterable[TopicSocket] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """E060 topic patterns that shadow each other; W060 topics open to anyone with events."""
    messages: list[CheckMessage] = []
    for socket in registered_sockets() if sockets is None else sockets:
        seen: dict[str, str] = {}
        for topic in socket.topics:
            shape = _CONVERTER_NAME.sub(r"<\1>", topic.route)
            first = seen.setdefault(shape, topic.pattern)
            if first is not topic.pattern:
                messages.append(
                    Error(
                        f"Topics {first!r} and {topic.pattern!r} of {socket.path!r} match the same names; "
                        f"{first!r} (declared first) gets every join.",
                        hint="Give one of them another prefix, e.g. 'room:{id}' and 'dm:{id}'.",
                        obj=topic,
                        id="ravyn_channels.E060",
                    )
                )
            if topic.handlers and topic.join_handler is None and not topic.permissions:
                messages.append(
                    Warning(
                        f"Topic {topic.pattern!r} of {socket.path!r} has event handlers but neither a join "
                        "handler nor permissions: any client that can open the socket may join it and send them.",
                        hint="Add @topic.on_join to authorize joins, or permissions=[...]; "
                        "silence ravyn_channels.W060 if the topic is meant to be public.",
                        obj=topic,
                        id="ravyn_channels.W060",
                    )
                )
    return messages
