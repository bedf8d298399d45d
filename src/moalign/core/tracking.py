"""Metrics logging through one interface: `metrics.jsonl` always, optional TensorBoard/W&B/MLflow.

`Logger` is the plug point (a Protocol): anything with `log(metrics, step)` and `close()` works.
TensorBoard, W&B and MLflow are optional dependencies (the `logging` extra), so each is imported
when its logger is created, not at the top of this module.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Protocol

from moalign.core.errors import ConfigError
from moalign.core.io import append_jsonl, read_jsonl, write_jsonl
from moalign.runs.layout import METRICS_JSONL


class Logger(Protocol):
    def log(self, metrics: Mapping[str, object], step: int) -> None: ...
    def close(self) -> None: ...


class JsonlLogger:
    """Appends `{"step", "time", **metrics}` to `run_dir/metrics.jsonl` (flushed per line)."""

    def __init__(self, run_dir: str | Path, filename: str = METRICS_JSONL) -> None:
        self.path = Path(run_dir) / filename
        self.start = time.time()

    def log(self, metrics: Mapping[str, object], step: int) -> None:
        append_jsonl(self.path, {"step": step, "time": round(time.time() - self.start, 3),
                                 **metrics})

    def close(self) -> None:
        pass


def drop_metrics_after(path: Path, step: int) -> None:
    """Keep only the records of the metrics file `path` up to optimiser step `step`: a run resumed
    from its checkpoint at `step` logs the later steps again, so a killed run's tail goes."""
    if path.exists():
        write_jsonl(path, [r for r in read_jsonl(path) if r.get("step", 0) <= step])


def optional_module(module: str, logger: str, package: str) -> ModuleType:
    """Import an optional logger's library, or a one-line error with the install command."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"the {logger} logger needs the {package!r} package: run `pip install "
                          f"{package}` (or `pip install 'moalign[logging]'`), or drop {logger} "
                          "from loggers") from None


class TensorBoardLogger:
    def __init__(self, run_dir: str | Path) -> None:
        optional_module("tensorboard", "tensorboard", "tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(Path(run_dir) / "tensorboard"))

    def log(self, metrics: Mapping[str, object], step: int) -> None:
        for k, v in metrics.items():
            if isinstance(v, int | float):
                self.writer.add_scalar(k, v, step)

    def close(self) -> None:
        self.writer.close()


class WandbLogger:
    def __init__(self, run_dir: str | Path, project: str, config: Mapping[str, object]) -> None:
        """W&B's own environment wins: WANDB_MODE (default here: offline, nothing leaves the
        machine unless asked) and WANDB_PROJECT (default: `project`)."""
        wandb = optional_module("wandb", "wandb", "wandb")
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT") or project,
                              dir=str(run_dir), config=dict(config),
                              mode=os.environ.get("WANDB_MODE") or "offline")

    def log(self, metrics: Mapping[str, object], step: int) -> None:
        self.run.log(metrics, step=step)

    def close(self) -> None:
        self.run.finish()


class MlflowLogger:
    def __init__(self, run_dir: str | Path, config: Mapping[str, object]) -> None:
        mlflow = optional_module("mlflow", "mlflow", "mlflow")
        mlflow.set_tracking_uri(f"file:{Path(run_dir).resolve() / 'mlruns'}")
        self.mlflow = mlflow
        self.run = mlflow.start_run()
        mlflow.log_params({k: str(v)[:250] for k, v in config.items()})

    def log(self, metrics: Mapping[str, object], step: int) -> None:
        nums = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
        self.mlflow.log_metrics(nums, step=step)

    def close(self) -> None:
        self.mlflow.end_run()


class MultiLogger:
    """Fans one `log` call out to several loggers."""

    def __init__(self, loggers: list[Logger]) -> None:
        self.loggers = loggers

    def log(self, metrics: Mapping[str, object], step: int) -> None:
        for lg in self.loggers:
            lg.log(metrics, step)

    def close(self) -> None:
        for lg in self.loggers:
            lg.close()


def make_logger(run_dir: str | Path, backends: list[str] | None = None,
                config: Mapping[str, object] | None = None,
                project: str = "moalign") -> MultiLogger:
    """`metrics.jsonl` plus any of `tensorboard`, `wandb`, `mlflow`."""
    loggers: list[Logger] = [JsonlLogger(run_dir)]
    for b in backends or []:
        if b == "tensorboard":
            loggers.append(TensorBoardLogger(run_dir))
        elif b == "wandb":
            loggers.append(WandbLogger(run_dir, project, config or {}))
        elif b == "mlflow":
            loggers.append(MlflowLogger(run_dir, config or {}))
        elif b != "jsonl":
            raise ConfigError(f"unknown logger {b!r}; choose from jsonl, tensorboard, wandb, "
                              "mlflow")
    return MultiLogger(loggers)
