"""The GPU worker: pulls fine-tuning jobs from the API and runs them (docs/WORKER.md; protocol in docs/CONTRACTS.md).

Split along the protocol:
    main       the loop and command line (`python -m softgrpo.worker`): claim what this machine can run, run it
    job_run    one claimed job, start to end, on a JobRun record
    launcher   where training runs: in this process on one device, under torchrun on more
    lease      the heartbeat thread (extends the lease, carries cancel / pause)
    events     the numbered, idempotent event stream
    transfers  datasets, base model and checkpoints through signed URLs
    failures   the user-facing error a job fails with
"""
from softgrpo.worker.failures import JobFailure
from softgrpo.worker.job_run import JobRun, WorkerOptions, check_prompts_fit, compute_options, engine_for_job, run_job
from softgrpo.worker.lease import Heartbeat, StopJob
from softgrpo.worker.main import main, run_worker

__all__ = ["Heartbeat", "JobFailure", "JobRun", "StopJob", "WorkerOptions", "check_prompts_fit", "compute_options",
           "engine_for_job", "main", "run_job", "run_worker"]
