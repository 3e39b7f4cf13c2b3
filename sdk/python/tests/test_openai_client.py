"""The official `openai` Python client (PyPI, pinned in gpu-worker's dev dependencies) against the real Node API
(conftest.py): files.create, fine_tuning.jobs.create with OpenAI's nested `method`, jobs.list with auto-paging and the
metadata filter, jobs.retrieve checked field by field against the client's own pydantic model (strict), list_events
newest first, checkpoints.list and cancel. A worker is played over the /internal protocol (claim, metrics events,
checkpoint upload, finish), so the job really succeeds, with its result file and trained tokens.

Run: PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 gpu-worker/.venv/bin/python -m pytest sdk/python/tests -q   (repository root)
"""

from __future__ import annotations

import hashlib
import json
import uuid

import httpx
import pytest
from openai import BadRequestError, OpenAI
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint

WORKER_TOKEN = "py-sdk-worker-token-0000000000"  # conftest.py's server
TRAIN = b'{"prompt": "What is 2+3?", "answer": 5}\n{"prompt": "What is 7*6?", "answer": "42"}\n'
# Our fields beyond OpenAI's FineTuningJob (docs/API.md "Fine-tuning with the OpenAI client").
EXTRA_JOB_FIELDS = {"started_at", "grader", "suffix", "trained_steps", "attempts", "user_provided_suffix", "resources"}


@pytest.fixture()
def client(server):
    with OpenAI(api_key=server.api_key, base_url=f"{server.base_url}/v1", max_retries=0) as c:
        yield c


def assert_is_openai_job(raw: dict) -> FineTuningJob:
    """Every field of OpenAI's FineTuningJob is present (required ones) and has the type the client declares, in
    strict mode; the fields it does not know are exactly ours. One documented difference: `method.type` is our
    method (soft_grpo or grpo), which OpenAI's literal (supervised, dpo, reinforcement) does not list."""
    assert set(raw) - set(FineTuningJob.model_fields) == EXTRA_JOB_FIELDS
    assert {name for name, f in FineTuningJob.model_fields.items() if f.is_required()} <= set(raw)
    assert raw["method"]["type"] in ("soft_grpo", "grpo") and raw["method"]["hyperparameters"] == raw["hyperparameters"]
    openai_fields = {k: v for k, v in raw.items() if k in FineTuningJob.model_fields and k != "method"}
    return FineTuningJob.model_validate(openai_fields, strict=True)


def raw_job(client: OpenAI, job_id: str) -> dict:
    return json.loads(client.fine_tuning.jobs.with_raw_response.retrieve(job_id).text)


