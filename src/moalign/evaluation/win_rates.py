"""Model-based comparison of policies (MOLMA §4.3, §4.5.1, Figures 2a and 3).

Every model answers the same test prompts greedily; every response is scored on every objective;
per prompt, model A wins an objective against model B when its reward is higher, a tie counts as
half (`metrics.win_rates`). Outputs in `out_dir`:

* `generations.jsonl` — one row per (model, prompt): the response and its scores;
* `results.json` — mean ± std reward per model and objective, win rates (win/tie/loss counts and
  `win_rate`) for every (A, B) pair and objective;
* `table.md` — the same as Markdown tables;
* `scatter.png` — per model, objective 1 vs objective 2 reward of each prompt (MOLMA Figure 3;
  written when there are at least two objectives).

A model is a `Policy`, a LoRA adapter folder (holding `adapter_config.json`), a training run folder
(holding `adapter/`, e.g. from `train_molma`), or a plain model id / folder (e.g. the reference
`smollm2-135m-instruct`). Adapters on the same base share one copy of the base weights.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
from peft import PeftModel

from moalign.core.config import load_yaml
from moalign.core.errors import ModelNotFoundError
from moalign.core.io import atomic_write_json, atomic_write_text, write_jsonl
from moalign.evaluation.metrics import win_rates
from moalign.models import Policy, load_adapter, load_policy, resolve_model
from moalign.rewards.reward_models import objective_scorers
from moalign.rewards.scorers import score_matrix
from moalign.rollout import sample
from moalign.runs.layout import UnitDir
from moalign.runs.plots import plot_reward_scatter
from moalign.sampling import Sampling


def _adapter_dir(spec: Path) -> Path | None:
    if (spec / "adapter_config.json").is_file():
        return spec
    if (UnitDir(spec).adapter / "adapter_config.json").is_file():
        return UnitDir(spec).adapter
    return None


def _base_of(adapter: Path, base: str | None) -> str:
    """The base model of an adapter: `base` if given, else the run's config.yaml `policy`, else
    the adapter's own `base_model_name_or_path`."""
    if base:
        return base
    run_cfg = UnitDir(adapter.parent).config
    if run_cfg.is_file():
        policy = (load_yaml(run_cfg) or {}).get("policy")
        if policy:
            return str(policy)
    meta = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    if not meta.get("base_model_name_or_path"):
        raise ModelNotFoundError(f"{adapter}: cannot tell the base model; pass base=...")
    return str(meta["base_model_name_or_path"])


class _Models:
    """Loads each base model once; adapters are attached to it under their model's name."""

    def __init__(self, base: str | None, device: str) -> None:
        self.base, self.device = base, device
        self.policies: dict[str, Policy] = {}  # resolved base path -> Policy
        # model name -> (Policy, adapter tag | "base" (adapters disabled) | None (as passed in))
        self.entries: dict[str, tuple[Policy, str | None]] = {}

    def _policy(self, name_or_path: str) -> Policy:
        key = resolve_model(name_or_path)
        if key not in self.policies:
            self.policies[key] = load_policy(name_or_path, device=self.device)
        return self.policies[key]

    def add(self, name: str, spec: Policy | str | Path) -> None:
        if isinstance(spec, Policy):
            self.entries[name] = (spec, None)
            return
        adapter = _adapter_dir(Path(str(spec)).expanduser())
        if adapter is None:
            self.entries[name] = (self._policy(str(spec)), "base")
            return
        policy = self._policy(_base_of(adapter, self.base))
        tag = "cmp_" + re.sub(r"[^0-9A-Za-z_]", "_", name)
        load_adapter(policy, adapter, tag)
        self.entries[name] = (policy, tag)

    def context(self, name: str) -> AbstractContextManager[object]:
        """Activate the entry's adapter, or disable adapters for a plain base model."""
        policy, tag = self.entries[name]
        if tag == "base":
            model = policy.model
            return model.disable_adapter() if isinstance(model, PeftModel) else nullcontext()
        if tag is not None:
            policy.model.set_adapter(tag)
        return nullcontext()


def generate(models: _Models, name: str, prompts: list[str], max_new_tokens: int,
             system: str | None, batch_size: int) -> list[str]:
    """Greedy responses of one model to every prompt."""
    policy, _ = models.entries[name]
    out: list[str] = []
    with models.context(name):
        for i in range(0, len(prompts), batch_size):
            r = sample(policy, prompts[i:i + batch_size], Sampling.greedy(max_new_tokens),
                       system=system)
            out.extend(r.responses)
    return out


