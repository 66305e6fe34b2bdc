"""The generated secret key: created once, whole, mode 0600, the same for processes that start
at once on a fresh data folder."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from baton.settings import get_settings
from baton.webhooks.crypto import KEY_FILE, cipher, decrypt, encrypt

# Each process encrypts with the key it found or made; all must decrypt each other's tokens.
ENCRYPT = """
from baton.settings import get_settings
from baton.webhooks.crypto import encrypt
print(encrypt(get_settings(), "the secret"))
"""


def test_a_fresh_folder_gets_one_private_key() -> None:
    settings = get_settings()
    token = encrypt(settings, "s3cret")
    key = settings.data_dir / KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert decrypt(settings, token) == "s3cret"
    assert [p.name for p in settings.data_dir.iterdir()] == [KEY_FILE]  # no partial file left
    assert len(key.read_bytes().strip()) == 44  # a whole Fernet key (urlsafe base64 of 32 bytes)
    assert cipher(settings).decrypt(token.encode()) == b"s3cret"  # read back, not made anew


def test_processes_creating_the_key_at_once_share_it() -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", ENCRYPT],
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    results = [(p.wait(timeout=120), *p.communicate(timeout=30)) for p in procs]
    assert [code for code, _, _ in results] == [0] * 6, results
    settings = get_settings()
    for _, out, _ in results:
        assert decrypt(settings, out.strip()) == "the secret"
    assert sorted(p.name for p in Path(settings.data_dir).iterdir()) == [KEY_FILE]
