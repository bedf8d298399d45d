"""Atomic training checkpoints: adapters, optimizer, scheduler, RNG streams, step, extra state.

A checkpoint is a folder `run_dir/checkpoint/` written through `atomic_dir`, so a kill during the
write leaves the previous checkpoint intact. Resuming restores every RNG stream, which is what makes
a resumed run reach the same state as an uninterrupted one with the same seed.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from moalign.core.io import atomic_dir, atomic_write_json
from moalign.models import Policy
from moalign.runs.layout import UnitDir


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def save_checkpoint(
    run_dir: str | Path, policy: Policy, adapter_names: list[str], step: int,
    optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None,
    extra: dict[str, Any] | None = None, modules: dict[str, torch.nn.Module] | None = None,
) -> Path:
    """Write `run_dir/checkpoint` atomically. `extra` must be torch-serialisable (bandit state,
    data cursor, histories); `modules` holds additional trainable modules (e.g. value heads)."""
    target = UnitDir(Path(run_dir)).checkpoint
    with atomic_dir(target) as tmp:
        for name in adapter_names:
            policy.model.save_pretrained(str(tmp / "adapters"), selected_adapters=[name])
        state = {"step": step, "rng": rng_state(), "extra": extra or {},
                 "optimizer": optimizer.state_dict() if optimizer is not None else None,
                 "scheduler": scheduler.state_dict() if scheduler is not None else None,
                 "modules": {k: m.state_dict() for k, m in (modules or {}).items()}}
        torch.save(state, tmp / "state.pt")
        atomic_write_json(tmp / "meta.json", {"step": step, "adapters": adapter_names})
    return target


def adapter_folder(ckpt: Path, name: str) -> Path:
    """PEFT saves the adapter called 'default' at the top level and others in a subfolder."""
    nested = ckpt / "adapters" / name
    return nested if nested.is_dir() else ckpt / "adapters"


def has_checkpoint(run_dir: str | Path) -> bool:
    return (UnitDir(Path(run_dir)).checkpoint / "state.pt").is_file()


def load_checkpoint(
    run_dir: str | Path, policy: Policy, adapter_names: list[str],
    optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None,
    modules: dict[str, torch.nn.Module] | None = None,
) -> dict[str, Any]:
    """Restore adapters (in place, into already-attached adapters), optimizer, scheduler, modules,
    RNG; return {"step", "extra"}."""
    from peft import set_peft_model_state_dict
    from peft.utils import load_peft_weights

    ckpt = UnitDir(Path(run_dir)).checkpoint
    if not (ckpt / "state.pt").is_file():
        raise FileNotFoundError(f"no checkpoint in {run_dir}; start without --resume")
    for name in adapter_names:
        weights = load_peft_weights(str(adapter_folder(ckpt, name)), device=str(policy.device))
        set_peft_model_state_dict(policy.model, weights, adapter_name=name)
    state = torch.load(ckpt / "state.pt", map_location="cpu", weights_only=False)
    if optimizer is not None and state["optimizer"] is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    for k, m in (modules or {}).items():
        m.load_state_dict(state["modules"][k])
    set_rng_state(state["rng"])
    return {"step": state["step"], "extra": state["extra"]}
