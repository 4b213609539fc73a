"""A deliberately minimal websocket client on plain sockets, for clients that misbehave."""

from __future__ import annotations

import base64
import os
import socket
import struct


def open_raw(port: int, path: str, timeout: float = 5.0, rcvbuf: int | None = None) -> socket.socket:
    """Connect and finish the handshake; the caller then reads or writes frames (or not).

    ``rcvbuf`` shrinks the client's receive buffer (set before connecting), so a client
    that does not read pushes back on the server sooner.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError(f"closed during handshake: {response!r}")
        response += chunk
    if not response.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(f"handshake refused: {response.splitlines()[0]!r}")
    return sock


def frame(payload: bytes, opcode: int = 0x2, fin: bool = True) -> bytes:
    """A masked client frame."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def close_frame(code: int = 1000) -> bytes:
    return frame(struct.pack("!H", code), opcode=0x8)


def read_close_code(sock: socket.socket, timeout: float = 5.0) -> int | None:
    """Skip data frames until a close frame; its code, or None if the TCP connection ends first."""
    sock.settimeout(timeout)
    buffer = b""

    def need(n: int) -> bytes:
        nonlocal buffer
        while len(buffer) < n:
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError
            buffer += chunk
        out, buffer = buffer[:n], buffer[n:]
        return out

    try:
        while True:
            b0, b1 = need(2)
            length = b1 & 0x7F
            if length == 126:
                length = struct.unpack("!H", need(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", need(8))[0]
            payload = need(length)
            if b0 & 0x0F == 0x8:
                return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
    except (EOFError, ConnectionResetError):
        return None


def reset(sock: socket.socket) -> None:
    """Close with a TCP RST (no close frame): a client that vanished."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
