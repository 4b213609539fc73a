"""The one table ravyn_channels keeps: each user's token generation (``ravyn_channels.auth``)."""

from __future__ import annotations

from django.db import models

__all__ = ["TokenGeneration"]


class TokenGeneration(models.Model):
    """How many times a user's websocket tokens were revoked; a token names the generation it was issued in.

    No row means generation 0. ``ravyn_channels.auth.revoke_tokens`` adds one;
    tokens of an older generation are refused at the handshake.
    """

    #: ``str(user.pk)`` (no foreign key: works with any user model, and with none installed).
    user_key = models.CharField(max_length=255, primary_key=True)
    generation = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name = "websocket token generation"

    def __str__(self) -> str:
        return f"user {self.user_key}: generation {self.generation}"
