"""Import a downloaded Hugging Face model (Qwen2 or Llama) as a base model folder that the API serves and fine-tunes.

    gpu-worker/.venv/bin/python -m softgrpo.import_model <hf-folder> --out models/<id> [--id <id>] [--int8]
        [--think-start '<think>' --think-end '</think>'] [--add-think-tokens] [--context-length N] [--check]
    npm run import-model -- <hf-folder> --out models/<id> [...]          (the same code, from the Node side)

Reads the folder as `huggingface-cli download` / `save_pretrained` leave it: config.json, tokenizer.json,
tokenizer_config.json (chat template inside it or in chat_template.jinja), generation_config.json, and the weights as
model.safetensors or sharded model-0000i-of-0000n.safetensors with model.safetensors.index.json. Every problem found
is reported at once (ImportProblems), naming the file and what to change. Writes into --out:
  config.json, tokenizer.json, tokenizer_config.json (chat template folded in: the engines read it from there),
  generation_config.json, model.safetensors (the shards merged, in their own dtype), model.onnx + model.onnx.data
  (float32, external data, the soft-token signature of softgrpo.export_onnx), model.int8.onnx with --int8
  (onnxruntime.quantization.quantize_dynamic, per-channel int8 weights, for CPU serving), and manifest.json last
  (file hashes, context length, thinking markers, parameter count, recommended hyperparameters by size from
  contract/model-sizes.json).
Registering: on Node, an --out folder under MODELS_DIR is a base model at the next start; on Workers,
`npm run upload-model -- <out> --remote` puts it in R2 (printed at the end).

Thinking markers: single tokens that open and close the thinking block, `<think>` / `</think>` unless
--think-start/--think-end name others or the chat template writes others (`<thinking>`, `<reasoning>`); markers
other than the defaults go into tokenizer_config.json as `think_start` / `think_end`, which both engines read. When the
vocabulary lacks them, --add-think-tokens adds them as special tokens at the embedding's spare rows (Qwen2.5
checkpoints have 271), or the import says there are none.
"""

import argparse
import json
import re
import shutil
import sys
import time
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file

from softgrpo.model import SUPPORTED_MODEL_TYPES, ModelConfig, ModelFolderError
from softgrpo.model_folder import write_manifest

ARCHITECTURES = {"qwen2": "Qwen2ForCausalLM", "llama": "LlamaForCausalLM"}
ENGINE_THINK_START, ENGINE_THINK_END = "<think>", "</think>"
MODEL_SIZES = Path(__file__).resolve().parents[3] / "contract" / "model-sizes.json"
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class ImportProblems(ModelFolderError):
    """Everything that stops an import, one line per problem, each naming its file."""

    def __init__(self, folder: Path, problems: list[str]):
        self.problems = problems
        super().__init__(f"cannot import {folder}:\n" + "\n".join(f"  - {p}" for p in problems))


def _read_json(path: Path, problems: list[str]) -> dict | None:
    if not path.is_file():
        problems.append(f"{path.name}: missing")
        return None
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        problems.append(f"{path.name}: not valid JSON ({e})")
        return None
    if not isinstance(value, dict):
        problems.append(f"{path.name}: not a JSON object")
        return None
    return value


def check_config(config: dict) -> list[str]:
    """What in config.json this project cannot run (empty when supported)."""
    problems = []
    model_type = config.get("model_type")
    arch = config.get("architectures") or []
    if model_type not in SUPPORTED_MODEL_TYPES:
        supported = ", ".join(f"{t} ({a})" for t, a in ARCHITECTURES.items())
        return [f"config.json: model_type {model_type!r} ({', '.join(arch) or 'no architectures'}) is not supported; "
                f"supported: {supported}"]
    if arch and arch != [ARCHITECTURES[model_type]]:
        problems.append(f"config.json: architectures {arch} is not [{ARCHITECTURES[model_type]!r}] (only the causal LM "
                        "head is supported)")
    if config.get("quantization_config"):
        method = config["quantization_config"].get("quant_method", "?")
        problems.append(f"config.json: quantization_config ({method}) is not supported; import the unquantized "
                        "(bf16/fp16/fp32) checkpoint (--int8 makes a CPU int8 variant from it)")
    if config.get("hidden_act", "silu") != "silu":
        problems.append(f"config.json: hidden_act {config['hidden_act']!r} is not supported (silu)")
    if config.get("use_sliding_window"):
        problems.append("config.json: use_sliding_window=true is not supported (full attention only)")
    layer_types = config.get("layer_types") or []
    if any(t != "full_attention" for t in layer_types):
        problems.append(f"config.json: layer_types {sorted(set(layer_types))} is not supported (full_attention only)")
    if config.get("pretraining_tp", 1) not in (1, None):
        problems.append(f"config.json: pretraining_tp {config['pretraining_tp']} is not supported (1)")
    if not problems:
        try:
            ModelConfig.from_dict(config)  # the model's own checks: required fields, heads, rope type
        except ModelFolderError as e:
            problems.append(str(e))
    return problems


