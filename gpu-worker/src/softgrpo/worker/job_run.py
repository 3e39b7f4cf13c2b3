"""One claimed job, start to end: a JobRun record that every step reads instead of long parameter lists.

claim (lease) -> download the training / validation files and validate every line before any training -> resolve
the hyperparameters ("auto" via the base model's manifest) and post them as the first event -> run softgrpo.train
(in this process on one device, under torchrun on more: worker.launcher), streaming metrics / eval events ->
upload every checkpoint and register it -> finish, or fail with a message the user can act on. Between training
steps the worker obeys the heartbeat's answer (cancel: stop, upload nothing; pause: checkpoint, then acknowledge and
release the job).
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from softgrpo.api_client import ApiError, Claim, LeaseLost, WorkerApi
from softgrpo.config import HyperparameterError, check_engine_options, resolve_hyperparameters, rollout_config
from softgrpo.data import DatasetError, example_messages, fit_prompts
from softgrpo.distributed import DevicesError, check_devices
from softgrpo.rewards import make_grader
from softgrpo.worker.events import EventStream, describe_metrics
from softgrpo.worker.failures import JobFailure, crash_failure
from softgrpo.worker.lease import Heartbeat, StopJob, log
from softgrpo.worker.transfers import download_dataset, download_model_files, restore_checkpoint, upload_checkpoint


@dataclass(frozen=True)
class WorkerOptions:
    """What this worker runs jobs with: its device kind and count, kernels, rollout loop, ONNX export, threads."""
    device: str = "cpu"
    devices: int = 1
    export_onnx: bool = True
    backend: str = "torch"
    rollout_engine: str = "plain"
    threads: int | None = None
    bf16: bool = False  # train.RunConfig.bf16: log-prob forwards under bfloat16 autocast
    gradient_checkpointing: bool = False  # train.RunConfig.gradient_checkpointing


@dataclass
class JobRun:
    """One attempt at a claimed job. The claim and the options are given; the inputs are filled by prepare()."""
    api: WorkerApi
    claim: Claim
    options: WorkerOptions
    work_root: Path
    out_dir: Path
    heartbeat: Heartbeat
    hp: object = None  # softgrpo.config.Hyperparameters
    train_examples: list[dict] = field(default_factory=list)
    validation: list[dict] | None = None
    base_dir: Path | None = None
    rollout_engine: str = "plain"  # the engine this job runs on (engine_for_job)
    engine_note: str | None = None
    events: EventStream | None = None

    @property
    def job(self) -> dict:
        return self.claim["job"]

    @property
    def job_id(self) -> str:
        return self.claim["job"]["id"]

    @property
    def token(self) -> str:
        return self.claim["lease"]["token"]

    @property
    def method(self) -> str:
        return self.claim["job"]["method"]["type"]

    @property
    def devices(self) -> int:
        """The devices the job asked for (resources.devices; 1 when the API predates the field)."""
        return int((self.claim["job"].get("resources") or {}).get("devices", 1))


def compute_options(backend: str | None, rollout_engine: str | None, device: str) -> tuple[str, str]:
    """The kernels and rollout loop (softgrpo.train's `backend` / `rollout_engine`); None picks what the CLI picks:
    the Triton kernels and the static CUDA-graph engine on CUDA, the torch references on CPU."""
    on_cuda = str(device).startswith("cuda")
    return backend or ("triton" if on_cuda else "torch"), rollout_engine or ("static" if on_cuda else "plain")


def engine_for_job(backend: str, rollout_engine: str, device: str, hp, method: str) -> tuple[str, str | None]:
    """The rollout engine this job can use: the static engine samples only within a top_k set, so a job whose
    sampling settings it cannot honour runs on the plain engine (said in the start message, not silently)."""
    try:
        check_engine_options(backend, rollout_engine, device, rollout_config(hp, method))
        return rollout_engine, None
    except ValueError as err:
        if rollout_engine == "plain":
            raise
        check_engine_options(backend, "plain", device, rollout_config(hp, method))  # any other problem: raise
        return "plain", f"rollout engine 'plain' instead of '{rollout_engine}': {err}"


def check_prompts_fit(base_dir: Path, manifest: dict, hp, datasets: dict[str, list[tuple[int, dict]] | None]) -> None:
    """Every prompt plus max_response_tokens fits the model's context unless prompt_truncation is "left": the rule
    the API checked at create (src/routes/finetune/resolve-job.ts), checked again before any model loads."""
    from softgrpo.tokenizer import ChatTokenizer  # imports torch: after the cheap checks of a claim

    tokenizer = ChatTokenizer.from_pretrained(base_dir)
    for param, lines in datasets.items():
        if not lines:
            continue
        prompts = [tokenizer.encode_chat(example_messages(example)) for _, example in lines]
        try:
            fit_prompts(prompts, hp.max_response_tokens, manifest.get("context_length"), hp.prompt_truncation, param,
                        [number for number, _ in lines])
        except DatasetError as err:
            raise JobFailure("invalid_file", f"{err}.", param) from None


def run_job(api: WorkerApi, claim: Claim, work_root: Path, options: WorkerOptions, heartbeat_api: WorkerApi) -> str:
    """Run one claimed job to its end; returns "succeeded" | "failed" | "paused" | "cancelled" | "lease_lost"."""
    job, token = claim["job"], claim["lease"]["token"]
    job_id = job["id"]
    heartbeat = Heartbeat(heartbeat_api, job_id, token, interval=max(1.0, claim["lease"]["seconds"] / 3))
    heartbeat.start()
    out_dir = work_root / "jobs" / job_id / f"attempt-{claim['attempt']}"
    shutil.rmtree(out_dir.parent, ignore_errors=True)  # earlier attempts' local files are not trusted
    out_dir.mkdir(parents=True)
    run = JobRun(api, claim, options, work_root, out_dir, heartbeat)
    resume = claim["resume_from"]
    resuming = f", resuming at step {resume['step']}" if resume else ""
    log(f"job {job_id}: attempt {claim['attempt']}/{claim['max_attempts']} ({run.method} on {job['model']}, "
        f"{run.devices} device{'s' if run.devices > 1 else ''}{resuming})")
    try:
        return _run(run)
    except StopJob as stop:
        log(f"job {job_id}: stopped ({stop})")
        return "cancelled" if str(stop) == "cancelled" else "lease_lost"
    except LeaseLost:  # a cancel answer releases the lease, so later calls see lease_lost too
        outcome = "cancelled" if heartbeat.action == "cancel" else "lease_lost"
        log(f"job {job_id}: lease released ({outcome}); stopping")
        return outcome
    except Exception as err:  # JobFailure, or a bug / broken environment: tell the user what happened
        failure = crash_failure(err)
        log(f"job {job_id}: failed: {failure.code}: {failure.message}")
        return _report_failure(run, failure)
    finally:
        heartbeat.stop()
        shutil.rmtree(out_dir.parent, ignore_errors=True)


def _report_failure(run: JobRun, failure: JobFailure) -> str:
    try:
        run.api.fail(run.job_id, run.token, failure.code, failure.message, failure.param, failure.retryable)
    except LeaseLost:
        return "lease_lost"
    return "failed"


def prepare(run: JobRun) -> None:
    """The job's inputs, every line validated and every rule checked before any model is loaded."""
    api, claim, options = run.api, run.claim, run.options
    manifest = claim["base_model"]["manifest"]
    train_lines = download_dataset(api, claim["training_file"], run.out_dir / "train.jsonl", "training_file")
    run.train_examples = [example for _, example in train_lines]
    validation_lines = None
    if claim["validation_file"]:
        validation_lines = download_dataset(api, claim["validation_file"], run.out_dir / "validation.jsonl",
                                            "validation_file")
        run.validation = [example for _, example in validation_lines]
    try:
        make_grader(run.job["grader"])
    except ValueError as err:
        raise JobFailure("invalid_grader", str(err), "grader") from None
    try:
        run.hp = resolve_hyperparameters(run.job["method"]["hyperparameters"], run.method, len(run.train_examples),
                                         manifest, context_length=manifest.get("context_length"))
    except HyperparameterError as err:
        param = "hyperparameters" if err.param == "hyperparameters" else f"hyperparameters.{err.param}"
        raise JobFailure("invalid_hyperparameters", str(err), param) from None
    except ValueError as err:
        raise JobFailure("invalid_hyperparameters", str(err), "hyperparameters") from None
    if run.devices > options.devices:  # the claim filters these out; an older API might not
        raise JobFailure("insufficient_devices", f"the job asks for {run.devices} devices; this worker has "
                         f"{options.devices}", "resources.devices", retryable=True)
    try:
        check_devices(run.devices, run.hp)
    except DevicesError as err:
        raise JobFailure("invalid_resources", str(err), "resources.devices") from None
    run.rollout_engine, run.engine_note = engine_for_job(options.backend, options.rollout_engine, options.device,
                                                         run.hp, run.method)
    if run.engine_note:
        log(f"job {run.job_id}: {run.engine_note}")
    run.heartbeat.check()
    run.base_dir = download_model_files(api, claim["base_model"]["files"],
                                        run.work_root / "models" / claim["base_model"]["id"])
    check_prompts_fit(run.base_dir, manifest, run.hp, {"training_file": train_lines,
                                                       "validation_file": validation_lines})


def _run(run: JobRun) -> str:
    from softgrpo.worker.launcher import start_training  # torch import: after the cheap checks of a claim

    prepare(run)
    resume = run.claim["resume_from"]
    if resume:
        state = restore_checkpoint(run.api, resume, run.out_dir)
        run.events = EventStream(run.api, run.job_id, run.token, state["next_event_seq"])
        if resume["step"] >= run.hp.n_steps:  # the final checkpoint was registered; only finish was lost
            return _finish(run, run.hp.n_steps)
    else:
        run.events = EventStream(run.api, run.job_id, run.token, 0)  # a fresh run re-emits the same stream
        run.events.emit("hyperparameters", f"Resolved hyperparameters for {run.method}.", run.hp.to_dict())
    run.events.flush()
    run.heartbeat.trained_steps = resume["step"] if resume else 0

    resumed = bool(resume)
    while True:
        outcome = _train_until_stop(run, start_training(run, resumed))
        if outcome != "paused":
            return outcome
        try:
            run.api.ack_pause(run.job_id, run.token)
            log(f"job {run.job_id}: paused at step {run.heartbeat.trained_steps}")
            return "paused"
        except ApiError as err:
            if err.code != "invalid_job_status":
                raise
            log(f"job {run.job_id}: resumed before the pause was acknowledged; training on")
            run.heartbeat.action = "continue"
            resumed = True  # continue from the local checkpoint just written


def _train_until_stop(run: JobRun, training) -> str:
    """Drive a training event source (softgrpo.train's generator, or the torchrun relay of worker.launcher; both
    take "stop" through send()); returns "succeeded" | "paused"."""
    events, heartbeat = run.events, run.heartbeat
    compute = {"backend": run.options.backend, "rollout_engine": run.rollout_engine, "note": run.engine_note}
    command = None
    try:
        while True:
            try:
                event = training.send(command)
            except StopIteration:
                raise RuntimeError("the training loop ended without a done event") from None
            command = None
            kind = event["type"]
            if kind == "start":
                if not event["resumed_from_step"]:
                    where = event["device"] if run.devices == 1 else f"{run.devices} x {run.options.device}"
                    events.emit("message", f"Training started on {where}: {event['n_train']} training and "
                                f"{event['n_validation']} validation examples, "
                                f"{event['trainable_parameters']} trainable parameters"
                                f"{'; ' + run.engine_note if run.engine_note else ''}.",
                                {**{k: v for k, v in event.items() if k not in ("type", "hyperparameters")}, **compute})
            elif kind == "metrics":
                heartbeat.trained_steps = event["step"]
                data = {k: v for k, v in event.items() if k != "type"}
                line = describe_metrics(data, run.hp.n_steps, run.hp.kl_beta)
                events.emit("metrics", line, data)
                log(f"job {run.job_id}: {line}")
                events.flush()
                if heartbeat.beat() == "pause":  # between steps: extend the lease and obey the answer at once
                    command = "stop"
            elif kind == "eval":
                data = {k: v for k, v in event.items() if k != "type"}
                events.emit("eval", f"eval at step {data['step']}: pass@1 {data['pass_at_1']:.3f} on "
                            f"{data['n_prompts']} validation prompts", data)
                events.flush()
            elif kind == "checkpoint":
                events.flush()  # the events up to this checkpoint exist before it does (see worker.events)
                ckpt = upload_checkpoint(run.api, run.job_id, run.token, event, events.next_seq)
                log(f"job {run.job_id}: registered {ckpt['fine_tuned_model_checkpoint']}")
                shutil.rmtree(event["model_dir"], ignore_errors=True)  # uploaded; the state stays for a local resume
            elif kind == "stopped":
                return "paused"
            elif kind == "done":
                return _finish(run, event["step"])
            heartbeat.check()
    finally:
        training.close()


def _finish(run: JobRun, step: int) -> str:
    run.events.emit("message", f"Training finished after {step} steps.", {"step": step})
    run.events.flush()
    job = run.api.finish(run.job_id, run.token)
    log(f"job {run.job_id}: succeeded: {job['fine_tuned_model']}")
    return "succeeded"
