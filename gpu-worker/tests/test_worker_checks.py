"""The worker's own checks of a claimed job before any model loads (defence in depth: the API checked the same
contract rules at upload and create): prompts that do not fit the context fail the job naming their lines."""
import pytest

from softgrpo.config import resolve_hyperparameters
from softgrpo.worker import JobFailure, check_prompts_fit
from test_train import make_model_folder  # the tiny random Qwen2 folder of the training tests


def test_prompts_that_do_not_fit_fail_the_job_naming_their_lines(tmp_path):
    folder = make_model_folder(tmp_path / "toy")
    manifest = {"context_length": 64}
    lines = [(1, {"prompt": "1+1?", "answer": 2}), (3, {"prompt": "3+4=7 " * 40, "answer": 7})]
    hp = resolve_hyperparameters({"max_response_tokens": 16}, "soft_grpo", 2, manifest, 64)
    with pytest.raises(JobFailure) as info:
        check_prompts_fit(folder, manifest, hp, {"training_file": lines, "validation_file": None})
    failure = info.value
    assert (failure.code, failure.param) == ("invalid_file", "training_file")
    assert "line 3: the prompt is" in failure.message and "line 1" not in failure.message
    truncated = resolve_hyperparameters({"max_response_tokens": 16, "prompt_truncation": "left"}, "soft_grpo", 2,
                                        manifest, 64)
    check_prompts_fit(folder, manifest, truncated, {"training_file": lines, "validation_file": None})