def weight_files(folder: Path, problems: list[str]) -> list[Path]:
    """The safetensors files of the folder (the index's shards when there is an index), checked to exist."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        data = _read_json(index, problems) or {}
        shards = sorted(set((data.get("weight_map") or {}).values()))
        if not shards:
            problems.append("model.safetensors.index.json: empty weight_map")
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            problems.append(f"model.safetensors.index.json names shard(s) that are missing: {', '.join(missing[:5])}")
        return [folder / s for s in shards if (folder / s).is_file()]
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        other = [p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".gguf", ".ckpt")]
        problems.append("no *.safetensors weights" + (f" (found {', '.join(other[:3])}: convert them to "
                        "safetensors, e.g. save_pretrained(..., safe_serialization=True))" if other else ""))
    return files


def expected_shapes(config: dict, cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Hugging Face parameter names and shapes of a supported model (the keys SoftTokenLM loads)."""
    import torch

    from softgrpo.model import SoftTokenLM

    with torch.device("meta"):
        shapes = {name: tuple(p.shape) for name, p in SoftTokenLM(config).state_dict().items()}
    if cfg.tie_word_embeddings:
        shapes.pop("lm_head.weight")
    return shapes


def check_weights(files: list[Path], config: dict, cfg: ModelConfig) -> tuple[list[str], int, set[str]]:
    """(problems, parameter count, dtypes) from the safetensors headers (no tensor is read)."""
    problems, found, dtypes = [], {}, set()
    for f in files:
        try:
            with safe_open(f, framework="pt") as st:
                for key in st.keys():
                    sl = st.get_slice(key)
                    found[key] = (tuple(sl.get_shape()), f.name)
                    dtypes.add(str(sl.get_dtype()))
        except Exception as e:  # noqa: BLE001 -- safetensors raises several types for a broken header
            problems.append(f"{f.name}: not a readable safetensors file ({e})")
    if problems:
        return problems, 0, dtypes
    expected = expected_shapes(config, cfg)
    found = {k: v for k, v in found.items() if not k.endswith("rotary_emb.inv_freq")}
    if cfg.tie_word_embeddings:
        found.pop("lm_head.weight", None)
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = [f"{k} {list(found[k][0])} in {found[k][1]} (config.json implies {list(expected[k])})"
             for k in sorted(set(expected) & set(found)) if found[k][0] != expected[k]]
    if missing:
        hint = " (lm_head.weight: set tie_word_embeddings=true if the head is tied)" if "lm_head.weight" in missing else ""
        problems.append(f"weights lack {len(missing)} tensor(s) config.json needs: {', '.join(missing[:4])}{hint}")
    if unexpected:
        problems.append(f"weights have {len(unexpected)} tensor(s) this architecture does not use: "
                        f"{', '.join(unexpected[:4])}")
    if wrong:
        problems.append("tensor shape(s) differ from config.json: " + "; ".join(wrong[:3]))
    bad_dtypes = dtypes - {"torch.float32", "torch.bfloat16", "torch.float16", "F32", "BF16", "F16"}
    if bad_dtypes:
        problems.append(f"weights in dtype(s) {sorted(bad_dtypes)} (quantized?); float32/bfloat16/float16 only")
    n = 0
    for k, (shape, _) in found.items():
        size = 1
        for s in shape:
            size *= s
        n += size
    return problems, n, dtypes


