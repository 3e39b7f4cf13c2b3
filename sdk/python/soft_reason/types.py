"""Response and request shapes of the API as TypedDicts, written by hand from openapi/openapi.json and checked
against it field by field (names, required keys, JSON types, enums) by tests/test_types_match_spec.py, so they
cannot drift. ``SPEC_SCHEMAS`` maps each to its components/schemas name.

(No `from __future__ import annotations` here: TypedDict needs real NotRequired[...] objects to compute
__required_keys__ on Python 3.11.)"""

from typing import Any, Literal, NotRequired, TypedDict

JobStatus = Literal["validating_files", "queued", "running", "pausing", "paused", "succeeded", "failed", "cancelled"]
TERMINAL_STATUSES: tuple[JobStatus, ...] = ("succeeded", "failed", "cancelled")


class ErrorBody(TypedDict):
    message: str
    type: str
    param: str | None
    code: str | None


class Error(TypedDict):
    error: ErrorBody


class File(TypedDict):
    id: str
    object: Literal["file"]
    bytes: int
    created_at: int
    filename: str
    purpose: Literal["fine-tune", "fine-tune-results"]
    status: Literal["processed"]
    examples: int
    sha256: str


class FileList(TypedDict):
    object: Literal["list"]
    data: list[File]
    has_more: bool
    first_id: str | None
    last_id: str | None


class DeletedFile(TypedDict):
    id: str
    object: Literal["file"]
    deleted: bool


class JobError(TypedDict):
    code: str
    message: str
    param: str | None


class JobMethod(TypedDict):
    type: Literal["soft_grpo", "grpo"]
    hyperparameters: dict[str, Any]


class JobResources(TypedDict):
    devices: int


class FineTuningJob(TypedDict):
    id: str
    object: Literal["fine_tuning.job"]
    created_at: int
    started_at: int | None
    finished_at: int | None
    model: str
    fine_tuned_model: str | None
    organization_id: str
    status: JobStatus
    training_file: str
    validation_file: str | None
    method: JobMethod
    hyperparameters: dict[str, Any]
    grader: dict[str, Any]
    suffix: str | None
    seed: int
    metadata: dict[str, str] | None
    error: JobError | None
    trained_steps: int
    attempts: int
    result_files: list[str]
    trained_tokens: int | None
    estimated_finish: int | None
    integrations: list[dict[str, Any]]
    user_provided_suffix: str | None
    resources: JobResources


class FineTuningJobList(TypedDict):
    object: Literal["list"]
    data: list[FineTuningJob]
    has_more: bool
    first_id: str | None
    last_id: str | None


class FineTuningJobEvent(TypedDict):
    id: str
    object: Literal["fine_tuning.job.event"]
    created_at: int
    level: Literal["info", "warn", "error"]
    type: str
    message: str
    data: dict[str, Any] | None


class FineTuningJobEventList(TypedDict):
    object: Literal["list"]
    data: list[FineTuningJobEvent]
    has_more: bool
    first_id: str | None
    last_id: str | None


class CheckpointFile(TypedDict):
    name: str
    bytes: int
    sha256: str


class FineTuningJobCheckpoint(TypedDict):
    id: str
    object: Literal["fine_tuning.job.checkpoint"]
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    step_number: int
    metrics: dict[str, float]
    files: list[CheckpointFile]


class FineTuningJobCheckpointList(TypedDict):
    object: Literal["list"]
    data: list[FineTuningJobCheckpoint]
    has_more: bool
    first_id: str | None
    last_id: str | None


class Model(TypedDict):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    kind: Literal["base", "fine-tuned", "checkpoint"]
    root: str
    job_id: str | None
    step: int | None


class ModelList(TypedDict):
    object: Literal["list"]
    data: list[Model]


class ReasonChoiceUsage(TypedDict):
    reasoning_tokens: int
    answer_tokens: int
    completion_tokens: int


class SoftThought(TypedDict):
    ids: list[int]  # the k token ids mixed at one thinking step
    tokens: list[str]  # each id decoded alone
    weights: list[float]  # their mixture weights, summing to 1


class ReasonChoice(TypedDict):
    index: int
    reasoning: str
    reasoning_content: str
    answer: str
    extracted_answer: str | None
    finish_reason: Literal["stop", "length", "cancelled"]
    thinking_end: Literal["emitted", "cap", "cold_stop"] | None
    usage: ReasonChoiceUsage
    soft_thoughts: NotRequired[list[SoftThought]]  # with soft_thoughts=True: one entry per thinking step


class VoteCount(TypedDict):
    answer: str
    count: int


class ReasonAggregate(TypedDict):
    answer: str | None
    votes: int
    agreement: float
    samples: int
    distribution: list[VoteCount]


class ReasonUsage(TypedDict):
    prompt_tokens: int
    reasoning_tokens: int
    answer_tokens: int
    completion_tokens: int
    total_tokens: int


class ReasonResponse(TypedDict):
    id: str
    object: Literal["reason.result"]
    created: int
    model: str
    mode: Literal["soft", "discrete"]
    seed: int
    choices: list[ReasonChoice]
    aggregate: ReasonAggregate
    usage: ReasonUsage


class ReasonMessage(TypedDict):
    role: Literal["system", "developer", "user", "assistant"]  # developer is treated as system
    content: str | list[dict[str, Any]]  # or text parts [{"type": "text", "text": ...}]
    name: NotRequired[str]


class ReasonRequest(TypedDict):
    model: str
    messages: NotRequired[list[ReasonMessage]]
    prompt: NotRequired[str]
    mode: NotRequired[Literal["soft", "discrete"]]
    soft_thinking: NotRequired[dict[str, Any]]
    vote: NotRequired[dict[str, Any]]
    n: NotRequired[int]
    max_tokens: NotRequired[int]
    temperature: NotRequired[float]
    top_k: NotRequired[int]
    top_p: NotRequired[float]
    min_p: NotRequired[float]
    seed: NotRequired[int]
    stop: NotRequired[str | list[str] | None]  # cuts the answer only, never thinking
    stream: NotRequired[bool]
    soft_thoughts: NotRequired[bool]  # soft mode: per-step mixed tokens and weights on each choice (default off)


class CreateFineTuningJob(TypedDict):
    model: str
    training_file: str
    validation_file: NotRequired[str | None]
    method: NotRequired[dict[str, Any]]
    grader: NotRequired[dict[str, Any]]
    suffix: NotRequired[str | None]
    seed: NotRequired[int]
    metadata: NotRequired[dict[str, str] | None]
    integrations: NotRequired[list[Any] | None]
    resources: NotRequired[JobResources]


SPEC_SCHEMAS: dict[str, type] = {
    "Error": Error,
    "File": File,
    "FileList": FileList,
    "DeletedFile": DeletedFile,
    "FineTuningJob": FineTuningJob,
    "FineTuningJobList": FineTuningJobList,
    "FineTuningJobEvent": FineTuningJobEvent,
    "FineTuningJobEventList": FineTuningJobEventList,
    "FineTuningJobCheckpoint": FineTuningJobCheckpoint,
    "FineTuningJobCheckpointList": FineTuningJobCheckpointList,
    "Model": Model,
    "ModelList": ModelList,
    "ReasonResponse": ReasonResponse,
    "ReasonChoice": ReasonChoice,
    "SoftThought": SoftThought,
    "ReasonAggregate": ReasonAggregate,
    "ReasonUsage": ReasonUsage,
    "ReasonMessage": ReasonMessage,
    "ReasonRequest": ReasonRequest,
    "CreateFineTuningJob": CreateFineTuningJob,
}
