"""The asset store: where deliverable bytes live. A folder by default.

Addresses are URIs (``file:///...``) so that an object store (``s3://...``) can take its place
behind the same two calls.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from baton.settings import Settings

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class AssetStore(Protocol):
    """Put bytes under a key; read them back by URI."""

    def put(self, key: str, data: bytes) -> str: ...

    def get(self, uri: str) -> bytes: ...


def safe_key(*parts: str) -> str:
    """A relative key from parts, with anything path-like or odd replaced."""
    return "/".join(_UNSAFE.sub("_", part).strip("._") or "_" for part in parts)


class LocalAssetStore:
    """Files under one root folder."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def put(self, key: str, data: bytes) -> str:
        """Write ``data`` at ``key`` (relative, made safe) and return its file URI."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path.as_uri()

    def get(self, uri: str) -> bytes:
        """The bytes at a URI this store returned.

        Raises:
            ValueError: the URI is not a file of this store.
        """
        parts = urlsplit(uri)
        path = Path(unquote(parts.path)).resolve()
        if parts.scheme != "file" or not path.is_relative_to(self.root):
            raise ValueError(f"{uri} is not in the asset store at {self.root}")
        return path.read_bytes()

    def _path(self, key: str) -> Path:
        path = (self.root / safe_key(*key.split("/"))).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"asset key {key!r} leaves the asset store")
        return path


def asset_store(settings: Settings) -> AssetStore:
    """The configured asset store (``BATON_ASSETS_DIR``, default <data_dir>/assets)."""
    return LocalAssetStore(settings.assets_dir or settings.data_dir / "assets")