def chat_template(folder: Path, tok_config: dict) -> str | None:
    template = tok_config.get("chat_template")
    if isinstance(template, list):
        by_name = {t.get("name"): t.get("template") for t in template}
        template = by_name.get("default") or next(iter(by_name.values()), None)
    if not template and (folder / "chat_template.jinja").is_file():
        template = (folder / "chat_template.jinja").read_text()
    return template or None


def thinking_markers(template: str, start: str | None, end: str | None) -> tuple[str, str]:
    """The markers given, else the ones the chat template writes (`<think>` / `</think>`), else the defaults."""
    if start and end:
        return start, end
    found = re.search(r"<(think|thinking|reasoning)>", template or "")
    if found:
        name = found.group(1)
        return start or f"<{name}>", end or f"</{name}>"
    return start or ENGINE_THINK_START, end or ENGINE_THINK_END


def token_text(value) -> str | None:
    return value.get("content") if isinstance(value, dict) else value


def recommended_hyperparameters(n_parameters: int) -> tuple[str, dict]:
    sizes = json.loads(MODEL_SIZES.read_text())
    for tier in sizes["tiers"]:
        if tier["max_parameters"] is None or n_parameters <= tier["max_parameters"]:
            return tier["name"], dict(tier["recommended_hyperparameters"])
    raise AssertionError("contract/model-sizes.json: the last tier must have max_parameters null")


def inspect(folder: str | Path, think_start: str | None = None, think_end: str | None = None,
            add_think_tokens: bool = False) -> dict:
    """Check a Hugging Face folder; return what import needs, or raise ImportProblems listing every problem."""
    from tokenizers import Tokenizer

    folder = Path(folder)
    if not folder.is_dir():
        raise ImportProblems(folder, [f"{folder}: not a folder"])
    problems: list[str] = []
    config = _read_json(folder / "config.json", problems)
    cfg = None
    if config is not None:
        config_problems = check_config(config)
        problems += config_problems
        if not config_problems:
            cfg = ModelConfig.from_dict(config)
    files = weight_files(folder, problems)
    n_parameters, dtypes = 0, set()
    if cfg is not None and files:
        weight_problems, n_parameters, dtypes = check_weights(files, config, cfg)
        problems += weight_problems

    tokenizer = None
    if not (folder / "tokenizer.json").is_file():
        hint = " (only tokenizer.model: save the fast tokenizer with transformers' save_pretrained)" \
            if (folder / "tokenizer.model").is_file() else ""
        problems.append(f"tokenizer.json: missing{hint}")
    else:
        try:
            tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as e:  # noqa: BLE001 -- tokenizers raises a bare Exception on a bad file
            problems.append(f"tokenizer.json: not loadable by tokenizers ({e})")
    tok_config = _read_json(folder / "tokenizer_config.json", problems)
    template, eos, markers, added = None, None, (think_start, think_end), []
    if tok_config is not None:
        template = chat_template(folder, tok_config)
        if not template:
            problems.append("tokenizer_config.json: no chat_template (nor chat_template.jinja); a chat model is needed")
        eos = token_text(tok_config.get("eos_token"))
        if not eos:
            problems.append("tokenizer_config.json: no eos_token")
        markers = thinking_markers(template or "", think_start, think_end)
        if markers[0] == markers[1]:
            problems.append(f"thinking markers: start and end are both {markers[0]!r}; they must differ")
    if tokenizer is not None and tok_config is not None:
        if eos and tokenizer.token_to_id(eos) is None:
            problems.append(f"tokenizer.json: eos_token {eos!r} of tokenizer_config.json is not a single token")
        absent = [m for m in markers if tokenizer.token_to_id(m) is None]
        size = tokenizer.get_vocab_size(with_added_tokens=True)
        if absent and not add_think_tokens:
            problems.append(f"tokenizer.json: no single token {' / '.join(map(repr, absent))}; pass --add-think-tokens "
                            "to add them as special tokens at spare embedding rows")
        elif absent and cfg is not None:
            if size + len(absent) > cfg.vocab_size:
                problems.append(f"tokenizer.json: {len(absent)} thinking token(s) to add but the embedding has "
                                f"{cfg.vocab_size} rows for {size} tokens (no spare rows); pass --think-start / "
                                "--think-end naming two tokens of the vocabulary (e.g. reserved special tokens)")
            else:
                added = absent
        if cfg is not None and size > cfg.vocab_size:
            problems.append(f"tokenizer.json: {size} tokens but config.json vocab_size is {cfg.vocab_size}")
    if problems:
        raise ImportProblems(folder, problems)
    context = min(config.get("max_position_embeddings", 32768), int(tok_config.get("model_max_length") or 1 << 30))
    return dict(folder=folder, config=config, cfg=cfg, files=files, n_parameters=n_parameters, dtypes=sorted(dtypes),
                template=template, tok_config=tok_config, eos=eos, add_tokens=added, context_length=context,
                markers=markers)


