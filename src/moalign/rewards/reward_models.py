"""Bradley-Terry reward models (MOLMA §3.2, Eq. 3.2; accuracy as in §4.2).

A reward model is `heads.ScalarHeadModel`: a backbone with its LM head replaced by a linear head
that outputs one number r(x, y). Backbones: an encoder such as the bundled MiniLM (the (prompt,
response) pair is cross-encoded and mean pooled) or a causal LM such as the policy itself
(last-token state of the chat-formatted conversation). Training minimises the ranking loss

    loss = −log σ(r(x, y_c) − r(x, y_r))                                   (MOLMA Eq. 3.2)

on (prompt, chosen, rejected) pairs and reports pairwise accuracy (r_c > r_r, a tie counts half)
on a deterministic held-out split of whole prompts.

`train` picks what learns:

* ``head`` (default): the backbone is frozen, so pooled states are computed once and the head is
  fitted full-batch on them (deterministic, seconds on a CPU). This is how the embedded
  `helpfulness` / `safety` reward models are built (MiniLM + linear head).
* ``lora``: a LoRA adapter on the backbone plus the head, minibatch AdamW (the paper's recipe:
  betas (0.9, 0.95), eps 1e-5, clip 1.0, cosine decay to 10 % of lr).
* ``full``: every backbone weight plus the head (the saved folder holds a copy of the backbone).

Scores in (0, 1). Bradley-Terry only fixes reward *differences*, so after training the head's bias
is set so that the mean reward over the training responses is 0; the saved folder has
`output: sigmoid`, so `build_scorer({"kind": "reward_model", "path": ...})` returns
σ(r(x, y)) ∈ (0, 1), 0.5 for an average response. That is what MOLMA's LOGIT (Eq. 3.4) expects:
logit(σ(r)) = r recovers the raw reward before whitening.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict

import torch
from peft import get_peft_model
from tqdm.auto import tqdm
from transformers import BatchEncoding

from moalign.algorithms.losses import bradley_terry_loss, pairwise_accuracy
from moalign.core.config import require
from moalign.core.errors import DataError
from moalign.data import deterministic_split, embedded_path, load_preferences, resolve_data
from moalign.models import MINILM, disable_dropout, lora_config
from moalign.rewards.heads import (
    META_FILE,
    ScalarHeadModel,
    last_token_pool,
    mean_pool,
    read_meta,
)
from moalign.rewards.scorers import Scorer, build_scorers, embedded_reward_model_dir

EMBEDDED_PREFS = {"helpfulness": "help_prefs", "safety": "safety_prefs"}
"""Embedded objective name -> the preference pairs the project ships for it."""


class Hyperparameters(TypedDict):
    """`RMConfig.resolved()`: the settings whose default depends on `train`."""

    epochs: int
    lr: float
    weight_decay: float


@dataclass
class RMConfig:
    """`moalign train-rm`: a scalar-head reward model trained with the Bradley-Terry loss."""

    objective: str | None = None  # 'helpfulness' | 'safety': use the shipped pairs (if no data)
    data: str | None = None  # preference file / embedded name (prompt, chosen, rejected columns)
    columns: dict[str, str] | None = None  # {our_name: file_column}
    style: str = "auto"  # auto | plain | hh | pku | pku_better | shp
    backbone: str = MINILM  # an encoder (mean pooled) or a causal LM (last-token state)
    train: Literal["head", "lora", "full"] = "head"
    out: str = "runs/reward_model"
    val_fraction: float = 0.2  # share of prompts held out for the pairwise accuracy
    epochs: int | None = None  # default: 100 full-batch epochs (head), 1 epoch (lora/full)
    lr: float | None = None  # default: 1e-2 (head), 1e-4 (lora), 1e-5 (full, paper)
    weight_decay: float | None = None  # default: 1e-3 (head), 0 (lora/full, paper)
    batch_size: int = 28  # pairs per step for lora/full (paper: 28)
    max_length: int = 256  # tokens per (prompt, response)
    lora_r: int = 8
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    max_pairs: int | None = None  # use only the first N pairs (quick runs)
    seed: int = 0
    device: str = "cpu"

    def validate(self) -> None:
        require(self.objective is not None or self.data is not None,
                "say which preference pairs to learn: objective=helpfulness|safety or data=FILE")
        require(self.objective is None or self.data is not None
                or self.objective in EMBEDDED_PREFS,
                f"objective {self.objective!r} has no shipped pairs; pass data=FILE or use one "
                f"of {sorted(EMBEDDED_PREFS)}")
        require(0.0 < self.val_fraction < 1.0, "val_fraction must be in (0, 1), e.g. 0.2")
        require(self.batch_size > 0, "batch_size must be > 0")
        require(self.epochs is None or self.epochs > 0, "epochs must be > 0")
        require(self.lr is None or self.lr > 0, "lr must be > 0")

    def resolved(self) -> Hyperparameters:
        """Epochs / lr / weight decay with the per-mode defaults filled in."""
        head = self.train == "head"
        lr_default = {"head": 1e-2, "lora": 1e-4, "full": 1e-5}[self.train]
        return {"epochs": self.epochs or (100 if head else 1), "lr": self.lr or lr_default,
                "weight_decay": self.weight_decay if self.weight_decay is not None
                else (1e-3 if head else 0.0)}


# ----------------------------------------------------------------------------- data


def load_pairs(cfg: RMConfig) -> tuple[list[dict[str, str]], str]:
    """(prompt, chosen, rejected) records and the source path."""
    path = resolve_data(cfg.data or EMBEDDED_PREFS[str(cfg.objective)])
    rows = load_preferences(path, columns=cfg.columns, style=cfg.style)
    rows = [{k: str(r[k]) for k in ("prompt", "chosen", "rejected")} for r in rows
            if r.get("chosen") is not None and r.get("rejected") is not None]
    rows = rows[: cfg.max_pairs] if cfg.max_pairs else rows
    if len(rows) < 2:
        raise DataError(f"{path}: need at least two preference pairs, found {len(rows)}")
    return rows, str(path)


def split_pairs(rows: list[dict[str, str]], val_fraction: float,
                seed: int) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Deterministic held-out split of whole prompts (no prompt is in both parts)."""
    prompts = sorted({r["prompt"] for r in rows})
    if len(prompts) < 2:
        raise DataError("need preference pairs for at least two different prompts to hold "
                        "some out")
    train_p, val_p = deterministic_split(prompts, (1 - val_fraction, val_fraction), seed)
    if not val_p:
        val_p = [train_p.pop()]
    held = set(val_p)
    return [r for r in rows if r["prompt"] not in held], [r for r in rows if r["prompt"] in held]


