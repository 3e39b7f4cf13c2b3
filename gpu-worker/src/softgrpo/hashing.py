"""SHA-256 of files and of streamed downloads: the one way the worker, the serving replica and model folders hash
what they write or read (light: no torch import, so the API client can use it)."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO, Iterable

CHUNK_BYTES = 1 << 20


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_hashing(chunks: Iterable[bytes], out: BinaryIO) -> tuple[int, str]:
    """Writes the chunks to out; returns (bytes written, their sha256 hex)."""
    digest, size = hashlib.sha256(), 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
        out.write(chunk)
    return size, digest.hexdigest()
