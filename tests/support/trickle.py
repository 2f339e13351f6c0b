"""A slow client: sends its bytes one at a time, to test total deadlines.

Timeouts that count only silence never fire for a client that sends one byte
now and then; a total deadline must. Runs on a blocking socket (call it in a
thread when the server runs on the test's event loop).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Trickled:
    received: bytes  # everything the server sent meanwhile
    closed_after: float | None  # seconds until the server closed; None: it did not


def trickle(sock: socket.socket, data: bytes, *, every: float, budget: float) -> Trickled:
    """Send ``data`` one byte every ``every`` seconds, reading what comes back,
    until the server closes the connection or ``budget`` seconds have passed."""
    start = time.monotonic()
    received = bytearray()
    pending = memoryview(data)
    next_send = start
    while (now := time.monotonic()) - start < budget:
        try:
            if pending and now >= next_send:
                sock.sendall(pending[:1])
                pending = pending[1:]
                next_send = now + every
            wake = min(next_send, start + budget) if pending else start + budget
            sock.settimeout(max(0.01, wake - time.monotonic()))
            chunk = sock.recv(4096)
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            return Trickled(bytes(received), time.monotonic() - start)
        if not chunk:
            return Trickled(bytes(received), time.monotonic() - start)
        received += chunk
    return Trickled(bytes(received), None)
