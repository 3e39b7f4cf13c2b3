"""The models a `serve` replica holds: ones given at start-up (pinned) and any model the API names by signed URLs
(base models and fine-tuned checkpoints alike), loaded on first use and kept in an LRU cache within a memory budget.

    store = ModelStore(device, engine, backend, budget_bytes, cache_dir, pinned={"tiny-arith": served})
    served = store.get("ft:tiny-arith::ftjob-...", {"key": "...@<sha>", "files": [{name, bytes, sha256, url}]})

A model the API names comes with `files`: its cache key (src/replicas/model-key.ts: the checkpoint's name and a
prefix of the weights' SHA-256, so a key never changes meaning) and signed GET URLs of the serving files. They are
downloaded into cache_dir/<key digest>/, each checked against its size and SHA-256, then loaded. When the loaded
models' parameter bytes would exceed the budget, the least recently used ones are dropped first (a generation still
running on a dropped model finishes; its memory is freed after). Pinned models are never dropped.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

import httpx

from softgrpo.hashing import CHUNK_BYTES, sha256_file, write_hashing
from softgrpo.serve_request import RequestError

SAFE_NAME = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def pinned_key(model_id: str, folder: str | Path) -> str:
    """The key the API gives a model folder (src/replicas/model-key.ts): id @ 16 hex digits of the weights' sha256."""
    return f"{model_id}@{sha256_file(Path(folder) / 'model.safetensors')[:16]}"


class ModelLoadError(RuntimeError):
    """A model's files could not be fetched or loaded (answered 502: not the client's fault)."""


def model_bytes(served) -> int:
    """Bytes of a served model's parameters (what the budget counts)."""
    return sum(p.numel() * p.element_size() for p in served.model.parameters())


def _checked_files(files) -> tuple[str, list[dict]]:
    """(key, files) of a request's `files` object; RequestError naming the field when malformed."""
    if not isinstance(files, dict) or not isinstance(files.get("key"), str) or not files["key"]:
        raise RequestError("files.key", "files.key must be a non-empty string")
    entries = files.get("files")
    if not isinstance(entries, list) or not entries:
        raise RequestError("files.files", "files.files must be a non-empty list")
    for i, f in enumerate(entries):
        ok = (isinstance(f, dict) and isinstance(f.get("name"), str) and f["name"] and set(f["name"]) <= SAFE_NAME
              and not f["name"].startswith(".") and isinstance(f.get("url"), str)
              and isinstance(f.get("sha256"), str) and isinstance(f.get("bytes"), int))
        if not ok:
            raise RequestError(f"files.files.{i}", f"files.files[{i}] must be {{name (plain file name), bytes, sha256, url}}")
    return files["key"], entries


class ModelStore:
    def __init__(self, load, budget_bytes: int, cache_dir: str | Path, pinned: dict | None = None,
                 client: httpx.Client | None = None, pinned_keys: dict[str, str] | None = None):
        """load(folder) -> ServedModel (serve.load_served_model with the replica's device and engine).
        pinned_keys: model key -> pinned id, so a request naming a pinned model's weights by key uses it."""
        self.load, self.budget = load, budget_bytes
        self.cache_dir = Path(cache_dir)
        self.pinned = dict(pinned or {})
        self.pinned_keys = dict(pinned_keys or {})
        self.loaded: OrderedDict[str, tuple[object, int]] = OrderedDict()  # key -> (ServedModel, bytes), LRU first
        self.lock = threading.Lock()
        self.loading: dict[str, threading.Lock] = {}
        self.client = client or httpx.Client(timeout=httpx.Timeout(60.0, connect=10.0), follow_redirects=False)

    def held(self) -> list[str]:
        """Ids of the pinned models and keys of the loaded ones (what heartbeats report)."""
        with self.lock:
            return sorted(self.pinned) + sorted(self.pinned_keys) + list(self.loaded)

    def used_bytes(self) -> int:
        with self.lock:
            return sum(size for _, size in self.loaded.values())

    def get(self, model_id: str, files: dict | None):
        """The ServedModel for a request: by `files` (loaded when not held), else a pinned model by id."""
        if files is None:
            if model_id in self.pinned:
                return self.pinned[model_id]
            raise RequestError("model", f"model {model_id!r} is not served here and no files were given "
                                        f"(serving {sorted(self.pinned)})")
        key, entries = _checked_files(files)
        if key in self.pinned_keys:
            return self.pinned[self.pinned_keys[key]]
        with self.lock:
            if key in self.loaded:
                self.loaded.move_to_end(key)
                return self.loaded[key][0]
            key_lock = self.loading.setdefault(key, threading.Lock())
        with key_lock:  # one download per key; concurrent requests for it wait and share it
            with self.lock:
                if key in self.loaded:
                    self.loaded.move_to_end(key)
                    return self.loaded[key][0]
            served = self.load(self._download(key, entries))
            size = model_bytes(served)
            with self.lock:
                while self.loaded and sum(s for _, s in self.loaded.values()) + size > self.budget:
                    self.loaded.popitem(last=False)
                self.loaded[key] = (served, size)
                self.loading.pop(key, None)
            return served

    def _download(self, key: str, entries: list[dict]) -> Path:
        folder = self.cache_dir / hashlib.sha256(key.encode()).hexdigest()[:32]
        if (folder / ".complete").is_file():
            return folder
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=self.cache_dir))
        try:
            for f in entries:
                self._fetch(f, tmp / f["name"])
            (tmp / ".complete").write_text(key + "\n")
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return folder

    def _fetch(self, f: dict, dest: Path) -> None:
        try:
            with self.client.stream("GET", f["url"]) as response, open(dest, "wb") as out:
                if response.status_code != 200:
                    raise ModelLoadError(f"download of {f['name']} answered HTTP {response.status_code}")
                size, sha256 = write_hashing(response.iter_bytes(CHUNK_BYTES), out)
        except httpx.HTTPError as err:
            raise ModelLoadError(f"download of {f['name']} failed: {err}") from err
        if size != f["bytes"] or sha256 != f["sha256"]:
            raise ModelLoadError(f"{f['name']}: got {size} bytes / sha256 {sha256}, expected "
                                 f"{f['bytes']} / {f['sha256']}")
