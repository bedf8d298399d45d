"""A Hub-ready, self-describing copy of an ensemble (`moalign ensemble export` / `push`).

    OUT/ensemble.json                 base model by its public id, experts (relative), system
                                      prompt, searched best weights
    OUT/experts/<objective>/adapter/  each LoRA expert; adapter_config.json names the public base
                                      id and the PEFT task type, so plain PEFT loads it
    OUT/README.md                     model card: Hub metadata, experts and weights, how to load
                                      (moalign, PEFT) and serve it

Nothing else (no checkpoints, metrics, search logs), so ``huggingface_hub.upload_folder`` of OUT
publishes exactly the model. OUT is itself an ensemble folder: ``moalign generate --ensemble OUT``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import huggingface_hub
from transformers import AutoConfig

from moalign.core.config import ConfigError
from moalign.core.errors import HubError
from moalign.core.io import atomic_dir
from moalign.emorl.manifest import EnsembleManifest
from moalign.models import describe_adapter, public_model_id, resolve_model
from moalign.runs.layout import SeedDir


def _weights_table(manifest: EnsembleManifest) -> str:
    best = manifest.best_weights or {}
    rows = [f"| `{name}` | `{entry}` | {best[name]:.4g} |" if name in best
            else f"| `{name}` | `{entry}` | – |" for name, entry in manifest.experts.items()]
    return "\n".join(["| objective | LoRA expert | searched weight |", "|---|---|---|", *rows])


def model_card(manifest: EnsembleManifest, title: str) -> str:
    """README.md of an exported ensemble (Hub front matter, then usage)."""
    names = manifest.objectives
    best = manifest.best_weights or {n: round(1 / len(names), 4) for n in names}
    weights = ",".join(f"{n}={best.get(n, 0.0):.4g}" for n in names)
    first = manifest.experts[names[0]]
    system = f"\n\nSystem prompt used for generation: {manifest.system!r}." if manifest.system \
        else ""
    return f"""---
base_model: {manifest.base}
library_name: peft
tags: [moalign, emorl, lora, multi-objective]
---

# {title}

A multi-objective ensemble made with [moalign](https://pypi.org/project/moalign/): the base model
`{manifest.base}` plus one LoRA expert per objective. At decoding time the experts are combined
with per-objective weights (EMORL: the weighted sum of the experts' last hidden states goes
through the LM head), so the trade-off between the objectives is chosen per request, without
retraining. `ensemble.json` lists the experts, the system prompt and the weights found by
moalign's hierarchical grid search (used when no weights are given).

{_weights_table(manifest)}{system}

{_usage(manifest, names, weights, first)}"""


def _usage(manifest: EnsembleManifest, names: list[str], weights: str, first: str) -> str:
    """The model card's how-to: generate with moalign, serve it, load one expert with PEFT."""
    return f"""## Generate with moalign

```bash
pip install moalign
hf download REPO_ID --local-dir ensemble        # or huggingface_hub.snapshot_download
moalign generate --ensemble ensemble --weights {weights} "Your prompt"
```

```python
from moalign.emorl.decoding import generate
from moalign.emorl.manifest import load_ensemble
from moalign.models import format_prompts

ensemble, manifest = load_ensemble("ensemble")
texts = format_prompts(ensemble.policy, ["Your prompt"], manifest.system)
print(generate(ensemble, texts, "{weights}"))
```

## Serve it

```bash
moalign serve ensemble --port 8000
curl localhost:8000/generate -d '{{"prompt": "Your prompt", "weights": {{"{names[0]}": 1.0}}}}'
```

The server batches concurrent requests with different weights into one aggregated decode.

## One expert with plain PEFT

Each expert is an ordinary PEFT LoRA adapter of `{manifest.base}`:

```python
from peft import AutoPeftModelForCausalLM

model = AutoPeftModelForCausalLM.from_pretrained("ensemble/{first}")
```
"""


def _copy_expert(src: Path, target: Path, base: str, is_encoder_decoder: bool) -> None:
    shutil.copytree(src, target)
    describe_adapter(target, base, is_encoder_decoder)  # adapters saved before moalign 0.2


def export_ensemble(run_dir: str | Path, out: str | Path | None = None,
                    force: bool = False) -> Path:
    """Write the Hub-ready folder of the ensemble in `run_dir` to `out` (default
    RUN_DIR/export); an existing non-empty `out` needs `force`."""
    run_dir = Path(run_dir)
    manifest = EnsembleManifest.load(run_dir)
    target = Path(out) if out is not None else SeedDir(run_dir).export
    if target.exists() and any(target.iterdir()) and not force:
        raise ConfigError(f"{target} already exists; pass --force to replace it, or --out DIR")
    base = public_model_id(manifest.base)
    is_ed = bool(getattr(AutoConfig.from_pretrained(resolve_model(manifest.base)),
                         "is_encoder_decoder", False))
    exported = EnsembleManifest(base=base, system=manifest.system,
                                best_weights=manifest.best_weights)
    with atomic_dir(target) as tmp:
        for name, src in manifest.adapter_paths(run_dir).items():
            _copy_expert(src, SeedDir(tmp).expert(name).adapter, manifest.base, is_ed)
            exported.experts[name] = SeedDir(tmp).expert_entry(name)
        exported.save(tmp)
        title = f"{run_dir.resolve().name}: {', '.join(exported.objectives)}"
        SeedDir(tmp).model_card.write_text(model_card(exported, title), encoding="utf-8")
    return target


def push_ensemble(run_dir: str | Path, repo_id: str, out: str | Path | None = None,
                  private: bool | None = None) -> str:
    """Export (replacing an earlier export) and upload the folder to the Hub model repo
    `repo_id` with ``huggingface_hub.upload_folder``; returns the commit URL."""
    folder = export_ensemble(run_dir, out, force=True)
    try:
        huggingface_hub.create_repo(repo_id, exist_ok=True, private=private)
        info = huggingface_hub.upload_folder(repo_id=repo_id, folder_path=folder,
                                             commit_message="Upload moalign ensemble")
    except (OSError, ValueError) as e:  # offline, not logged in, no access, bad repo id
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise HubError(f"cannot push to the Hub repo {repo_id!r} ({reason}); offline or not "
                       f"logged in (`hf auth login`)? The export is ready in {folder}") from None
    return str(getattr(info, "commit_url", info))
