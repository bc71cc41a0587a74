"""The few messages between a warm client and its server (standard library only).

Client -> server: one byte carrying the client's stdin/stdout/stderr (SCM_RIGHTS), then a
length-prefixed JSON request; later, lines ``signal N``. Server -> client: lines
``started PID``, ``refused REASON`` and ``exit STATUS`` (a shell-style status: 128+N
for a cell ended by signal N).
"""

from __future__ import annotations

import json
import socket
import struct

HEADER = struct.Struct("!I")


def send_request(sock: socket.socket, request: dict, fds: list[int]) -> None:
    socket.send_fds(sock, [b"F"], fds)
    body = json.dumps(request).encode()
    sock.sendall(HEADER.pack(len(body)) + body)


def read_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the other side closed the connection")
        data += chunk
    return data


def receive_request(sock: socket.socket) -> tuple[dict, list[int]]:
    _, fds, _, _ = socket.recv_fds(sock, 1, 3)
    if len(fds) != 3:
        raise ConnectionError(f"expected 3 file descriptors, got {len(fds)}")
    (size,) = HEADER.unpack(read_exact(sock, HEADER.size))
    return json.loads(read_exact(sock, size)), fds


def read_line(stream) -> tuple[str, str] | None:
    """The next ``word rest`` line of a ``socket.makefile('r')`` stream, None at its end."""
    line = stream.readline()
    if not line:
        return None
    word, _, rest = line.rstrip("\n").partition(" ")
    return word, rest
