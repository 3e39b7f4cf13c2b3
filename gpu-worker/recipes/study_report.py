"""Tables and plots of a finished study for recipes/study.py (not a script of its own).

Writes into the report folder:
    study.md                     one markdown table per test metric (mean ± sample std over seeds per arm, and the
                                 base model), final validation Pass@1, wall time per run, the plots
    study.json                   the same numbers, with every seed's value
    validation_pass_at_1.png     validation Pass@1 vs step per arm: mean over seeds, thin lines per seed
    train_reward.png             training reward vs step (trailing moving average), same layout
    pass_at_k.png                test Pass@k (k = 1, 2, 4, ... <= samples) per arm, soft and discrete inference
"""
from __future__ import annotations

import datetime
import json
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import torch  # noqa: E402

METRICS = {"pass@1": "Pass@1", "pass@8": "Pass@8", "pass@32": "Pass@32", "maj@8": "Majority@8",
           "maj@32": "Majority@32", "thinking_length": "Mean thinking length (steps)"}
MODE_TITLES = {"soft": "soft thinking", "discrete": "discrete tokens"}


def stats(values: list[float]) -> dict:
    """mean, sample std (0 for one value), n and the values themselves."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values), "values": values}


def cell(s: dict | None, digits: int) -> str:
    if s is None:
        return "-"
    text = f"{s['mean']:.{digits}f}"
    return text + (f" ± {s['std']:.{digits}f}" if s["n"] > 1 else "")


def aggregate(arms: list[str], runs: list[dict], base: dict) -> dict:
    """{"test": {model: {mode: {metric: stats}}}, "validation": {arm: stats of the final validation Pass@1}}."""
    test = {"base": {mode: {m: stats([v]) for m, v in ev["metrics"].items()} for mode, ev in base.items()}}
    validation = {}
    for arm in arms:
        mine = [r for r in runs if r["arm"] == arm]
        test[arm] = {mode: {m: stats([r["test"][mode]["metrics"][m] for r in mine])
                            for m in mine[0]["test"][mode]["metrics"]} for mode in base}
        finals = [[e for e in r["events"] if e["type"] == "eval"] for r in mine]
        if all(finals):
            validation[arm] = stats([f[-1]["pass_at_1"] for f in finals])
    return {"test": test, "validation": validation}


def markdown(meta: dict, arms: list[str], runs: list[dict], numbers: dict) -> str:
    modes = list(next(iter(numbers["test"].values())))
    first = runs[0]["test"][modes[0]]["settings"]
    lines = ["# Study: fine-tuning methods on the tiny model", "",
             f"Written by `gpu-worker/recipes/study.py` on {datetime.date.today()} (torch {torch.__version__}, "
             f"{torch.get_num_threads()} thread(s)). Seeds {meta['seeds']}; common hyperparameters "
             f"`{json.dumps(meta['hyperparameters'])}`, overrides `{json.dumps(meta['overrides'])}`; the rest come "
             "from the model manifest.", ""]
    for arm in meta["arms"]:
        lines.append(f"- **{arm['name']}**: method {arm['method']}, `{json.dumps(arm.get('hyperparameters', {}))}`")
    chosen = "chosen on the validation split" if meta["chosen_on_validation"] else "NOT chosen on the validation split"
    lines += ["", f"Per-arm settings: {meta['source']} ({chosen}).", "",
              f"Test split: first {first['n_problems']} problems x {first['n_samples']} samples, seed {first['seed']}"
              " for every model (common random numbers). Pass@k is the unbiased estimator 1 - C(n-c,k)/C(n,k); "
              "majority@k votes over the last \\boxed{} answers of disjoint blocks of k samples. "
              "Cells: mean ± sample std over seeds (one value: no ±). Validation Pass@1 (curves, final table) is "
              "train()'s eval, in each arm's own training rollout mode.", ""]
    for metric, title in METRICS.items():
        if metric not in numbers["test"]["base"][modes[0]]:
            continue
        digits = 1 if metric == "thinking_length" else 4
        lines += [f"## {title} (test)", "", "| model | " + " | ".join(MODE_TITLES[m] for m in modes) + " |",
                  "|---" * (len(modes) + 1) + "|"]
        for model in ["base", *arms]:
            lines.append(f"| {model} | " + " | ".join(cell(numbers["test"][model][m].get(metric), digits)
                                                     for m in modes) + " |")
        lines.append("")
    lines += ["## Final validation Pass@1", "", "| arm | Pass@1 |", "|---|---|"]
    lines += [f"| {arm} | {cell(numbers['validation'].get(arm), 4)} |" for arm in arms]
    lines += ["", "## Wall time per run", "", "| arm | seed | train (s) | " +
              " | ".join(f"test eval, {MODE_TITLES[m]} (s)" for m in modes) + " |", "|---" * (len(modes) + 3) + "|"]
    lines += [f"| {r['arm']} | {r['seed']} | {r['result']['train_seconds']:.0f} | " +
              " | ".join(f"{r['test'][m]['seconds']:.0f}" for m in modes) + " |" for r in runs]
    lines += ["", "![validation Pass@1](validation_pass_at_1.png)", "", "![training reward](train_reward.png)", "",
              "![test Pass@k](pass_at_k.png)", ""]
    return "\n".join(lines)


def moving_average(values: list[float], window: int) -> list[float]:
    return [statistics.fmean(values[max(0, i + 1 - window):i + 1]) for i in range(len(values))]


def curve_plot(path: Path, arms: list[str], runs: list[dict], event_type: str, key: str, ylabel: str,
               window: int = 1) -> None:
    """key vs step of `event_type` events per arm: a thin line per seed, the mean over seeds thick."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, arm in enumerate(arms):
        color = f"C{i}"
        curves = []
        for r in (r for r in runs if r["arm"] == arm):
            events = [e for e in r["events"] if e["type"] == event_type and e.get(key) is not None]
            steps, values = [e["step"] for e in events], moving_average([e[key] for e in events], window)
            ax.plot(steps, values, color=color, lw=0.7, alpha=0.35)
            curves.append(dict(zip(steps, values)))
        common = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
        ax.plot(common, [statistics.fmean(c[s] for c in curves) for s in common], color=color, lw=2, label=arm)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def pass_at_k_plot(path: Path, arms: list[str], numbers: dict) -> None:
    modes = list(numbers["test"]["base"])
    fig, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 4.5), sharey=True, squeeze=False)
    for ax, mode in zip(axes[0], modes):
        for i, model in enumerate(["base", *arms]):
            found = {int(m[5:]): s for m, s in numbers["test"][model][mode].items() if m.startswith("pass@")}
            ks = sorted(found)
            style = {"color": "black", "ls": "--"} if model == "base" else {"color": f"C{i - 1}"}
            ax.errorbar(ks, [found[k]["mean"] for k in ks], yerr=[found[k]["std"] for k in ks], marker="o",
                        capsize=3, label=model, **style)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("k")
        ax.set_title(f"test Pass@k, {MODE_TITLES[mode]} inference")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("Pass@k (mean ± std over seeds)")
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(folder: Path, meta: dict, arms: list[str], runs: list[dict], base: dict) -> dict:
    """Write study.md, study.json and the PNGs into folder; returns the study.json content plus "markdown"."""
    folder.mkdir(parents=True, exist_ok=True)
    numbers = aggregate(arms, runs, base)
    n_steps = max((e["step"] for r in runs for e in r["events"] if e["type"] == "metrics"), default=1)
    curve_plot(folder / "validation_pass_at_1.png", arms, runs, "eval", "pass_at_1", "validation Pass@1")
    window = max(1, min(10, n_steps // 10))
    curve_plot(folder / "train_reward.png", arms, runs, "metrics", "reward_mean",
               f"training reward (moving average of {window})", window)
    pass_at_k_plot(folder / "pass_at_k.png", arms, numbers)
    text = markdown(meta, arms, runs, numbers)
    (folder / "study.md").write_text(text)
    summary = {"meta": meta, **numbers,
               "runs": [{"arm": r["arm"], "seed": r["seed"], "train_seconds": r["result"]["train_seconds"],
                         "test_eval_seconds": {m: t["seconds"] for m, t in r["test"].items()}} for r in runs]}
    (folder / "study.json").write_text(json.dumps(summary, indent=1))
    return {**summary, "markdown": text}
