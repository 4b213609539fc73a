"""How the daphne adapter writes websocket frames: framed once, gathered per connection, sent at once.

- A plain message (no permessage-deflate, no fragmentation, no frame logging) is framed
  here, once per message: a broadcast hands the same ``str`` to every member, so it is
  encoded and framed once for all of them, and autobahn's ``sendMessage`` (which also
  formats a DEBUG line for every write, logged or not) is skipped.
- Writes to a connection during one turn of the event loop are gathered and sent in one
  ``send`` at its end (or as soon as ``COALESCE_LIMIT`` bytes are gathered): several
  broadcasts in a row cost each member one system call, not one per frame. Only what the
  kernel does not take goes to Twisted's buffer; Twisted alone would register each socket
  for writing and write it on the next turn (two ``epoll_ctl`` calls and a reactor
  callback per connection). Gathered bytes count as unsent in ``SEND_BUFFER_LIMIT``.
"""

from __future__ import annotations

import asyncio
import struct
from functools import partial
from typing import Any

__all__ = ["COALESCE_LIMIT", "framed", "plain", "take_backlog", "unsent_bytes", "write_eagerly"]


def unsent_bytes(transport: Any) -> int:
    """Bytes a Twisted TCP transport has accepted but not yet written to the socket (gathered ones too)."""
    try:
        twisted: int = len(transport.dataBuffer) - transport.offset + transport._tempDataLen
    except AttributeError:  # not a Twisted FileDescriptor transport
        return 0
    return twisted + _gathered_bytes(transport)


_backlog = False

#: Bytes one connection's writes may gather before they are written at once (``_write_now``).
COALESCE_LIMIT = 64 * 1024


class _Gathered:
    """Writes to one connection made during this turn of the event loop, written together at its end."""

    __slots__ = ("data", "later")

    def __init__(self, later: Any) -> None:
        self.later = later
        self.data = bytearray()


#: transport -> what it was given during this loop turn; written out by ``_flush``.
_gathered: dict[Any, _Gathered] = {}
#: The event loop a ``_flush`` is scheduled on (``None``: none is).
_flushing: asyncio.AbstractEventLoop | None = None


def take_backlog() -> bool:
    """Whether a write since the last call was left to Twisted's buffer (the client is behind); resets it."""
    global _backlog
    was, _backlog = _backlog, False
    return was


def _write_now(transport: Any, later: Any, data: bytes) -> None:
    """``transport.write``, gathered per connection and written once at the end of this loop turn.

    A broadcast (or several in a row) writes one frame to each member; gathered, a member
    gets them in one ``send`` (as many frames as arrived in this turn) instead of one per
    frame, and nothing goes through Twisted's buffer (whose write costs two ``epoll_ctl``
    calls and a reactor callback per connection) unless the kernel does not take it all.
    Order is kept; a connection that gathers ``COALESCE_LIMIT`` bytes is written at once.
    """
    global _backlog, _flushing
    if not data:
        return
    gathered = _gathered.get(transport)
    if gathered is None:
        if transport._tempDataLen or transport.offset != len(transport.dataBuffer):
            _backlog = True  # Twisted still holds unsent data for it: the client is behind
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop running: write it now
            _write_out(transport, later, data)
            return
        gathered = _gathered[transport] = _Gathered(later)
        if _flushing is not loop:  # (a loop that closed before its flush ran is replaced)
            loop.call_soon(_flush)
            _flushing = loop
    gathered.data += data
    if len(gathered.data) >= COALESCE_LIMIT:
        del _gathered[transport]
        _write_out(transport, later, gathered.data)


def _flush() -> None:
    """Write out every connection's gathered data (once per loop turn that wrote something)."""
    global _flushing, _gathered
    _flushing = None
    gathered, _gathered = _gathered, {}
    for transport, one in gathered.items():  # in the order of their first write
        _write_out(transport, one.later, one.data)


def _write_out(transport: Any, later: Any, data: bytes | bytearray) -> None:
    """Send ``data`` now if Twisted holds nothing unsent for ``transport``; Twisted keeps what the kernel refuses."""
    global _backlog
    if (
        transport.connected
        and not transport.disconnecting
        and not transport._tempDataLen
        and transport.offset == len(transport.dataBuffer)
    ):
        sent = transport.writeSomeData(data)
        if isinstance(sent, int) and sent > 0:
            if sent == len(data):
                return
            data = data[sent:]
        # Nothing sent (kernel buffer full) or the connection failed: Twisted
        # buffers it, and its next write attempt reports a lost connection.
    _backlog = True
    later(bytes(data))


def _flush_then(transport: Any, close: Any) -> None:
    """``loseConnection`` after the gathered data (a close frame, typically) is handed to the transport."""
    gathered = _gathered.pop(transport, None)
    if gathered is not None:
        _write_out(transport, gathered.later, gathered.data)
    close()


def _gathered_bytes(transport: Any) -> int:
    gathered = _gathered.get(transport)
    return 0 if gathered is None else len(gathered.data)


def write_eagerly(protocol: Any) -> None:
    """Route ``protocol``'s writes through ``_write_now`` (plain TCP transports only, not TLS)."""
    from twisted.internet.tcp import Connection

    transport = protocol.transport
    if isinstance(transport, Connection) and "write" not in vars(transport):
        transport.write = partial(_write_now, transport, transport.write)  # type: ignore[method-assign]
        transport.loseConnection = partial(_flush_then, transport, transport.loseConnection)  # type: ignore[method-assign]


#: The last message sent, as ``(data, payload, frame)``: a broadcast sends the same ``str``
#: (or ``bytes``) object to every member, so it is encoded and framed once.
_last: tuple[object, bytes, bytes] = (None, b"", b"")


def framed(data: str | bytes | bytearray) -> tuple[bytes, bytes]:
    """``data``'s payload (UTF-8 for text) and its websocket frame."""
    global _last
    if _last[0] is data:
        return _last[1], _last[2]
    text = isinstance(data, str)
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    frame = _frame(payload, not text)
    if isinstance(data, (str, bytes)):  # not a bytearray: it could change before the next send
        _last = (data, payload, frame)
    return payload, frame


def plain(protocol: Any, size: int) -> bool:
    """Whether a message of ``size`` bytes goes out as one unmasked, uncompressed frame, written at once.

    That is every message on a connection without permessage-deflate, frame logging,
    fragmentation or autobahn's own send queue; only then is ``_frame`` used instead
    of autobahn's ``sendMessage`` (which also formats a DEBUG line for every write).
    """
    return (
        protocol._perMessageCompress is None
        and not protocol.send_queue
        and not protocol.maskServerFrames
        and not protocol.logFrames
        and not protocol.logOctets
        and not 0 < protocol.autoFragmentSize < size
        and not 0 < protocol.maxMessagePayloadSize < size
    )


def _frame(payload: bytes, binary: bool) -> bytes:
    """One final, unmasked websocket frame (RFC 6455 section 5.2) carrying ``payload``."""
    first = 0x82 if binary else 0x81
    size = len(payload)
    if size <= 125:
        return bytes((first, size)) + payload
    if size <= 0xFFFF:
        return struct.pack("!BBH", first, 126, size) + payload
    return struct.pack("!BBQ", first, 127, size) + payload
