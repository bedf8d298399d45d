"""Importable test helpers: deterministic python-kind objectives and tiny models/ensembles on disk.

Scorer functions live in an importable module (not a test file) so that Ray workers and
`accelerate launch` processes can import them by dotted path (`helpers_objectives:length_score`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def length_score(prompts: list[str], responses: list[str]) -> list[float]:
    """Longer responses score higher, saturating at 40 characters (in [0, 1])."""
    return [min(len(r), 40) / 40.0 for r in responses]


def vowel_score(prompts: list[str], responses: list[str]) -> list[float]:
    """Fraction of vowels among the response's letters (0 for an empty response)."""
    out = []
    for r in responses:
        letters = [c for c in r.lower() if c.isalpha()]
        out.append(sum(c in "aeiou" for c in letters) / len(letters) if letters else 0.0)
    return out


def words_score(prompts: list[str], responses: list[str]) -> list[float]:
    """Number of whitespace-separated words, saturating at 8 (in [0, 1])."""
    return [min(len(r.split()), 8) / 8.0 for r in responses]


def objective(name: str) -> dict[str, Any]:
    """A python-kind scorer spec for `length`, `vowel` or `words`, importable in any worker."""
    fn = {"length": "length_score", "vowel": "vowel_score", "words": "words_score"}[name]
    return {"kind": "python", "function": f"helpers_objectives:{fn}", "name": name}


PROMPTS = [
    "I feel stressed about work lately.", "My sister and I keep arguing.",
    "I can't sleep at night.", "I don't know if I should change jobs.",
    "Everyone expects too much from me.", "I feel lonely since I moved.",
    "My exams are coming and I panic.", "I want to drink less but it's hard.",
    "My partner never listens to me.", "I am tired all the time.",
    "I worry about money constantly.", "I think my friends avoid me.",
]


def write_prompts(path: str | Path, prompts: list[str] | None = None) -> Path:
    """Write a JSONL prompt file (`prompt` column) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = prompts or PROMPTS
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in rows), encoding="utf-8")
    return path


def save_tiny_base(folder: str | Path, seed: int = 0) -> Path:
    """Save `moalign.models.tiny_causal_lm(seed)` (model + tokenizer) as a local model folder."""
    from moalign.models import tiny_causal_lm

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        policy = tiny_causal_lm(seed)
        policy.model.save_pretrained(folder)
        policy.tokenizer.save_pretrained(folder)
    return folder


def make_tiny_ensemble(run_dir: str | Path, names: tuple[str, ...] = ("length", "vowel"),
                       seed: int = 0, best_weights: dict[str, float] | None = None) -> Path:
    """A run directory with `ensemble.json`: a tiny base plus one random LoRA adapter per name.

    LoRA B matrices are randomised (PEFT initialises them to zero) so every expert really
    changes the output and different weights give different generations.
    """
    import torch

    from moalign.emorl.manifest import EnsembleManifest
    from moalign.models import attach_lora, load_policy, save_adapter

    run_dir = Path(run_dir)
    base = save_tiny_base(run_dir / "base", seed)
    experts = {}
    for i, name in enumerate(names):
        policy = load_policy(str(base), device="cpu")
        attach_lora(policy, name)
        gen = torch.Generator().manual_seed(1000 * seed + i)
        with torch.no_grad():
            for pname, p in policy.model.named_parameters():
                if "lora_" in pname:
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        save_adapter(policy, name, run_dir / "experts" / name / "adapter")
        experts[name] = f"experts/{name}/adapter"
    EnsembleManifest(base=str(base), experts=experts, best_weights=best_weights).save(run_dir)
    return run_dir


def tiny_study_overrides(base: Path, prompts: Path, out: Path) -> dict[str, Any]:
    """`StudyConfig` overrides for a whole EMORL study on the tiny base in seconds."""
    p = str(prompts)
    return {
        "policy": {"name": str(base), "device": "cpu"},
        "objectives": [objective("length"), objective("vowel")],
        "data": {"train": p, "val": p, "test": p},
        "training": {"n_samples": 2, "max_new_tokens": 4, "batch_size": 2, "val_every": 1,
                     "val_batch": 2, "max_steps": 2, "window": 5, "save_every": 1,
                     "lr": 0.05, "progress": False},
        "training_seeds": [0],
        "search": {"iterations": 1, "n_prompts": 2, "max_new_tokens": 4},
        # two evaluation seeds decode the models of the one training seed, one run each
        "evaluation": {"seeds": [0, 1], "runs": 1, "test_prompts": 2, "max_new_tokens": 4},
        "logits_space": "probs",
        "out_dir": str(out),
    }


def toy_evaluator(offset: float = 0.0) -> Any:
    """A picklable search evaluator factory: score = sum of the point + offset, pid in extra."""
    import os

    from moalign.algorithms.grid_search import EvalResult

    def evaluate(points: list[tuple[float, ...]]) -> list[Any]:
        return [EvalResult(tuple(p), float(sum(p)) + offset, {"sum": float(sum(p))},
                           {"pid": os.getpid()}) for p in points]

    return evaluate


def pid_job(x: int) -> tuple[int, int]:
    """(x, the process id that ran it): tells a Ray task from a call in the test process."""
    import os

    return x, os.getpid()


def failing_job(x: int) -> int:
    """A job that fails for x == 1 (error-path tests of `moalign.scale.ray_jobs.fan_out`)."""
    if x == 1:
        raise ValueError(f"bad input {x}")
    return x
