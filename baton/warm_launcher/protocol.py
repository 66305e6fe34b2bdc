"""What the warm launcher's client and its zygote share: where they meet and how they talk.

One zygote serves one Dagster instance folder. It listens on a unix socket in that folder
(or, when the path is longer than a socket address allows, in a private folder under the
temp dir named by a hash of it). Messages are one JSON object per line each way.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SOCKET_NAME = "baton-zygote.sock"
LOCK_NAME = "baton-zygote.lock"
# sun_path is 108 bytes on Linux and 104 on macOS; stay under both with the terminator.
_MAX_SOCKET_PATH = 100
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


def socket_path(home: Path) -> Path:
    """The zygote socket of the instance folder ``home``."""
    preferred = home / SOCKET_NAME
    if len(os.fsencode(preferred)) <= _MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha256(os.fsencode(home.resolve())).hexdigest()[:16]
    private = Path(tempfile.gettempdir()) / f"baton-zygote-{os.getuid()}"
    private.mkdir(mode=0o700, exist_ok=True)
    # Another user could have made the folder first; the socket must not be theirs to reach.
    if private.stat().st_uid != os.getuid():
        raise OSError(f"{private} belongs to another user")
    return private / f"{digest}.sock"


def lock_path(home: Path) -> Path:
    """A lock file that serializes starting the zygote of ``home``."""
    return home / LOCK_NAME


def send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(json.dumps(message).encode() + b"\n")


def receive(sock: socket.socket) -> dict[str, Any]:
    """Read one line; an empty dict if the peer closed first."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if chunk.endswith(b"\n"):
            break
        if size > MAX_MESSAGE_BYTES:
            raise ValueError("message too large")
    data = b"".join(chunks).strip()
    if not data:
        return {}
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ValueError("message is not an object")
    return value


def source_digest(roots: Iterable[Path]) -> str:
    """A digest of every ``.py`` file's path, size and mtime under ``roots``.

    Cheap enough (a stat per file) to compute on every launch, so a zygote that imported
    older code notices and is replaced.
    """
    digest = hashlib.sha256()
    for root in sorted(set(roots)):
        for path in sorted(root.rglob("*.py")):
            try:
                info = path.stat()
            except OSError:
                continue
            digest.update(f"{path}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def process_start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (Linux clock ticks), or None if it is gone or a zombie.

    Stored with the pid so that a reused pid is not taken for the run worker.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; fields after it are plain.
    fields = stat[stat.rindex(")") + 2 :].split()
    state, start = fields[0], fields[19]
    if state in ("Z", "X"):
        return None
    return int(start)
