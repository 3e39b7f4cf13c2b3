"""The lease of a claimed job: a heartbeat thread that extends it and remembers the API's answer
(continue / pause / cancel), and StopJob, raised when the job must end without another call."""
from __future__ import annotations

import sys
import threading
import time

import httpx

from softgrpo.api_client import ApiError, LeaseLost, WorkerApi


def log(message: str) -> None:
    print(f"[worker {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class StopJob(Exception):
    """Stop working on the job without another call: cancelled, or the lease is gone."""


class Heartbeat(threading.Thread):
    """Extends the lease every `interval` seconds; remembers what the API asked for (continue / pause / cancel)."""

    def __init__(self, api: WorkerApi, job_id: str, lease_token: str, interval: float):
        super().__init__(daemon=True, name=f"heartbeat-{job_id}")
        self.api, self.job_id, self.lease_token, self.interval = api, job_id, lease_token, interval
        self.action = "continue"
        self.lease_lost = False
        self.trained_steps = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # the main loop also beats at step boundaries

    def run(self) -> None:
        while not self._stopping.wait(self.interval):
            self.beat()

    def beat(self) -> str:
        with self._lock:
            if self.lease_lost or self.action == "cancel":  # both are final: the lease is gone
                return self.action
            try:
                self.action = self.api.heartbeat(self.job_id, self.lease_token, self.trained_steps)["action"]
            except LeaseLost:
                self.lease_lost = True
            except (ApiError, httpx.HTTPError) as err:  # transient: a later beat may get through before the lease ends
                log(f"job {self.job_id}: heartbeat failed: {err}")
            return self.action

    def stop(self) -> None:
        self._stopping.set()

    def check(self) -> None:
        """Raise StopJob when the job was cancelled or the lease is gone."""
        if self.lease_lost:
            raise StopJob("lease lost")
        if self.action == "cancel":
            raise StopJob("cancelled")
