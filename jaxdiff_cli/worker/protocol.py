"""The client-worker conversation on a Unix socket. Stdlib only.

Client -> worker, once: a JSON request (``op``: ``run``, ``status`` or ``stop``; for ``run`` also
argv, cwd, environment, umask and the stamp), length-prefixed, with the client's fds 0, 1 and 2
attached (SCM_RIGHTS) to its first bytes. Then, while the call runs, one line per signal the
client received: ``{"signal": N}``. Closing its end means the client is gone.

Worker -> client, JSON lines: ``{"accepted": PID}`` once a child took the call (from then on the
call must not be run again in-process); ``{"exit": CODE}`` at the end; or instead of both
``{"retired": WHY}``, and the call runs in-process. Answers to status and stop are one line each.
"""

from __future__ import annotations

import json
import socket
import struct

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~5 ms of the client's start)
if TYPE_CHECKING:
    from typing import Any

_LENGTH = struct.Struct("!I")
MAX_REQUEST = 16 << 20  # an environment and argv, never near this


def send_request(sock: socket.socket, request: dict[str, Any], fds: list[int] | None = None) -> None:
    body = json.dumps(request).encode()
    head = _LENGTH.pack(len(body)) + body
    first, rest = head[:4096], head[4096:]
    if fds:
        sent = socket.send_fds(sock, [first], fds)
        first = first[sent:]
    sock.sendall(first + rest)


def recv_request(sock: socket.socket, nfds: int = 3) -> tuple[dict[str, Any], list[int]]:
    """The request and the fds that came with it (closed by the caller)."""
    data, fds, _, _ = socket.recv_fds(sock, 4096, nfds)
    if len(data) < _LENGTH.size:
        data += _exactly(sock, _LENGTH.size - len(data))
    (size,) = _LENGTH.unpack(data[: _LENGTH.size])
    if size > MAX_REQUEST:
        raise ValueError(f"request of {size} bytes")
    body = data[_LENGTH.size :]
    if len(body) < size:
        body += _exactly(sock, size - len(body))
    return json.loads(body), list(fds)


def _exactly(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(min(n, 1 << 16))
        if not chunk:
            raise ConnectionError("the other end closed mid-message")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def send_line(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(json.dumps(message).encode() + b"\n")


class Lines:
    """JSON lines from a socket, one at a time; None at the end."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def next(self) -> dict[str, Any] | None:
        while b"\n" not in self.buffer:
            try:
                chunk = self.sock.recv(4096)
            except InterruptedError:  # pragma: no cover (PEP 475 retries; kept for clarity)
                continue
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        return message


def peer_uid(sock: socket.socket) -> int:
    """The user id of the process at the other end (Linux SO_PEERCRED; getpeereid elsewhere is not in Python)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _, uid, _ = struct.unpack("3i", creds)
    return int(uid)


# fork, SCM_RIGHTS and peer credentials: Linux (the worker is POSIX-only; elsewhere every call runs in-process).
SUPPORTED = hasattr(socket, "AF_UNIX") and hasattr(socket, "SO_PEERCRED") and hasattr(socket, "send_fds")
