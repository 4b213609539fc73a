"""``manage.py ws_kick``'s refusals of arguments that name no one or no valid close."""

from __future__ import annotations

import re

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from ravyn_channels.layers import redis_channel_layer
from tests.conftest import REDIS_URL


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "--user PK, --connection ID, or --manager NAME"),
        (("--user", "1", "--code", "1006"), "1006 is not a close code"),
        (("lobby",), "--user PK, --connection ID, or --manager NAME"),
        (("--user", "1", "lobby"), "ROOM belongs to a manager"),
        (("--user", "1", "--reason", "x" * 124), "123 UTF-8 bytes"),
    ],
)
def test_ws_kick_refuses_nonsense(args: tuple[str, ...], message: str) -> None:
    """Checked before anything is sent (no Redis needed); the CLI's exit code: tests/integration/test_ops.py."""
    redis = {"default": redis_channel_layer(REDIS_URL)}
    with override_settings(CHANNEL_LAYERS=redis), pytest.raises(CommandError, match=re.escape(message)):
        call_command("ws_kick", *args)
