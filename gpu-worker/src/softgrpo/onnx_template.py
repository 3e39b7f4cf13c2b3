"""ONNX graph templates: run the exporter once per architecture, then only write each checkpoint's weights.

A fine-tuned model has its base model's graph; only the weights differ. torch.onnx's dynamo exporter takes 20-60 s
even for the 0.85M-parameter tiny model, so `export_with_template` exports a stand-in model of the same config.json
once, learns which ONNX initializer holds which parameter, and then writes any model of that config by copying its
tensors into those initializers.

The exporter renames tensors (`model.model.norm.weight`, `val_123`), stores Linear weights transposed for MatMul,
shares tied ones and folds what it can into constants, so the mapping is learned by value, never by name:
  1. every parameter entry of the stand-in model A is random, so no two parameters, nor a parameter and a
     transpose, are equal. A float initializer equal to exactly one parameter (or its transpose) maps to it; every
     parameter must be mapped by at least one initializer.
  2. the graph with a second random model B written into it must equal PyTorch on B through onnxruntime (prefill +
     decode). An unmapped initializer that depended on the weights (a folded product, a scaled copy) would keep A's
     values and fail this check; the unmapped ones that pass (RoPE frequencies, eps, shape constants) depend on
     config.json alone.
A graph failing either step raises TemplateUnavailable with the reason (export_onnx.export logs it and runs the full
exporter). Templates are kept in-process and on disk under $SOFTGRPO_ONNX_CACHE (default
$XDG_CACHE_HOME/softgrpo/onnx-templates), keyed by a hash of config.json, the graph version (export_onnx.GRAPH_VERSION:
a version 1 graph, with present.* outputs, is never reused for version 2), the torch / onnx / onnxscript versions, the
opset and the source of model.py and export_onnx.py, so changed model code or a new exporter never reuses an old
graph. A template read from disk goes through step 2 again before its first use in a process (onnxruntime vs
PyTorch on the logits and on the graph's new keys/values, export_onnx.check_with_onnxruntime).
"""

import hashlib
import json
import logging
import os
import shutil
import tempfile
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxscript
import torch
from onnx import numpy_helper

from softgrpo import export_onnx
from softgrpo import model as model_module
from softgrpo.model import SoftTokenLM

FORMAT = "softgrpo-onnx-template/2"  # /2: graph version 2 (new.* outputs)
# max |logits or new keys/values diff|, onnxruntime vs PyTorch on model B; a stale weight moves logits ~1e-2
VERIFY_TOLERANCE = 1e-4
EXTERNAL_MIN_BYTES = 1024  # in a big model's file, smaller tensors stay inline (as onnx's own default)
log = logging.getLogger(__name__)


class TemplateUnavailable(RuntimeError):
    """No verified graph for this model; the message says why."""


@dataclass
class OnnxTemplate:
    """graph: the exported model with the mapped initializers emptied; weights: initializer name -> (parameter name,
    stored transposed); shapes: parameter name -> shape, of every parameter the graph needs."""
    key: str
    graph: onnx.ModelProto
    weights: dict[str, tuple[str, bool]]
    shapes: dict[str, list[int]]


_TEMPLATES: dict[str, OnnxTemplate | TemplateUnavailable] = {}  # key -> template, or why there is none


# the source this process runs (read once: a file edited after import must not label graphs of the old code)
_CODE_SHA256 = hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in (model_module, export_onnx))).hexdigest()


def template_key(config: dict) -> str:
    """Hash of everything the exported graph depends on besides the weights."""
    return hashlib.sha256(json.dumps({
        "format": FORMAT, "graph_version": export_onnx.GRAPH_VERSION, "config": config, "opset": export_onnx.OPSET,
        "code": _CODE_SHA256,
        "torch": torch.__version__, "onnx": onnx.__version__, "onnxscript": onnxscript.__version__,
    }, sort_keys=True).encode()).hexdigest()[:32]


def cache_dir() -> Path:
    root = os.environ.get("SOFTGRPO_ONNX_CACHE")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "softgrpo" / "onnx-templates"


