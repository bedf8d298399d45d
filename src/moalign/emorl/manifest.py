"""The ensemble manifest: which base model and which LoRA experts make up an EMORL ensemble.

A run directory that holds an ensemble has `ensemble.json`:

    {"base": "smollm2-135m-instruct",
     "experts": {"reflection": "experts/reflection/adapter", ...},   # relative to the run dir
     "system": "...",                                               # prompt system message
     "best_weights": {"reflection": 0.8, ...} | null}              # from `moalign search`

Adding an objective = adding one entry to `experts`; existing adapters are never touched.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from moalign.core.config import ConfigError
from moalign.core.errors import ModelNotFoundError, ObjectiveError
from moalign.core.io import atomic_dir, atomic_write_json
from moalign.core.naming import check_name
from moalign.emorl.ensemble import Ensemble
from moalign.models import load_policy
from moalign.runs.layout import ENSEMBLE_JSON, SeedDir, UnitDir

MANIFEST = ENSEMBLE_JSON


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
        return cls(**json.loads(path.read_text(encoding="utf-8")))

    def adapter_paths(self, run_dir: str | Path) -> dict[str, Path]:
        """Absolute adapter folders (relative entries are resolved against the run dir)."""
        root = Path(run_dir)
        return {k: (Path(v) if Path(v).is_absolute() else root / v) for k, v in
                self.experts.items()}

    def default_weights(self) -> tuple[dict[str, float], str | None]:
        """{objective: weight} when the user gives none: the searched best weights (objectives
        they lack get 0), else uniform; plus a note saying where they came from."""
        names = self.objectives
        if self.best_weights:
            return ({n: float(self.best_weights.get(n, 0.0)) for n in names},
                    "using the ensemble's searched best weights")
        return ({n: 1.0 / len(names) for n in names},
                "no searched weights in ensemble.json (run `moalign search`); using uniform "
                "weights")


def load_ensemble(run_dir: str | Path, device: str = "auto") -> tuple[Ensemble, EnsembleManifest]:
    """Load the base policy once and attach every expert of the manifest as a named adapter."""
    manifest = EnsembleManifest.load(run_dir)
    if not manifest.experts:
        raise ObjectiveError(f"{Path(run_dir) / MANIFEST} lists no experts")
    policy = load_policy(manifest.base, device=device)
    ensemble = Ensemble.from_adapters(policy, manifest.adapter_paths(run_dir))
    return ensemble, manifest


# ----------------------------------------------------------------------------- building ensembles


def adapter_folder(path: str | Path) -> Path:
    """A LoRA adapter folder: `path` itself, or `path/adapter` (an SCST trainer's out_dir)."""
    path = Path(path).expanduser()
    for candidate in (path, UnitDir(path).adapter):
        if (candidate / "adapter_config.json").is_file():
            return candidate
    raise ModelNotFoundError(f"{path} holds no LoRA adapter (adapter_config.json missing); pass "
                             "an adapter folder or an SCST run's out_dir")


def place_adapter(run_dir: Path, name: str, source: str | Path, copy: bool) -> str:
    """The manifest entry for an expert: copied to experts/NAME/adapter, or referenced.

    An adapter already inside the run directory is referenced relatively, never copied.
    """
    src = adapter_folder(source).resolve()
    root = run_dir.resolve()
    if src.is_relative_to(root):
        return str(src.relative_to(root))
    if not copy:
        return str(src)
    target = SeedDir(run_dir).expert(name).adapter
    if target.exists():
        raise FileExistsError(f"{target} already exists; remove it or pick another objective "
                              "name")
    with atomic_dir(target) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
    return str(target.relative_to(run_dir))


def create_ensemble(run_dir: str | Path, base: str, experts: Mapping[str, str | Path],
                    system: str | None = None, copy: bool = True,
                    force: bool = False) -> EnsembleManifest:
    """Write a new ensemble.json for `base` + experts (each copied into the run dir)."""
    run_dir = Path(run_dir)
    if (run_dir / MANIFEST).exists() and not force:
        raise ConfigError(f"{run_dir / MANIFEST} already exists; add experts with `moalign "
                          "ensemble add`, or pass --force to replace it")
    if not experts:
        raise ConfigError("give at least one --expert name=PATH")
    for name, path in experts.items():  # every error before anything is written
        check_name("objective", name)
        adapter_folder(path)
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        manifest = EnsembleManifest(base=base, system=system)
        for name, path in experts.items():
            manifest.add_expert(name, place_adapter(run_dir, name, path, copy))
        manifest.save(run_dir)
    except BaseException:
        if created:  # a failed create leaves no half-made folder behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return manifest


def add_expert(run_dir: str | Path, name: str, adapter: str | Path,
               copy: bool = True) -> EnsembleManifest:
    """Add one objective's expert to an existing ensemble; existing experts are untouched
    (EMORL's scalability: a new objective costs one expert, no retraining).

    Searched best weights get weight 0 for the new objective, so the ensemble keeps generating
    exactly as before until the weights are searched again.
    """
    run_dir = Path(run_dir)
    manifest = EnsembleManifest.load(run_dir)
    check_name("objective", name)
    if name in manifest.experts:
        raise ObjectiveError(f"the ensemble already has an expert for {name!r} (objectives: "
                             f"{manifest.objectives}); pick another name")
    manifest.add_expert(name, place_adapter(run_dir, name, adapter, copy))
    if manifest.best_weights:
        manifest.best_weights = {**manifest.best_weights, name: 0.0}
    manifest.save(run_dir)
    return manifest
