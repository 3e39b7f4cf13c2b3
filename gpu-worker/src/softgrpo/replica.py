"""A `serve` process registering itself with the API as a serving replica (src/routes/internal/replicas.ts).

    registration = ReplicaRegistration(api_url, worker_token, public_url, capacity, state)
    registration.start()      # registers, then heartbeats {load, models} every heartbeat_seconds in a thread
    registration.token        # what the API sends as its bearer token on /v1/generate
    registration.stop()       # deregisters (the API stops routing here at once)

A heartbeat answered 404 means the API dropped this replica (it was silent for longer than the TTL, e.g. a long
pause): it registers again, with a new id and token. Network errors are retried at the next beat.
"""
from __future__ import annotations

import sys
import threading
from typing import Callable

import httpx


# The API routes this client calls (src/routes/internal/replicas.ts), checked against openapi/openapi.json by
# tests/test_replica.py.
ROUTES = {
    "register": ("post", "/internal/replicas", ("url", "capacity", "load", "models")),
    "heartbeat": ("post", "/internal/replicas/{replica_id}/heartbeat", ("token", "load", "models")),
    "deregister": ("post", "/internal/replicas/{replica_id}/deregister", ("token",)),
}


class ReplicaRegistration:
    def __init__(self, api_url: str, worker_token: str, public_url: str, capacity: int,
                 state: Callable[[], dict], client: httpx.Client | None = None):
        """state() -> {"load": int, "models": [str]}: what each heartbeat reports."""
        self.api_url, self.public_url, self.capacity, self.state = api_url.rstrip("/"), public_url, capacity, state
        self.client = client or httpx.Client(timeout=10.0, headers={"authorization": f"Bearer {worker_token}"})
        self.id: str | None = None
        self.token: str | None = None
        self.heartbeat_seconds = 5.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="replica-heartbeat", daemon=True)

    def register(self) -> None:
        response = self.client.post(f"{self.api_url}/internal/replicas",
                                    json={"url": self.public_url, "capacity": self.capacity, **self.state()})
        if response.status_code != 201:
            raise RuntimeError(f"replica registration answered {response.status_code}: {response.text}")
        body = response.json()
        self.id, self.token, self.heartbeat_seconds = body["id"], body["token"], float(body["heartbeat_seconds"])

    def heartbeat(self) -> None:
        response = self.client.post(f"{self.api_url}/internal/replicas/{self.id}/heartbeat",
                                    json={"token": self.token, **self.state()})
        if response.status_code == 404:
            self.register()
        elif response.status_code != 200:
            raise RuntimeError(f"replica heartbeat answered {response.status_code}: {response.text}")

    def start(self) -> None:
        self.register()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self.id is not None:
            try:
                self.client.post(f"{self.api_url}/internal/replicas/{self.id}/deregister", json={"token": self.token})
            except httpx.HTTPError:
                pass  # the TTL drops it anyway

    def _run(self) -> None:
        while not self._stop.wait(self.heartbeat_seconds):
            try:
                self.heartbeat()
            except (httpx.HTTPError, RuntimeError) as err:
                print(f"replica heartbeat failed (retrying): {err}", file=sys.stderr, flush=True)
