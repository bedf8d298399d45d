"""`moalign train-joint`'s configuration (MOLMA §3.3, §4.3) and its prompt mix: which prompts a
MOLMA / SO run trains on and which it holds out (a deterministic split per source).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from moalign.core.config import require, require_each
from moalign.core.naming import check_objectives
from moalign.data import deterministic_split, load_prompts, mix_prompts

MODES = ("molma", "so", "so_weighted", "so_piecewise")


def _default_prompts() -> list[Any]:
    return [{"name": "help_safety_prompts", "where": {"kind": "help"}},
            {"name": "help_safety_prompts", "where": {"kind": "safety"}}]


@dataclass
class MolmaConfig:
    """`moalign train-joint`: MOLMA (vector reward, APA, per-objective critics, Aligned-MTL) or an
    SO baseline trained by the same loop."""

    RENAMED: ClassVar[dict[str, str]] = {"task_weights": "weights"}  # old names still load

    policy: str = "smollm2-135m-instruct"  # bundled id, local folder or HF id (causal LM)
    objectives: list[Any] = field(default_factory=lambda: ["helpfulness", "safety"])
    mode: Literal["molma", "so", "so_weighted", "so_piecewise"] = "molma"
    combiner: Literal["aligned_mtl", "weighted_sum", "pcgrad"] = "aligned_mtl"
    weights: list[float] | None = None  # objective weights ω (K,) of Aligned-MTL; default 1s
    so_objective: str | None = None  # mode=so: the objective to train (default: the first)
    help_objective: str = "helpfulness"  # so_piecewise: r_help
    safe_objective: str = "safety"  # so_piecewise: r_safe
    delta: float = 0.5  # so_piecewise threshold δ on the raw safety score
    prompts: list[Any] = field(default_factory=_default_prompts)  # load_prompts sources
    proportions: list[float] = field(default_factory=lambda: [0.6, 0.4])  # mix (MOLMA: 60/40)
    test_fraction: float = 0.15  # share of every source held out (never trained on)
    system: str | None = None
    iterations: int = 100  # APA iterations (paper: 100)
    memory: int = 64  # rollouts per iteration (experience memory)
    minibatch: int = 8  # rollouts per optimiser step
    epochs: int = 1  # passes over the memory per iteration (paper: one step per minibatch)
    max_new_tokens: int = 64
    max_prompt_tokens: int = 256
    temperature: float = 1.0
    beta: float = 0.01  # per-token KL coefficient (Eq. 3.3)
    logit_eps: float = 1e-4  # LOGIT clip (Eq. 3.4)
    gamma: float = 1.0  # GAE discount
    gae_lambda: float = 0.95
    apa_lambda: float = 0.95  # APA λ (Eq. 3.5; APA's code: 1/λ = adv_coeff_sq)
    value_coef: float = 1.0  # L_k = L_APA,k + value_coef·L_V,k (Eq. 3.7: 1)
    value_clip: float | None = None  # optional PPO-style value clipping
    critic: Literal["lora", "head"] = "lora"
    # what trains: `lora` = a LoRA adapter on the policy (reference and critic share the base
    # weights, no extra copy); `full` = every policy weight, as MOLMA §4.1 does (a second, frozen
    # copy of the model is π0 and the critic's trunk, with the value LoRA / heads on it)
    finetune: Literal["lora", "full"] = "lora"
    lr: float = 1e-6
    weight_decay: float = 0.1
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    eps: float = 1e-5
    grad_clip: float = 1.0
    lora_r: int = 8
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    save_every: int = 10  # checkpoint period in iterations (0: only at the end)
    keep_checkpoints: int = 2  # numbered checkpoints kept (checkpoint-<step>/, newest last)
    seed: int = 0
    out_dir: str = "runs/molma"
    loggers: list[str] = field(default_factory=list)  # extra: tensorboard, wandb, mlflow
    device: str = "auto"
    progress: bool = True

    def validate(self) -> None:
        check_objectives(self.objectives, "helpfulness,safety")
        require(len(self.prompts) == len(self.proportions), f"{len(self.prompts)} prompt sources "
                f"but {len(self.proportions)} proportions; give one proportion per source")
        require_each(self, ("iterations", "memory", "minibatch", "epochs", "max_new_tokens",
                            "lora_r"), lambda v: v >= 1, ">= 1")
        require(self.memory >= self.minibatch, f"memory ({self.memory}) must be >= minibatch "
                f"({self.minibatch})")
        require_each(self, ("lr", "apa_lambda", "grad_clip", "temperature", "eps"),
                     lambda v: math.isfinite(v) and v > 0, "a finite number > 0")
        require(0.0 < self.logit_eps < 0.5, "logit_eps must be in (0, 0.5)")
        require(0.0 <= self.test_fraction < 1.0, "test_fraction must be in [0, 1)")
        require(len(self.betas) == 2, f"betas needs two numbers, got {self.betas}")
        require(self.beta >= 0 and self.value_coef >= 0, "beta and value_coef must be >= 0")
        if self.weights is not None and self.mode == "molma":
            require(len(self.weights) == len(self.objectives), f"weights has "
                    f"{len(self.weights)} entries for {len(self.objectives)} objectives")
        require(self.save_every >= 0, "save_every must be >= 0")
        require(self.keep_checkpoints >= 1, f"keep_checkpoints must be >= 1 (the newest "
                f"checkpoint is always kept), got {self.keep_checkpoints}")


# ----------------------------------------------------------------------------- prompts


def prompt_splits(cfg: MolmaConfig) -> tuple[list[list[str]], list[list[str]]]:
    """Per source: (training prompts, held-out prompts); the split is deterministic (seed 0)."""
    train, test = [], []
    for spec in cfg.prompts:
        prompts = load_prompts(spec)
        if cfg.test_fraction > 0 and len(prompts) > 1:
            tr, te = deterministic_split(prompts, (1 - cfg.test_fraction, cfg.test_fraction), 0)
        else:
            tr, te = list(prompts), []
        train.append(tr)
        test.append(te)
    return train, test


def held_out_prompts(cfg: MolmaConfig, n: int, seed: int = 0) -> list[str]:
    """Up to `n` distinct held-out prompts (never trained on), mixed in the configured
    proportions while every source lasts; fewer if fewer are held out."""
    _, test = prompt_splits(cfg)
    sources = [(t, p) for t, p in zip(test, cfg.proportions, strict=True) if t]
    require(bool(sources), "no held-out prompts: set test_fraction > 0")
    mixed = list(dict.fromkeys(mix_prompts(sources, n, seed=seed)))  # drop cycled repeats
    rest = [p for t in test for p in t if p not in set(mixed)]
    return (mixed + rest)[:n]
