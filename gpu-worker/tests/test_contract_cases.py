"""The shared contract (contract/*.json) against its case files, which tests/contract/*.test.ts run through the API's
implementation too: one verdict (param and code, or line and code) per case in both languages.

    cd gpu-worker && .venv/bin/python -m pytest tests/test_contract_cases.py
"""
import json
from pathlib import Path

import pytest

from softgrpo.config import FIELD_NAMES, HyperparameterError, resolve_hyperparameters
from softgrpo.data import DatasetError, parse_jsonl_lines
from softgrpo.distributed import DevicesError, check_devices

ROOT = Path(__file__).resolve().parents[2]
HP = json.loads((ROOT / "tests" / "vectors" / "hyperparameter-cases.json").read_text(encoding="utf-8"))
DATA = json.loads((ROOT / "tests" / "vectors" / "dataset-cases.json").read_text(encoding="utf-8"))
RESOURCES = json.loads((ROOT / "tests" / "vectors" / "resource-cases.json").read_text(encoding="utf-8"))


def resolve(case: dict, hyperparameters: dict):
    manifest = HP["manifests"][case["manifest"]] if case.get("manifest") else None
    return resolve_hyperparameters(hyperparameters, case.get("method", "soft_grpo"), case.get("train_size", 10),
                                   manifest, case.get("context_length"))


@pytest.mark.parametrize("case", HP["cases"], ids=[c["name"] for c in HP["cases"]])
def test_hyperparameter_case(case):
    if "error" in case:
        with pytest.raises(HyperparameterError) as info:
            resolve(case, case["hyperparameters"])
        expected = case["error"]
        assert (info.value.param, info.value.code, info.value.source) == \
            (expected["param"], expected["code"], expected.get("source", "request")), str(info.value)
        return
    resolved = resolve(case, case["hyperparameters"]).to_dict()
    assert {k: resolved[k] for k in case["resolved"]} == case["resolved"]
    # the stored set, sent again (as the worker receives it), is accepted and resolves to itself
    assert resolve(case, resolved).to_dict() == resolved


@pytest.mark.parametrize("case", DATA["cases"], ids=[c["name"] for c in DATA["cases"]])
def test_dataset_case(case):
    data = bytes.fromhex(case["hex"]) if "hex" in case else case["text"].encode("utf-8")
    if "error" in case:
        with pytest.raises(DatasetError) as info:
            parse_jsonl_lines(data, "case")
        assert info.value.problems[0] == (case["error"]["line"], case["error"]["code"]), str(info.value)
    else:
        assert len(parse_jsonl_lines(data, "case")) == case["examples"]


@pytest.mark.parametrize("case", RESOURCES["cases"], ids=[c["name"] for c in RESOURCES["cases"]])
def test_resource_case(case):
    """resources.devices as the worker checks a claimed job (softgrpo.worker.job_run: the resolved set, then
    check_devices); the API gives the same verdict at create (tests/contract/resources.test.ts)."""
    hp = resolve_hyperparameters(case["hyperparameters"], "soft_grpo", case.get("train_size", 10))
    if case.get("accepted"):
        check_devices(case["devices"], hp)
        return
    with pytest.raises(DevicesError) as info:
        check_devices(case["devices"], hp)
    assert info.value.rule == case["error"]["rule"], str(info.value)
    assert str(info.value) == f"resources.devices: {info.value.detail}"
    if "message" in case["error"]:
        assert info.value.detail == case["error"]["message"]


def test_every_resource_rule_has_a_rejected_and_an_accepted_case():
    rules = {rule["name"] for rule in json.loads((ROOT / "contract" / "resources.json").read_text())["rules"]}
    assert {c["error"]["rule"] for c in RESOURCES["cases"] if "error" in c} == rules | {"range"}
    assert sum(1 for c in RESOURCES["cases"] if c.get("accepted") and c["devices"] > 1) >= len(rules)


def test_every_field_and_code_has_a_case():
    fields_with_cases = {k for c in HP["cases"] for k in c["hyperparameters"]}
    assert {"clip_eps", "lora_alpha", "max_response_tokens", "mini_batch_size", "loss"} <= fields_with_cases
    assert len(FIELD_NAMES) == len(HP["cases"][0]["resolved"])  # the all-auto case lists every field
    codes = {c["error"]["code"] for c in DATA["cases"] if "error" in c}
    problems = set(json.loads((ROOT / "contract" / "dataset.json").read_text())["problems"])
    assert problems <= codes
