"""Training checkpoints without pickle: numbered, verified, and safe against a kill.

A unit folder keeps its last `keep` checkpoints as ``checkpoint-<step>/`` (HF Trainer's names; the
paths come from `moalign.runs.layout.CheckpointDir`):

    adapters/<name>.safetensors   the LoRA weights of each trained adapter
    modules/<name>.safetensors    other trained modules (a value head, a fully fine-tuned model)
    state.safetensors             the tensors of the rest: optimiser moments, RNG streams
    state.json                    everything else (step, optimiser hyper-parameters and counters,
                                  cursors, bandit, histories, RNG scalars), via `state_codec`
    manifest.json                 size and sha256 of every file above, written last

Nothing is unpickled: tensors are read with safetensors, the rest with `json`.

Saving writes ``.checkpoint-<step>.partial/``, fsyncs each file, seals it with the manifest and
renames it into place (`moalign.core.io.publish_dir`); only then are checkpoints beyond `keep`
removed. A kill at any point leaves the previous complete checkpoint on disk. A full disk stops
the run with one line naming the file and the checkpoint kept.

Resuming (`load_checkpoint`) clears stale temporaries (a sealed one whose rename was cut short is
put back in place), takes the newest checkpoint whose manifest verifies, reports each one it skips
(missing, empty, truncated or modified files) and says which it resumed. Every RNG stream is
restored, which is what makes a resumed run reach the same state as an uninterrupted one.
moalign 0.1's ``checkpoint/state.pt`` is a pickle and is never loaded: resuming such a unit stops
with a line that says why and what to do.
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict, cast

import numpy as np
import torch
from peft import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch.optim.lr_scheduler import LRScheduler

from moalign.core.config import save_config
from moalign.core.errors import CheckpointError, DiskFullError
from moalign.core.io import check_manifest, publish_dir, write_durable, write_manifest
from moalign.core.state_codec import StateFormatError, decode_state, encode_state
from moalign.core.tracking import MultiLogger, make_logger
from moalign.models import Policy
from moalign.runs.layout import CheckpointDir, UnitDir

if TYPE_CHECKING:
    from _typeshed import DataclassInstance
    from torch.nn.modules.module import _IncompatibleKeys

FORMAT = "moalign-checkpoint/1"
REQUIRED_FILES = ("state.json", "state.safetensors")


class RngState(TypedDict):
    """Every random stream a run draws from (saved in checkpoints, restored on resume)."""

    python: tuple[Any, ...]  # random.getstate()
    numpy: dict[str, Any] | tuple[Any, ...]  # np.random.get_state()
    torch: torch.Tensor  # CPU generator state
    cuda: NotRequired[list[torch.Tensor]]  # one state per visible GPU


def rng_state() -> RngState:
    state: RngState = {"python": random.getstate(), "numpy": np.random.get_state(),
                       "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: RngState) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def say(message: str) -> None:
    """One progress line on stderr (the format of the study stages' lines)."""
    print(f"[moalign {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- tensors of a model


def adapter_tensors(policy: Policy, name: str) -> dict[str, torch.Tensor]:
    """The LoRA weights of adapter `name` (PEFT's keys, without the adapter name), on the CPU."""
    weights = get_peft_model_state_dict(policy.model, adapter_name=name)
    return {k: t.detach().cpu().contiguous() for k, t in weights.items()}


def module_tensors(module: torch.nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A module's state as (tensors, aliases): a tensor tied to an earlier one (shared input and
    output embeddings) is stored once and named in `aliases` {name: stored name}."""
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple[Any, ...], str] = {}
    for name, t in module.state_dict().items():
        ident = (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape),
                 tuple(t.stride()), t.dtype)
        if t.numel() and ident in seen:
            aliases[name] = seen[ident]
            continue
        seen[ident] = name
        tensors[name] = t.detach().cpu().contiguous().clone()
    return tensors, aliases


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    write_durable(path, safetensors_bytes(tensors))


def _write_json(path: Path, obj: Any) -> None:
    write_durable(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode("utf-8"))


# ----------------------------------------------------------------------------- saving


def _write_contents(ck: CheckpointDir, policy: Policy, adapter_names: list[str], step: int,
                    state: dict[str, Any], modules: dict[str, torch.nn.Module]) -> None:
    """Every file of a checkpoint into the (new, empty) folder `ck`, then its manifest."""
    for name in adapter_names:
        _write_tensors(ck.adapter(name), adapter_tensors(policy, name))
    aliases = {}
    for name, module in modules.items():
        tensors, aliases[name] = module_tensors(module)
        _write_tensors(ck.module(name), tensors)
    table: dict[str, torch.Tensor] = {}
    encoded = encode_state(state, table)
    _write_tensors(ck.state_tensors, table)
    _write_json(ck.state_json, {"format": FORMAT, "step": step, "adapters": adapter_names,
                                "module_aliases": aliases, "state": encoded})
    write_manifest(ck.root, ck.manifest, {"checkpoint": FORMAT, "step": step})


def save_checkpoint(
    run_dir: str | Path, policy: Policy, adapter_names: list[str], step: int,
    optimizer: torch.optim.Optimizer | None = None, scheduler: LRScheduler | None = None,
    extra: dict[str, Any] | None = None, modules: dict[str, torch.nn.Module] | None = None,
    keep: int = 2,
) -> Path:
    """Write `run_dir/checkpoint-<step>` (see the module docstring) and keep the last `keep`.

    `extra` holds the trainer's own state (cursor, bandit, histories) in the types
    `moalign.core.state_codec` stores; `modules` are trained modules besides the adapters."""
    unit = UnitDir(Path(run_dir))
    clean_temporaries(unit)
    tmp, target = unit.checkpoint_temp(step, "partial"), unit.checkpoint_at(step)
    state = {"step": step, "rng": rng_state(), "extra": extra or {},
             "optimizer": optimizer.state_dict() if optimizer is not None else None,
             "scheduler": scheduler.state_dict() if scheduler is not None else None}
    try:
        tmp.mkdir(parents=True)
        _write_contents(CheckpointDir(tmp), policy, adapter_names, step, state, modules or {})
        publish_dir(tmp, target, unit.checkpoint_temp(step, "replaced"))
    except DiskFullError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(f"disk full while writing {e.filename}; kept "
                              f"{_newest_complete(unit)}") from None
    except Exception:  # a kill (KeyboardInterrupt, SIGKILL) leaves tmp for the next start
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    prune_checkpoints(unit, step, keep)
    return target


def _newest_complete(unit: UnitDir) -> str:
    for _, path in unit.checkpoints():
        if verify_checkpoint(path) is None:
            return str(path)
    return "no checkpoint (none was complete before this one)"


def _discard(unit: UnitDir, step: int, path: Path) -> None:
    """Remove a checkpoint folder: renamed out of the way first, so a kill mid-way leaves only
    a temporary that the next start removes, never a half-deleted ``checkpoint-<step>``."""
    doomed = unit.checkpoint_temp(step, "deleting")
    shutil.rmtree(doomed, ignore_errors=True)
    path.replace(doomed)
    shutil.rmtree(doomed)


def prune_checkpoints(unit: UnitDir, step: int, keep: int) -> None:
    """After saving `step`: keep it and the `keep - 1` newest older checkpoints; newer ones
    belong to a run abandoned by a resume from an older checkpoint and go too."""
    older = [(s, p) for s, p in unit.checkpoints() if s < step]
    newer = [(s, p) for s, p in unit.checkpoints() if s > step]
    for s, p in newer + older[max(keep - 1, 0):]:
        _discard(unit, s, p)


def clear_checkpoints(run_dir: str | Path) -> None:
    """Remove every checkpoint of a unit (a fresh run replaces the previous one); say so."""
    unit = UnitDir(Path(run_dir))
    found = unit.checkpoints()
    for step, path in found:
        _discard(unit, step, path)
    for _, _, path in unit.checkpoint_temps():
        shutil.rmtree(path, ignore_errors=True)
    if found:
        say(f"fresh run: removed {len(found)} checkpoint(s) of an earlier run in {unit.root}")


# ----------------------------------------------------------------------------- finding


def verify_checkpoint(path: str | Path) -> str | None:
    """None when every file of the checkpoint matches its manifest, else what is wrong."""
    ck = CheckpointDir(Path(path))
    return check_manifest(ck.root, ck.manifest, REQUIRED_FILES)


def clean_temporaries(unit: UnitDir) -> None:
    """Remove folders left by an interrupted save or prune. A sealed (verified) one whose
    rename was cut short is renamed into place instead when its step has no checkpoint."""
    removed = 0
    for step, kind, path in unit.checkpoint_temps():  # per step: partial before replaced
        target = unit.checkpoint_at(step)
        if kind != "deleting" and not target.exists() and verify_checkpoint(path) is None:
            path.replace(target)
            say(f"recovered {target} from an interrupted save")
        else:
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    if removed:
        say(f"removed {removed} unfinished checkpoint folder(s) in {unit.root}")


def has_checkpoint(run_dir: str | Path) -> bool:
    """Whether the unit has something to resume from (or refuse to: a 0.1 pickle checkpoint)."""
    unit = UnitDir(Path(run_dir))
    sealed_temp = any(kind != "deleting" and CheckpointDir(p).manifest.is_file()
                      for _, kind, p in unit.checkpoint_temps())
    return bool(unit.checkpoints()) or sealed_temp or unit.legacy_checkpoint.exists()


def legacy_refusal(unit: UnitDir) -> str:
    return (f"{unit.legacy_checkpoint} is a moalign 0.1 checkpoint (state.pt is a pickle, which "
            "can run code when loaded), so it is not loaded; delete that folder to train this "
            "unit again from step 0 (a finished unit, with adapter/ and summary.json, is reused "
            "without it)")


def find_checkpoint(run_dir: str | Path) -> Path:
    """The newest complete checkpoint whose files match their manifest; each newer one that
    does not is reported and skipped. None usable: a CheckpointError saying what is wrong."""
    unit = UnitDir(Path(run_dir))
    clean_temporaries(unit)
    problems = []
    for _, path in unit.checkpoints():
        problem = verify_checkpoint(path)
        if problem is None:
            return path
        problems.append(f"{path.name}: {problem}")
        say(f"skip {path}: {problem}")
    if problems:
        raise CheckpointError(f"no usable checkpoint in {unit.root} ({'; '.join(problems)}); "
                              "delete the checkpoint-* folders to train from step 0")
    if unit.legacy_checkpoint.exists():
        raise CheckpointError(legacy_refusal(unit))
    raise CheckpointError(f"no checkpoint in {unit.root}; start without --resume")


# ----------------------------------------------------------------------------- loading


def _load_adapter(policy: Policy, name: str, path: Path) -> None:
    weights = load_file(path, device=str(policy.device))
    # PEFT annotates the result `namedtuple`: it is torch's load_state_dict result
    result = cast("_IncompatibleKeys",
                  set_peft_model_state_dict(policy.model, weights, adapter_name=name))
    missing = [k for k in result.missing_keys if "lora_" in k and f".{name}." in k]
    if result.unexpected_keys or missing:
        raise CheckpointError(f"{path} does not hold the weights of adapter {name!r} of this "
                              f"model (unexpected {result.unexpected_keys[:2]}, missing "
                              f"{missing[:2]}); was it saved for another model or lora_r?")


def _load_module(module: torch.nn.Module, path: Path, aliases: dict[str, str]) -> None:
    tensors = load_file(path)
    for alias, stored in aliases.items():
        tensors[alias] = tensors[stored]
    module.load_state_dict(tensors, strict=True)


def _restore(ck: CheckpointDir, policy: Policy, adapter_names: list[str],
             optimizer: torch.optim.Optimizer | None, scheduler: LRScheduler | None,
             modules: dict[str, torch.nn.Module]) -> dict[str, Any]:
    meta = json.loads(ck.state_json.read_bytes().decode("utf-8"))
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise StateFormatError(f"state.json is not a {FORMAT} file")
    state = decode_state(meta["state"], load_file(ck.state_tensors))
    for name in adapter_names:
        _load_adapter(policy, name, ck.adapter(name))
    for name, module in modules.items():
        _load_module(module, ck.module(name), meta["module_aliases"][name])
    if optimizer is not None and state["optimizer"] is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return state


def load_checkpoint(
    run_dir: str | Path, policy: Policy, adapter_names: list[str],
    optimizer: torch.optim.Optimizer | None = None, scheduler: LRScheduler | None = None,
    modules: dict[str, torch.nn.Module] | None = None,
) -> dict[str, Any]:
    """Restore the newest usable checkpoint (`find_checkpoint`) into already-attached adapters,
    the optimiser, scheduler, modules and RNG streams; return {"step", "extra", "path"}."""
    path = find_checkpoint(run_dir)
    try:
        state = _restore(CheckpointDir(path), policy, adapter_names, optimizer, scheduler,
                         modules or {})
    except CheckpointError:
        raise
    except (OSError, UnicodeDecodeError, SafetensorError, StateFormatError, KeyError, TypeError,
            ValueError, RuntimeError) as e:
        detail = (str(e).strip().splitlines() or [""])[0][:200]
        raise CheckpointError(f"{path} cannot be restored into this run ({type(e).__name__}: "
                              f"{detail}); was it saved with another model, adapters or "
                              "optimiser settings?") from None
    say(f"resume from {path} (step {state['step']})")
    return {"step": state["step"], "extra": state["extra"], "path": path}


def start_unit(cfg: DataclassInstance, run_dir: str | Path, loggers: list[str],
               resume: bool) -> MultiLogger:
    """A trainer's start in `run_dir`, after its checkpoint was restored when `resume`: a fresh
    run drops an earlier run's `metrics.jsonl` and checkpoints; then the resolved `cfg` is saved
    and the metrics log opened (`cfg` is also the run config W&B / MLflow record)."""
    unit = UnitDir(Path(run_dir))
    if not resume:
        unit.metrics.unlink(missing_ok=True)
        clear_checkpoints(unit.root)
    save_config(cfg, unit.root)
    return make_logger(unit.root, loggers, dataclasses.asdict(cfg))