def pairs_for(names: list[str], against: Sequence[str] | None) -> list[tuple[str, str]]:
    """(A, B) pairs: every model not in `against` versus every model in it; without `against`,
    the first model versus each other one."""
    if not against:
        return [(names[0], b) for b in names[1:]]
    unknown = sorted(set(against) - set(names))
    if unknown:
        raise ValueError(f"against names {unknown} are not among the models {names}")
    primary = [n for n in names if n not in against]
    return [(a, b) for a in primary for b in against]


def win_rate_table(scores: Mapping[str, np.ndarray], objectives: list[str],
                   pairs: list[tuple[str, str]], tol: float = 0.0) -> dict[str, Any]:
    """{"A vs B": {objective: win_rates(A_k, B_k)}} from per-model score matrices (N, K)."""
    return {f"{a} vs {b}": {o: win_rates(scores[a][:, k], scores[b][:, k], tol)
                            for k, o in enumerate(objectives)} for a, b in pairs}


def markdown(results: dict[str, Any]) -> str:
    """Markdown tables: mean ± std reward per model, and win rates per pair."""
    objs = results["objectives"]
    lines = [f"# Model comparison ({results['n_prompts']} prompts, greedy)", "",
             "| model | " + " | ".join(objs) + " |", "|---|" + "---|" * len(objs)]
    for m in results["models"]:
        cells = [f"{results['means'][m][o]:.4f} ± {results['stds'][m][o]:.4f}" for o in objs]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    if results["win_rates"]:
        lines += ["", "Win rate of A versus B (tie = half; win/tie/loss in brackets)", "",
                  "| A vs B | " + " | ".join(objs) + " |", "|---|" + "---|" * len(objs)]
        for pair, per in results["win_rates"].items():
            cells = [f"{per[o]['win_rate']:.3f} ({per[o]['win']}/{per[o]['tie']}/"
                     f"{per[o]['loss']})" for o in objs]
            lines.append(f"| {pair} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def compare(
    models: Mapping[str, Policy | str | Path], prompts: Sequence[str], objectives: Sequence[Any],
    out_dir: str | Path = "runs/compare", against: Sequence[str] | None = None,
    base: str | None = None, max_new_tokens: int = 64, system: str | None = None,
    device: str = "auto", batch_size: int = 8, tol: float = 0.0,
) -> dict[str, Any]:
    """Generate, score and compare; write the artifacts listed in the module docstring.

    `models`: name -> Policy, adapter folder, run folder, or model id. Returns the results dict
    (also `results.json`).
    """
    names, prompts = list(models), [str(p) for p in prompts]
    if not names or not prompts:
        raise ValueError("compare needs at least one model and one prompt")
    pairs = pairs_for(names, against)
    scorers = objective_scorers(list(objectives))
    objs = [s.name for s in scorers]
    loaded = _Models(base, device)
    for name, spec in models.items():
        loaded.add(name, spec)
    rows, scores = [], {}
    for name in names:
        responses = generate(loaded, name, prompts, max_new_tokens, system, batch_size)
        S = score_matrix(scorers, prompts, responses).double().numpy()  # (N, K)
        scores[name] = S
        rows += [{"model": name, "prompt_index": i, "prompt": p, "response": r,
                  **dict(zip(objs, map(float, s), strict=True))}
                 for i, (p, r, s) in enumerate(zip(prompts, responses, S, strict=True))]
    results = {
        "models": names, "objectives": objs, "n_prompts": len(prompts), "pairs": pairs,
        "means": {m: dict(zip(objs, scores[m].mean(0).tolist(), strict=True)) for m in names},
        "stds": {m: dict(zip(objs, scores[m].std(0).tolist(), strict=True)) for m in names},
        "win_rates": win_rate_table(scores, objs, pairs, tol),
    }
    out = Path(out_dir)
    write_jsonl(out / "generations.jsonl", rows)
    if len(objs) >= 2:
        plot_reward_scatter({m: scores[m][:, :2] for m in names}, objs[:2], out / "scatter.png")
    atomic_write_text(out / "table.md", markdown(results))
    atomic_write_json(out / "results.json", results)
    return results