class Worker:
    """The GPU worker's side of /internal, enough to run one job to success without a GPU."""

    def __init__(self, base_url: str):
        self.http = httpx.Client(base_url=base_url, headers={"authorization": f"Bearer {WORKER_TOKEN}"}, timeout=30)

    def post(self, path: str, body: dict) -> httpx.Response:
        res = self.http.post(path, json=body)
        assert res.status_code < 300, res.text
        return res

    def run(self, job_id: str, steps: int) -> None:
        claim = self.post("/internal/jobs/claim", {"worker_id": "py-openai-test"}).json()
        assert claim["job"]["id"] == job_id
        lease = claim["lease"]["token"]
        events = [{"seq": i, "type": "metrics", "message": f"step {i + 1}",
                   "data": {"step": i + 1, "reward_mean": 0.5 + i / 10, "step_tokens": 100 + i}} for i in range(steps)]
        self.post(f"/internal/jobs/{job_id}/events", {"lease_token": lease, "events": events})
        for step in range(1, steps + 1):
            content = f"weights at step {step}".encode()
            spec = {"name": "model.safetensors", "bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}
            urls = self.post(f"/internal/jobs/{job_id}/checkpoints/uploads", {"lease_token": lease, "step": step, "files": [spec]})
            put = httpx.put(urls.json()["files"][0]["url"], content=content, timeout=30)
            assert put.status_code < 300, put.text
            self.post(f"/internal/jobs/{job_id}/checkpoints",
                      {"lease_token": lease, "step": step, "files": [spec], "metrics": {"reward_mean": 0.5}})
        self.post(f"/internal/jobs/{job_id}/finish", {"lease_token": lease})


def cancel_unfinished(client: OpenAI) -> None:
    """Other tests of this session leave queued jobs; a claim takes any, so clear them first."""
    for job in client.fine_tuning.jobs.list(limit=100):
        if job.status in ("validating_files", "queued", "running", "pausing", "paused"):
            client.fine_tuning.jobs.cancel(job.id)


def test_runs_a_job_through_the_openai_client_from_upload_to_checkpoints(client, server):
    file = client.files.create(file=("arith.jsonl", TRAIN), purpose="fine-tune")
    assert (file.object, file.purpose, file.bytes, file.filename) == ("file", "fine-tune", len(TRAIN), "arith.jsonl")
    cancel_unfinished(client)
    job = client.fine_tuning.jobs.create(
        model="tiny-arith",
        training_file=file.id,
        method={"type": "grpo", "grpo": {"hyperparameters": {"batch_size": 2, "n_steps": 3}}},  # type: ignore[misc,typeddict-item]
        suffix="oai",
        seed=11,
        metadata={"suite": "openai-client"},
    )
    assert isinstance(job, FineTuningJob) and job.status == "queued"
    assert job.hyperparameters.batch_size == 2 and job.integrations == [] and job.result_files == []
    assert_is_openai_job(raw_job(client, job.id))

    Worker(server.base_url).run(job.id, steps=3)

    done = assert_is_openai_job(raw_job(client, job.id))
    assert done.status == "succeeded" and done.fine_tuned_model == f"ft:tiny-arith:oai:{job.id}"
    assert done.trained_tokens == 100 + 101 + 102 and done.estimated_finish is None
    [result] = done.result_files
    assert client.files.retrieve(result).purpose == "fine-tune-results"
    csv = client.files.content(result).text.splitlines()
    assert csv[0] == "step,reward_mean,step_tokens" and len(csv) == 4

    # events: newest first (OpenAI's order), every page through the client's auto-paging, each a FineTuningJobEvent
    first_page = client.fine_tuning.jobs.list_events(job.id, limit=2)
    assert first_page.data[0].data["status"] == "succeeded" and first_page.has_more
    every = list(client.fine_tuning.jobs.list_events(job.id, limit=2))
    assert all(isinstance(e, FineTuningJobEvent) for e in every)
    assert [e.created_at for e in every] == sorted((e.created_at for e in every), reverse=True)
    ascending = httpx.get(f"{server.base_url}/v1/fine_tuning/jobs/{job.id}/events", params={"order": "asc", "limit": 100},
                          headers={"authorization": f"Bearer {server.api_key}"}).json()["data"]
    assert [e.id for e in every] == [e["id"] for e in reversed(ascending)]

    checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job.id, limit=2))
    assert [c.step_number for c in checkpoints] == [3, 2, 1]
    assert all(isinstance(c, FineTuningJobCheckpoint) for c in checkpoints)
    assert checkpoints[0].fine_tuned_model_checkpoint == f"ft:tiny-arith:oai:{job.id}:ckpt-3"
    assert checkpoints[0].metrics.model_extra == {"reward_mean": 0.5}


def test_lists_jobs_page_by_page_filtered_by_metadata_and_cancels(client):
    file = client.files.create(file=("arith.jsonl", TRAIN), purpose="fine-tune")
    tag = uuid.uuid4().hex
    ids = [client.fine_tuning.jobs.create(model="tiny-arith", training_file=file.id, metadata={"run": tag}).id for _ in range(3)]
    listed = client.fine_tuning.jobs.list(limit=2, metadata={"run": tag})
    assert len(listed.data) == 2 and listed.has_more
    assert sorted(j.id for j in listed) == sorted(ids)  # iterating a page auto-pages through `after`
    assert list(client.fine_tuning.jobs.list(metadata={"run": "no-such-run"})) == []

    cancelled = client.fine_tuning.jobs.cancel(ids[0])
    assert cancelled.status == "cancelled"
    assert_is_openai_job(raw_job(client, ids[0]))
    for job_id in ids[1:]:
        client.fine_tuning.jobs.cancel(job_id)


def test_rejects_what_the_api_cannot_do_with_a_400_naming_the_field(client):
    file = client.files.create(file=("arith.jsonl", TRAIN), purpose="fine-tune")
    with pytest.raises(BadRequestError) as info:
        client.fine_tuning.jobs.create(model="tiny-arith", training_file=file.id, method={"type": "supervised"})
    assert info.value.body["param"] == "method.type"
    with pytest.raises(BadRequestError) as info:
        client.fine_tuning.jobs.list(after="ftjob-not-a-job")
    assert (info.value.body["param"], info.value.body["code"]) == ("after", "invalid_cursor")
