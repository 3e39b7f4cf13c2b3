"""Time a checkpoint's model.onnx export: torch.onnx's dynamo exporter (what every checkpoint ran before) against
writing the checkpoint's weights into its architecture's cached graph (softgrpo.onnx_template), in the same run.

    cd gpu-worker && OMP_NUM_THREADS=1 .venv/bin/python bench/bench_onnx_export.py [--model DIR] [--repeats 5]

The model (default ../models/tiny) is the folder's with every parameter moved by N(0, 0.02^2): a checkpoint the
graph was not exported from. Rows, each against the median of three full exports (the first of which also pays
the exporter's one-time set-up in the process):
  - cold: the first checkpoint of an architecture on a machine (one export of a random stand-in, mapping,
    onnxruntime verification, then the write), paid once per config.json and torch/onnx version;
  - disk: the first checkpoint in a new process (template read from disk, verified again, written);
  - warm: every later checkpoint of a run (template in memory).
Every written file is checked against PyTorch (prefill + decode through onnxruntime); the max |logits diff| is
printed. Templates go to a fresh temporary folder, so "cold" is cold. Prints a table and appends its rows to
bench/results-onnx-export.md.
"""
import argparse
import datetime
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import onnx
import onnxruntime
import onnxscript
import torch

HERE = Path(__file__).resolve().parent
os.environ["SOFTGRPO_ONNX_CACHE"] = tempfile.mkdtemp(prefix="onnx-templates-")  # before softgrpo reads it

from softgrpo import onnx_template  # noqa: E402
from softgrpo.export_onnx import compare_with_onnxruntime, export  # noqa: E402
from softgrpo.model import SoftTokenLM  # noqa: E402


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(HERE.parents[1] / "models" / "tiny"))
    ap.add_argument("--repeats", type=int, default=5, help="warm and disk runs (the full export runs 3 times)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--results", default=str(HERE / "results-onnx-export.md"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = SoftTokenLM.from_pretrained(args.model)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)
    n_params = model.num_parameters()
    out = Path(tempfile.mkdtemp(prefix="onnx-bench-"))
    errors = {}

    def run(kind: str, full: bool = False):
        path = export(model, out / f"{kind}.onnx", full=full)
        errors[kind] = max(errors.get(kind, 0.0), compare_with_onnxruntime(model, path)["logits"])

    full = [timed(lambda: run("full", full=True)) for _ in range(3)]
    cold = timed(lambda: run("cold"))
    warm = [timed(lambda: run("warm")) for _ in range(args.repeats)]
    disk = []
    for _ in range(args.repeats):
        onnx_template._TEMPLATES.clear()  # as a new process sees it: only the disk cache
        disk.append(timed(lambda: run("disk")))

    base = statistics.median(full)
    rows = [("full export (torch.onnx dynamo), per checkpoint", base, base, "full"),
            ("fast, cold: first checkpoint of an architecture", base, cold, "cold"),
            ("fast, template on disk: first checkpoint of a process", base, statistics.median(disk), "disk"),
            ("fast, template in memory: every later checkpoint", base, statistics.median(warm), "warm")]
    machine = f"{cpu_name()}, {args.threads} torch thread(s), {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    versions = (f"torch {torch.__version__}, onnx {onnx.__version__}, onnxscript {onnxscript.__version__}, "
                f"onnxruntime {onnxruntime.__version__}")
    what_model = f"{Path(args.model).name} ({n_params / 1e6:.2f}M params), perturbed"
    print(f"\n{what_model}; {machine}; {versions}")
    print(f"full export runs: {', '.join(f'{t:.2f}' for t in full)} s")
    print(f"{'what':<56} {'baseline s':>10} {'ours s':>9} {'ratio':>8} {'max|dlogits|':>13}")
    for what, b, ours, kind in rows:
        print(f"{what:<56} {b:>10.3f} {ours:>9.3f} {b / ours:>8.1f} {errors[kind]:>13.1e}")

    path = Path(args.results)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    new = not path.exists()
    with path.open("a") as f:
        if new:
            f.write("# ONNX export per checkpoint: full exporter vs cached graph (bench/bench_onnx_export.py)\n\n"
                    "| date | model | what | baseline s | ours s | ratio | max abs logits diff | machine | versions |\n"
                    "|---|---|---|---|---|---|---|---|---|\n")
        for what, b, ours, kind in rows:
            f.write(f"| {date} | {what_model} | {what} | {b:.3f} | {ours:.3f} | {b / ours:.1f} | "
                    f"{errors[kind]:.1e} | {machine} | {versions} |\n")
    print(f"appended {len(rows)} rows to {path}")


if __name__ == "__main__":
    main()
