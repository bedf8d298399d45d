"""The ensemble manifest: which base model and which LoRA experts make up an EMORL ensemble.

A run directory that holds an ensemble has `ensemble.json`:

    {"base": "smollm2-135m-instruct",
     "experts": {"reflection": "experts/reflection/adapter", ...},   # relative to the run dir
     "system": "...",                                               # prompt system message
     "best_weights": {"reflection": 0.8, ...} | null}              # from `moalign search`

Adding an objective = adding one entry to `experts`; existing adapters are never touched.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from moalign.core.errors import ObjectiveError
from moalign.core.io import atomic_write_json

MANIFEST = "ensemble.json"


@dataclass
class EnsembleManifest:
    base: str
    experts: dict[str, str] = field(default_factory=dict)
    system: str | None = None
    best_weights: dict[str, float] | None = None

    @property
    def objectives(self) -> list[str]:
        return list(self.experts)

    def add_expert(self, name: str, adapter_dir: str) -> None:
        if name in self.experts:
            raise ObjectiveError(f"the ensemble already has an expert for {name!r}")
        self.experts[name] = adapter_dir

    def save(self, run_dir: str | Path) -> Path:
        return atomic_write_json(Path(run_dir) / MANIFEST, asdict(self))

    @classmethod
    def load(cls, run_dir: str | Path) -> EnsembleManifest:
        path = Path(run_dir) / MANIFEST
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found: point --ensemble at a run directory made by "
                "`moalign run`, or write one with `moalign ensemble add`"
            )
        import json

        return cls(**json.loads(path.read_text(encoding="utf-8")))

    def adapter_paths(self, run_dir: str | Path) -> dict[str, Path]:
        """Absolute adapter folders (relative entries are resolved against the run dir)."""
        root = Path(run_dir)
        return {k: (Path(v) if Path(v).is_absolute() else root / v) for k, v in
                self.experts.items()}


def load_ensemble(run_dir: str | Path, device: str = "auto") -> tuple[Any, EnsembleManifest]:
    """Load the base policy once and attach every expert of the manifest as a named adapter."""
    from moalign.emorl.ensemble import Ensemble
    from moalign.models import load_policy

    manifest = EnsembleManifest.load(run_dir)
    if not manifest.experts:
        raise ObjectiveError(f"{Path(run_dir) / MANIFEST} lists no experts")
    policy = load_policy(manifest.base, device=device)
    ensemble = Ensemble.from_adapters(policy, manifest.adapter_paths(run_dir))
    return ensemble, manifest