# ----------------------------------------------------------------------------- model


def build_model(cfg: RMConfig) -> ScalarHeadModel:
    """A ScalarHeadModel on `cfg.backbone`; LoRA attached for `train: lora`; trainable flags."""
    model = ScalarHeadModel.from_backbone(cfg.backbone, device=cfg.device, seed=cfg.seed)
    if cfg.train == "lora":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            model.backbone = get_peft_model(
                model.backbone, lora_config(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout))
    elif cfg.train == "head":
        model.backbone.requires_grad_(False)
    disable_dropout(model.backbone)
    return model


def _pool(model: ScalarHeadModel, enc: dict[str, torch.Tensor] | BatchEncoding) -> torch.Tensor:
    """Pooled backbone state (B, H) as in ScalarHeadModel.forward, before the head."""
    hidden = model.backbone(input_ids=enc["input_ids"],
                            attention_mask=enc["attention_mask"]).last_hidden_state
    pool = last_token_pool if model.pooling == "last" else mean_pool
    return pool(hidden, enc["attention_mask"])


@torch.no_grad()
def pooled_states(model: ScalarHeadModel, prompts: list[str], responses: list[str], max_length: int,
                  batch_size: int = 32) -> torch.Tensor:
    """Frozen-backbone pooled states of (prompt, response) pairs, (N, H) on the model device."""
    device = next(model.parameters()).device
    out = []
    for i in tqdm(range(0, len(prompts), batch_size), desc="embed", leave=False,
                  disable=len(prompts) <= 8 * batch_size):
        enc = model.encode(prompts[i:i + batch_size], responses[i:i + batch_size], max_length)
        out.append(_pool(model, {k: v.to(device) for k, v in enc.items()}))
    return torch.cat(out)