def random_stand_in(config: dict, seed: int) -> SoftTokenLM:
    """A float32 CPU model of `config` with every entry random: matrices N(0, 0.02^2), norm weights 1 + N(0, 0.1^2),
    biases N(0, 0.1^2) (fixed scales, not initializer_range: logits of order 0.1 whatever the config, so
    VERIFY_TOLERANCE means the same everywhere). Drawn from its own generator (the caller's RNG is not touched)."""
    with torch.random.fork_rng(devices=[]):  # nn.Linear's default init draws from the global RNG
        model = SoftTokenLM(config)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():  # a tied lm_head is listed once, under model.embed_tokens
            noise = torch.randn(p.shape, generator=g)
            p.copy_(noise * 0.02 if p.dim() > 1 else (1.0 if "norm" in name else 0.0) + 0.1 * noise)
    return model.eval()


def _fingerprint(a: np.ndarray) -> tuple:
    return a.shape, hashlib.blake2b(np.ascontiguousarray(a).tobytes(), digest_size=16).digest()


def map_initializers(graph: onnx.ModelProto, model: SoftTokenLM) -> dict[str, tuple[str, bool]]:
    """{initializer name: (parameter name, transposed)} by exact value; raise TemplateUnavailable when a value matches
    several parameters or a parameter is in no initializer (the exporter folded it into something else)."""
    candidates: dict[tuple, list[tuple[str, bool]]] = {}
    params = {name: p.detach().numpy() for name, p in model.named_parameters()}
    for name, p in params.items():
        candidates.setdefault(_fingerprint(p), []).append((name, False))
        if p.ndim == 2:
            candidates.setdefault(_fingerprint(p.T), []).append((name, True))
    mapping = {}
    for init in graph.graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        value = numpy_helper.to_array(init)
        found = [(n, t) for n, t in candidates.get(_fingerprint(value), [])
                 if np.array_equal(value, params[n].T if t else params[n])]
        if len(found) > 1:
            raise TemplateUnavailable(f"initializer {init.name} equals several parameters: {found}")
        if found:
            mapping[init.name] = found[0]
    missing = sorted(set(params) - {name for name, _ in mapping.values()})
    if missing:
        raise TemplateUnavailable(f"parameter(s) {missing[:3]} appear in no initializer of the exported graph "
                                  "(folded into another constant?)")
    return mapping


def _emptied(graph: onnx.ModelProto, weights: dict) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(graph)
    for init in out.graph.initializer:
        if init.name in weights:
            init.ClearField("raw_data")
            init.ClearField("float_data")
    return out


def write_model(template: OnnxTemplate, model: SoftTokenLM, out_path: str | Path) -> Path:
    """Write template's graph with `model`'s weights (any dtype or device, cast to float32) to out_path, the weights
    in out_path + '.data' when they exceed export_onnx.BIG_MODEL_BYTES (as export_full does)."""
    params = dict(model.named_parameters())
    shapes = {name: list(p.shape) for name, p in params.items()}
    if shapes != template.shapes:
        differ = sorted(n for n in shapes.keys() | template.shapes.keys() if shapes.get(n) != template.shapes.get(n))
        raise TemplateUnavailable(f"the model's parameters differ from the graph's: {differ[:3]}")
    out_path = Path(out_path)
    big = sum(p.numel() for p in params.values()) * 4 > export_onnx.BIG_MODEL_BYTES
    data_path = out_path.with_name(out_path.name + ".data")
    proto = onnx.ModelProto()
    proto.CopyFrom(template.graph)
    with open(data_path, "wb") if big else nullcontext() as data:
        for init in proto.graph.initializer:
            if init.name not in template.weights:
                continue
            name, transposed = template.weights[init.name]
            value = params[name].detach().to("cpu", torch.float32).numpy()
            raw = np.ascontiguousarray(value.T if transposed else value).astype("<f4", copy=False).tobytes()
            if big and len(raw) >= EXTERNAL_MIN_BYTES:  # streamed: the weights are never all in memory at once
                del init.external_data[:]
                for k, v in (("location", data_path.name), ("offset", data.tell()), ("length", len(raw))):
                    init.external_data.add(key=k, value=str(v))
                init.data_location = onnx.TensorProto.EXTERNAL
                data.write(raw)
            else:
                init.raw_data = raw
    onnx.save_model(proto, str(out_path))
    return out_path