def merge_weights(files: list[Path], out: Path, tied: bool) -> None:
    """One model.safetensors from the shards, each tensor in its own dtype (the tied lm_head left out)."""
    state = {}
    for f in files:
        with safe_open(f, framework="pt") as st:
            for key in st.keys():
                if key.endswith("rotary_emb.inv_freq") or (tied and key == "lm_head.weight"):
                    continue
                state[key] = st.get_tensor(key)
    save_file(state, out / "model.safetensors", metadata={"format": "pt"})


def write_tokenizer(info: dict, out: Path) -> None:
    from tokenizers import AddedToken, Tokenizer

    src = info["folder"]
    if info["add_tokens"]:
        tok = Tokenizer.from_file(str(src / "tokenizer.json"))
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in info["add_tokens"]])
        tok.save(str(out / "tokenizer.json"))
    else:
        shutil.copyfile(src / "tokenizer.json", out / "tokenizer.json")
    tok_config = dict(info["tok_config"], chat_template=info["template"])
    if info["markers"] != (ENGINE_THINK_START, ENGINE_THINK_END):  # both engines' tokenizers read these keys
        tok_config.update(think_start=info["markers"][0], think_end=info["markers"][1])
    (out / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2, ensure_ascii=False) + "\n")


def quantize_int8(onnx_path: Path, out_path: Path, external: bool) -> Path:
    """Dynamic int8 weights (per output channel) with onnxruntime's own tool; activations stay float."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(onnx_path), str(out_path), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul"], use_external_data_format=external)
    return out_path


def import_model(source: str | Path, out: str | Path, model_id: str | None = None, int8: bool = False,
                 think_start: str | None = None, think_end: str | None = None, add_think_tokens: bool = False,
                 context_length: int | None = None, check: bool = False, log=print) -> dict:
    """Import `source` into the model folder `out`; returns the manifest written."""
    import torch

    from softgrpo import export_onnx
    from softgrpo.model import SoftTokenLM

    timings = {}
    t0 = time.perf_counter()
    info = inspect(source, think_start, think_end, add_think_tokens)
    out = Path(out)
    model_id = model_id or out.name
    if not ID_RE.match(model_id):
        raise ImportProblems(Path(source), [f"--id {model_id!r}: use letters, digits, '.', '_', '-' (at most 128)"])
    if out.resolve() == Path(source).resolve():
        raise ImportProblems(Path(source), ["--out must be a new folder, not the source folder"])
    if out.exists() and any(out.iterdir()):
        raise ImportProblems(Path(source), [f"--out {out}: exists and is not empty"])
    out.mkdir(parents=True, exist_ok=True)
    cfg: ModelConfig = info["cfg"]
    log(f"{model_id}: {cfg.model_type}, {info['n_parameters'] / 1e6:.1f}M parameters ({', '.join(info['dtypes'])}), "
        f"{len(info['files'])} safetensors file(s), tied embeddings: {cfg.tie_word_embeddings}")
    shutil.copyfile(info["folder"] / "config.json", out / "config.json")
    if (info["folder"] / "generation_config.json").is_file():
        shutil.copyfile(info["folder"] / "generation_config.json", out / "generation_config.json")
    write_tokenizer(info, out)
    merge_weights(info["files"], out, cfg.tie_word_embeddings)
    timings["check_and_copy_seconds"] = round(time.perf_counter() - t0, 2)

    t1 = time.perf_counter()
    model = SoftTokenLM.from_pretrained(out)  # float32 CPU, as the ONNX graph is
    export_onnx.export_full(model, out / "model.onnx", external_data=True)
    timings["onnx_export_seconds"] = round(time.perf_counter() - t1, 2)
    log(f"{model_id}: wrote model.onnx + model.onnx.data in {timings['onnx_export_seconds']} s")
    checks = {}
    if check:
        err = export_onnx.compare_with_onnxruntime(model, out / "model.onnx")
        checks["onnx_vs_pytorch_max_abs_logit_diff"] = err["logits"]
        checks["onnx_vs_pytorch_max_abs_new_kv_diff"] = err["new_kv"]
    if int8:
        t2 = time.perf_counter()
        big = info["n_parameters"] > export_onnx.BIG_MODEL_BYTES  # int8: one byte per weight
        quantize_int8(out / "model.onnx", out / "model.int8.onnx", external=big)
        timings["int8_quantize_seconds"] = round(time.perf_counter() - t2, 2)
        log(f"{model_id}: wrote model.int8.onnx in {timings['int8_quantize_seconds']} s")
        if check:
            err = export_onnx.compare_with_onnxruntime(model, out / "model.int8.onnx")
            checks["int8_vs_pytorch_max_abs_logit_diff"] = err["logits"]
            checks["int8_vs_pytorch_max_abs_new_kv_diff"] = err["new_kv"]
    del model

    tier, recommended = recommended_hyperparameters(info["n_parameters"])
    context = context_length or info["context_length"]
    timings["total_seconds"] = round(time.perf_counter() - t0, 2)
    manifest = write_manifest(
        out, base=model_id, step=0, context_length=context, eos=info["eos"],
        think_start=info["markers"][0], think_end=info["markers"][1],
        id=model_id, parameters=info["n_parameters"], size_tier=tier,
        recommended_hyperparameters=recommended,
        recommended_hyperparameters_source="contract/model-sizes.json tier " + repr(tier),
        onnx={"fp32": "model.onnx", **({"int8": "model.int8.onnx"} if int8 else {}),
              "serving": "int8" if int8 else "fp32"},
        source={"folder": str(Path(source).resolve()), "model_type": cfg.model_type,
                "architectures": info["config"].get("architectures"), "dtypes": info["dtypes"],
                "safetensors_files": [f.name for f in info["files"]], "tie_word_embeddings": cfg.tie_word_embeddings,
                **({"added_tokens": info["add_tokens"]} if info["add_tokens"] else {})},
        import_timings=timings, **({"import_checks": checks} if checks else {}),
    )
    return manifest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Import a Hugging Face Qwen2/Llama folder as a base model folder")
    ap.add_argument("source", help="the downloaded Hugging Face model folder")
    ap.add_argument("--out", required=True, help="the new model folder (Node: a folder under MODELS_DIR)")
    ap.add_argument("--id", help="model id (default: the --out folder name)")
    ap.add_argument("--int8", action="store_true", help="also write model.int8.onnx (dynamic int8, CPU serving)")
    ap.add_argument("--think-start", help="thinking start marker (default: from the chat template, else <think>)")
    ap.add_argument("--think-end", help="thinking end marker (default: from the chat template, else </think>)")
    ap.add_argument("--add-think-tokens", action="store_true", help="add missing <think> / </think> tokens")
    ap.add_argument("--context-length", type=int, help="context length (default: max_position_embeddings)")
    ap.add_argument("--check", action="store_true", help="compare the ONNX export(s) with PyTorch")
    ap.add_argument("--threads", type=int, default=2, help="torch threads for the export (default 2)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    try:
        manifest = import_model(args.source, args.out, args.id, args.int8, args.think_start, args.think_end,
                                args.add_think_tokens, args.context_length, args.check,
                                log=lambda m: print(m, file=sys.stderr))
    except ModelFolderError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    print(json.dumps({"id": manifest["id"], "folder": str(out), "parameters": manifest["parameters"],
                      "size_tier": manifest["size_tier"], "files": manifest["files"],
                      "import_timings": manifest["import_timings"], **({"import_checks": manifest["import_checks"]}
                                                                       if "import_checks" in manifest else {})}, indent=2))
    print(f"Node: {out} is served as '{manifest['id']}' when it is under MODELS_DIR (restart npm start).\n"
          f"Workers: npm run upload-model -- {out} --remote", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
