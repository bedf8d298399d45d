"""Metrics logging through one interface: `metrics.jsonl` always, optional TensorBoard/W&B/MLflow.

`Logger` is the plug point (a Protocol): anything with `log(metrics, step)` and `close()` works.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Protocol

from moalign.core.io import append_jsonl, read_jsonl, write_jsonl
from moalign.runs.layout import METRICS_JSONL


class Logger(Protocol):
    def log(self, metrics: dict[str, Any], step: int) -> None: ...
    def close(self) -> None: ...


class JsonlLogger:
    """Appends `{"step", "time", **metrics}` to `run_dir/metrics.jsonl` (flushed per line)."""

    def __init__(self, run_dir: str | Path, filename: str = METRICS_JSONL) -> None:
        self.path = Path(run_dir) / filename
        self.start = time.time()

    def log(self, metrics: dict[str, Any], step: int) -> None:
        append_jsonl(self.path, {"step": step, "time": round(time.time() - self.start, 3),
                                 **metrics})

    def close(self) -> None:
        pass


def drop_metrics_after(path: Path, step: int) -> None:
    """Keep only the records of the metrics file `path` up to optimiser step `step`: a run resumed
    from its checkpoint at `step` logs the later steps again, so a killed run's tail goes."""
    if path.exists():
        write_jsonl(path, [r for r in read_jsonl(path) if r.get("step", 0) <= step])


class TensorBoardLogger:
    def __init__(self, run_dir: str | Path) -> None:
        from torch.utils.tensorboard import SummaryWriter  # needs `pip install tensorboard`

        self.writer = SummaryWriter(str(Path(run_dir) / "tensorboard"))

    def log(self, metrics: dict[str, Any], step: int) -> None:
        for k, v in metrics.items():
            if isinstance(v, int | float):
                self.writer.add_scalar(k, v, step)

    def close(self) -> None:
        self.writer.close()


class WandbLogger:
    def __init__(self, run_dir: str | Path, project: str, config: dict[str, Any]) -> None:
        import wandb  # needs `pip install wandb`; runs offline unless WANDB_MODE says otherwise

        self.run = wandb.init(project=project, dir=str(run_dir), config=config, mode="offline")

    def log(self, metrics: dict[str, Any], step: int) -> None:
        self.run.log(metrics, step=step)

    def close(self) -> None:
        self.run.finish()


class MlflowLogger:
    def __init__(self, run_dir: str | Path, config: dict[str, Any]) -> None:
        import mlflow  # needs `pip install mlflow`

        mlflow.set_tracking_uri(f"file:{Path(run_dir).resolve() / 'mlruns'}")
        self.mlflow = mlflow
        self.run = mlflow.start_run()
        mlflow.log_params({k: str(v)[:250] for k, v in config.items()})

    def log(self, metrics: dict[str, Any], step: int) -> None:
        nums = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
        self.mlflow.log_metrics(nums, step=step)

    def close(self) -> None:
        self.mlflow.end_run()


class MultiLogger:
    """Fans one `log` call out to several loggers."""

    def __init__(self, loggers: list[Logger]) -> None:
        self.loggers = loggers

    def log(self, metrics: dict[str, Any], step: int) -> None:
        for lg in self.loggers:
            lg.log(metrics, step)

    def close(self) -> None:
        for lg in self.loggers:
            lg.close()


def make_logger(run_dir: str | Path, backends: list[str] | None = None,
                config: dict[str, Any] | None = None, project: str = "moalign") -> MultiLogger:
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
            raise ValueError(f"unknown logger {b!r}; choose from jsonl, tensorboard, wandb, mlflow")
    return MultiLogger(loggers)