def pair_states(model: ScalarHeadModel, rows: list[dict[str, str]],
                max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled states of the chosen and of the rejected responses: ((N, H), (N, H))."""
    prompts = [r["prompt"] for r in rows]
    return (pooled_states(model, prompts, [r["chosen"] for r in rows], max_length),
            pooled_states(model, prompts, [r["rejected"] for r in rows], max_length))


def head_rewards(model: ScalarHeadModel, states: torch.Tensor) -> torch.Tensor:
    """r = head(pooled state): (N, H) -> (N,)."""
    return model.head(states).squeeze(-1)


# ----------------------------------------------------------------------------- training


def fit_head(model: ScalarHeadModel, h_c: torch.Tensor, h_r: torch.Tensor,
             cfg: RMConfig) -> list[float]:
    """`train: head`: full-batch AdamW on cached frozen-backbone states of the chosen (h_c) and
    rejected (h_r) responses, Bradley-Terry loss (Eq. 3.2). Returns the loss per epoch."""
    hp = cfg.resolved()
    opt = torch.optim.AdamW(model.head.parameters(), lr=hp["lr"], betas=(0.9, 0.95), eps=1e-5,
                            weight_decay=hp["weight_decay"])
    curve = []
    bar = tqdm(range(hp["epochs"]), desc="fit reward head", leave=False)
    for _ in bar:
        opt.zero_grad()
        loss = bradley_terry_loss(head_rewards(model, h_c), head_rewards(model, h_r))
        loss.backward()
        opt.step()
        curve.append(loss.item())
    return curve


def fit_backbone(model: ScalarHeadModel, train: list[dict[str, str]], cfg: RMConfig) -> list[float]:
    """`train: lora|full`: minibatch AdamW (betas (0.9, 0.95), eps 1e-5, clip 1.0, cosine decay
    to 10 % of lr; MOLMA §4.3) on the Bradley-Terry loss (Eq. 3.2). Returns per-step losses."""
    hp = cfg.resolved()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=hp["lr"], betas=(0.9, 0.95), eps=1e-5,
                            weight_decay=hp["weight_decay"])
    steps = hp["epochs"] * math.ceil(len(train) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s / steps, 1.0))))
    gen = torch.Generator().manual_seed(cfg.seed)
    device = next(model.parameters()).device
    model.train()
    curve = []
    bar = tqdm(total=steps, desc="train-rm")
    for _ in range(hp["epochs"]):
        order = torch.randperm(len(train), generator=gen).tolist()
        for i in range(0, len(order), cfg.batch_size):
            batch = [train[j] for j in order[i:i + cfg.batch_size]]
            prompts = [r["prompt"] for r in batch] * 2
            responses = [r["chosen"] for r in batch] + [r["rejected"] for r in batch]
            enc = {k: v.to(device) for k, v in
                   model.encode(prompts, responses, cfg.max_length).items()}
            r = head_rewards(model, _pool(model, enc))  # (2b,)
            loss = bradley_terry_loss(r[: len(batch)], r[len(batch):])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            curve.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    model.eval()
    return curve


@torch.no_grad()
def _centre_bias(model: ScalarHeadModel, h_c: torch.Tensor, h_r: torch.Tensor) -> None:
    """Shift the head bias so the mean training reward is 0 (σ(r) = 0.5 on average)."""
    model.head.bias.sub_(torch.cat([head_rewards(model, h_c), head_rewards(model, h_r)]).mean())


@torch.no_grad()
def _accuracy(model: ScalarHeadModel, h_c: torch.Tensor, h_r: torch.Tensor) -> float:
    return round(pairwise_accuracy(head_rewards(model, h_c), head_rewards(model, h_r)), 4)


def train_reward_model(cfg: RMConfig) -> dict[str, Any]:
    """Train a Bradley-Terry reward model, save it to `cfg.out` and return its metrics.

    Returns `{"val_accuracy", "train_accuracy", "n_train", "n_val", "final_loss", "out"}`. The
    folder is a `kind: reward_model` scorer (`build_scorer({"kind": "reward_model", "path":
    cfg.out})`) whose metadata also holds these metrics, the data hash and the config.
    """
    rows, source = load_pairs(cfg)
    train, val = split_pairs(rows, cfg.val_fraction, cfg.seed)
    model = build_model(cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        if cfg.train == "head":
            states = pair_states(model, train, cfg.max_length)
            curve = fit_head(model, *states, cfg)
        else:
            curve = fit_backbone(model, train, cfg)
            states = pair_states(model, train, cfg.max_length)
    model.eval()
    _centre_bias(model, *states)
    metrics = {"val_accuracy": _accuracy(model, *pair_states(model, val, cfg.max_length)),
               "train_accuracy": _accuracy(model, *states), "n_train": len(train),
               "n_val": len(val), "final_loss": round(curve[-1], 5) if curve else None}
    model.save(cfg.out, copy_backbone=cfg.train == "full", objective=cfg.objective,
               data=source, data_sha256=_sha256(source), train_config=asdict(cfg),
               hyperparameters=cfg.resolved(),
               score="sigmoid(r), r centred to mean 0 on the training responses", **metrics)
    return {**metrics, "out": str(cfg.out)}


def _sha256(path: str) -> str:
    p = Path(path)
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""


# ----------------------------------------------------------------------------- embedded


def embedded_rm_config(name: str, out: Path | None = None) -> RMConfig:
    """The training config of an embedded reward model (MiniLM frozen + linear head)."""
    if name not in EMBEDDED_PREFS:
        raise KeyError(f"no embedded reward model {name!r}; known: {sorted(EMBEDDED_PREFS)}")
    return RMConfig(objective=name, out=str(out or embedded_reward_model_dir(name)),
                    backbone=MINILM, train="head", seed=0)


def ensure_embedded_reward_model(name: str) -> Path:
    """The folder of embedded reward model `name`, trained from the shipped pairs (seconds on a
    CPU) if it is missing or the pairs / recipe changed since it was trained."""
    out = embedded_reward_model_dir(name)
    cfg = embedded_rm_config(name, out)
    if (out / META_FILE).is_file():
        meta = read_meta(out)
        if (meta.get("data_sha256") == _sha256(str(embedded_path(EMBEDDED_PREFS[name])))
                and meta.get("train_config") == asdict(cfg)
                and meta.get("hyperparameters") == cfg.resolved()):
            return out
    train_reward_model(cfg)
    return out


def ensure_embedded_reward_models() -> dict[str, Path]:
    """Train (if missing) the embedded `helpfulness` and `safety` reward models."""
    return {name: ensure_embedded_reward_model(name) for name in EMBEDDED_PREFS}


def objective_scorers(
    objectives: Sequence[str | dict[str, Any] | Scorer | Callable[..., Any]],
) -> list[Scorer]:
    """`scorers.build_scorers(objectives)`, training the embedded `helpfulness` / `safety` reward
    models first if they are missing (so `objectives: [helpfulness, safety]` just works)."""
    for spec in objectives:
        name = spec if isinstance(spec, str) else (
            spec.get("embedded") if isinstance(spec, dict) else None)
        if name in EMBEDDED_PREFS:
            ensure_embedded_reward_model(name)
    return build_scorers(objectives)
