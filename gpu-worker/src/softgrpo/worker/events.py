"""The job's event stream to the API: numbered, batched, idempotent by sequence number (docs/WORKER.md).

Crash safety: the event stream of a run is a deterministic function of its steps (hyperparameters, start, eval,
then per step metrics [+ eval], done). Each checkpoint carries `worker_state.json` with the next event sequence
number at that point, and its events are posted before it is registered. A re-claim (`resume_from`) restores the
training state and continues numbering at that sequence number, so events re-emitted for steps after the checkpoint
hit the sequence numbers the lost attempt already used and are ignored as duplicates: none duplicated, none lost.
"""
from __future__ import annotations

from softgrpo.api_client import WorkerApi


class EventStream:
    """Numbers events per job (seq, seq+1, ...) and posts them in batches; a re-posted seq is a no-op server-side."""

    def __init__(self, api: WorkerApi, job_id: str, lease_token: str, next_seq: int):
        self.api, self.job_id, self.lease_token = api, job_id, lease_token
        self.next_seq = next_seq
        self.pending: list[dict] = []

    def emit(self, type_: str, message: str, data: dict | None = None, level: str = "info") -> None:
        self.pending.append({"seq": self.next_seq, "level": level, "type": type_, "message": message[:4000],
                             "data": jsonable(data or {})})
        self.next_seq += 1

    def flush(self) -> None:
        while self.pending:
            batch = self.pending[:500]
            self.api.append_events(self.job_id, self.lease_token, batch)
            del self.pending[:len(batch)]


def jsonable(value):
    """Metrics may hold NaN / inf (JSON has neither): null them."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def describe_metrics(m: dict, n_steps: int, kl_beta: float) -> str:
    """One line per step. `kl` (the k3 estimate of KL to the reference policy, softgrpo.loss.low_var_kl) is in the
    metrics only when the loss has a KL term: with kl_beta 0 there is no reference policy and nothing is measured,
    so the line says so rather than print a number."""
    if "kl" in m:
        kl = f"kl {m['kl']:.4f}"
    else:
        kl = "kl not computed (kl_beta 0)" if kl_beta == 0 else "kl not reported"
    return (f"step {m['step']}/{n_steps}: reward {m['reward_mean']:.3f}, accuracy {m['accuracy']:.3f}, "
            f"{kl}, {m['step_seconds']:.1f} s")