def verify(template: OnnxTemplate, config: dict) -> None:
    """Step 2: the graph has the outputs of export_onnx.GRAPH_VERSION and, with a fresh random model's weights, equals
    PyTorch on that model (logits and new keys/values), else TemplateUnavailable."""
    outputs = [o.name for o in template.graph.graph.output]
    if outputs != export_onnx.output_names(len(outputs) // 2):
        raise TemplateUnavailable(f"the graph's outputs {outputs[:3]}... are not those of graph version "
                                  f"{export_onnx.GRAPH_VERSION}")
    model = random_stand_in(config, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_model(template, model, Path(tmp) / "model.onnx")
        err = export_onnx.check_with_onnxruntime(model, path)
    if not err <= VERIFY_TOLERANCE:  # NaN fails too
        raise TemplateUnavailable(f"with other weights written in, the graph differs from PyTorch by {err:.2e} "
                                  f"(> {VERIFY_TOLERANCE:g}): some constant of it depends on the weights")


def build_template(config: dict) -> OnnxTemplate:
    """Export a random stand-in of `config` (the slow step), map its initializers and verify the mapping."""
    stand_in = random_stand_in(config, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        graph = onnx.load(str(export_onnx.export_full(stand_in, Path(tmp) / "model.onnx")))
    weights = map_initializers(graph, stand_in)
    shapes = {name: list(p.shape) for name, p in stand_in.named_parameters()}
    template = OnnxTemplate(template_key(config), _emptied(graph, weights), weights, shapes)
    verify(template, config)
    return template


def _save_to_disk(template: OnnxTemplate, config: dict) -> None:
    """Write <cache>/<key>/{graph.onnx, template.json} under a temporary name, renamed into place (a reader never
    sees half a template; of two processes racing, the first rename wins)."""
    final = cache_dir() / template.key
    tmp = final.with_name(f"{template.key}.tmp-{os.getpid()}")
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        onnx.save_model(template.graph, str(tmp / "graph.onnx"))
        meta = {"format": FORMAT, "graph_version": export_onnx.GRAPH_VERSION, "config": config,
                "torch": torch.__version__, "onnx": onnx.__version__, "weights": template.weights,
                "shapes": template.shapes}
        (tmp / "template.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        tmp.rename(final)
    except OSError as err:
        log.warning("ONNX template %s not cached on disk (%s); it stays cached in this process", template.key, err)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _load_from_disk(key: str, config: dict) -> OnnxTemplate | None:
    """The cached template of `key`, verified again; None (and the entry removed) when absent or unusable."""
    folder = cache_dir() / key
    if not (folder / "template.json").is_file():
        return None
    try:
        meta = json.loads((folder / "template.json").read_text())
        if meta.get("graph_version") != export_onnx.GRAPH_VERSION:
            raise TemplateUnavailable(f"graph version {meta.get('graph_version', 1)}, not {export_onnx.GRAPH_VERSION}")
        weights = {init: (name, bool(t)) for init, (name, t) in meta["weights"].items()}
        template = OnnxTemplate(key, onnx.load(str(folder / "graph.onnx")), weights, meta["shapes"])
        verify(template, config)
        return template
    except Exception as err:  # noqa: BLE001 -- any unreadable or failing entry costs one export, never a wrong graph
        log.warning("ONNX template cache %s unusable (%s); exporting the graph again", folder, err)
        shutil.rmtree(folder, ignore_errors=True)
        return None


def get_template(config: dict) -> OnnxTemplate:
    """The verified template of `config`: from this process, from disk, or built (and saved) now."""
    key = template_key(config)
    if key not in _TEMPLATES:
        template = _load_from_disk(key, config)
        if template is None:
            log.info("ONNX template %s: exporting the graph of this architecture (once)", key)
            try:
                template = build_template(config)
                _save_to_disk(template, config)
            except TemplateUnavailable as reason:
                template = reason  # remembered: later checkpoints go straight to the full exporter
        _TEMPLATES[key] = template
    found = _TEMPLATES[key]
    if isinstance(found, TemplateUnavailable):
        raise TemplateUnavailable(str(found))
    return found


def export_with_template(model: SoftTokenLM, out_path: str | Path) -> Path:
    """Write model.onnx of `model` from its architecture's template; TemplateUnavailable when there is none."""
    if type(model) is not SoftTokenLM:
        raise TemplateUnavailable(f"{type(model).__name__} is not a plain SoftTokenLM (merge LoRA first)")
    return write_model(get_template(model.config_dict), model, out_path)
