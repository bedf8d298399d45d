"""An EMORL ensemble: one shared base model plus K named LoRA experts, one per objective
(EMORL §4.1), and the validation of aggregation weights w ∈ [0, ∞)^K.

Adding an expert never modifies the existing ones (EMORL's scalability claim): the ensemble is a
mapping objective -> adapter name on one PeftModel. Decoding lives in `moalign.emorl.decoding`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from transformers import PreTrainedTokenizerBase

from moalign.core.config import ConfigError, parse_mapping
from moalign.core.errors import ObjectiveError
from moalign.core.naming import check_name
from moalign.models import Policy, load_adapter

WeightsSpec = str | Mapping[str, float] | Sequence[float] | torch.Tensor
"""Aggregation weights as a user gives them: ``"a=0.8,b=0.2"``, ``"0.8,0.2"``, a dict or (K,)."""

# --- weights -----------------------------------------------------------------------------------


def check_weights(weights: Any, k: int, batch: int | None = None) -> torch.Tensor:
    """Validated weights as a float32 (B, K) tensor (B = 1 for (K,)): finite, >= 0, at least
    one positive per row (EMORL §4.1 uses w_i ∈ [0, 1]; larger values are allowed since greedy
    states/logits decoding only depends on ratios). `ConfigError` names the offending row."""
    try:
        w = torch.as_tensor(weights, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError) as e:
        raise ConfigError(f"weights must be numbers, got {weights!r}: {e}") from None
    if w.dim() == 1:
        w = w.unsqueeze(0)
    if w.dim() != 2 or w.shape[1] != k:
        raise ConfigError(f"weights need shape ({k},) or (B, {k}) for {k} experts, "
                          f"got {tuple(torch.as_tensor(weights).shape)}")
    if batch is not None and w.shape[0] not in (1, batch):
        raise ConfigError(f"per-sequence weights have {w.shape[0]} rows for {batch} prompts")
    for i, row in enumerate(w):
        where = f"weights row {i} {row.tolist()}" if w.shape[0] > 1 else f"weights {row.tolist()}"
        if not torch.isfinite(row).all():
            raise ConfigError(f"{where} contain NaN or inf")
        if (row < 0).any():
            raise ConfigError(f"{where} contain a negative value; weights must be >= 0")
        if not (row > 0).any():
            raise ConfigError(f"{where} are all zero; at least one expert needs a positive weight")
    return w.to(torch.float32)


def parse_weights(spec: WeightsSpec, objective_names: Sequence[str]) -> torch.Tensor:
    """Weights (K,) from ``"reflection=0.8,empathy=0.5"``, a dict, ``"0.8,0.5,0"`` or a list.

    Named forms may omit objectives (weight 0); an unknown name raises `ObjectiveError` listing
    the known objectives. The result is validated with `check_weights`.
    """
    names = list(objective_names)
    parsed: Mapping[str, Any] | Sequence[Any] | torch.Tensor = spec
    if isinstance(spec, str):
        parts = [p.strip() for p in spec.split(",") if p.strip()]
        parsed = parse_mapping(spec) if any("=" in p for p in parts) else parts
    if isinstance(parsed, Mapping):
        unknown = sorted(str(n) for n in parsed if n not in names)
        if unknown:
            raise ObjectiveError(f"unknown objective(s) {unknown} in weights; known: {names}")
        values: list[Any] = [parsed.get(n, 0.0) for n in names]
    else:
        values = list(parsed.tolist() if isinstance(parsed, torch.Tensor) else parsed)
    try:
        floats = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ConfigError(f"weights must be numbers, got {values!r}") from None
    return check_weights(floats, len(names))[0]


# --- ensemble ----------------------------------------------------------------------------------


class Ensemble:
    """One base model (a PeftModel inside `policy`) plus K named LoRA experts, in objective order.

    `experts` maps objective name -> name of an adapter already on ``policy.model`` (a list means
    adapter name = objective name). Adding an expert never modifies the existing ones
    (EMORL §6, scalability).
    """

    def __init__(self, policy: Policy, experts: Mapping[str, str] | Sequence[str] = ()):
        self.policy = policy
        self._experts: dict[str, str] = {}
        experts = [experts] if isinstance(experts, str) else experts
        pairs = experts.items() if isinstance(experts, Mapping) else ((e, e) for e in experts)
        for objective, adapter in pairs:
            self._register(objective, adapter)

    @classmethod
    def from_adapters(cls, policy: Policy, adapters: Mapping[str, str | Path]) -> Ensemble:
        """Load one saved LoRA adapter folder per objective (adapter name = objective name)."""
        ens = cls(policy)
        for objective, path in adapters.items():
            ens.add_expert(objective, path)
        return ens

    def add_expert(self, name: str, path: str | Path | None = None,
                   adapter_name: str | None = None) -> None:
        """Add objective `name`: load the adapter at `path`, or use an adapter already loaded."""
        adapter = adapter_name or name
        if name in self._experts:
            raise ConfigError(f"objective {name!r} already has an expert; objectives: "
                              f"{self.objectives}")
        if path is not None:
            check_name("expert", adapter)
            if adapter in self._adapters_held():
                raise ConfigError(f"the model already holds an adapter named {adapter!r}")
            load_adapter(self.policy, path, adapter)
        self._register(name, adapter)

    def _register(self, objective: str, adapter: str) -> None:
        check_name("expert", adapter)
        if adapter not in self._adapters_held():
            raise ConfigError(f"the model holds no LoRA adapter named {adapter!r}")
        self._experts[objective] = adapter

    def _adapters_held(self) -> list[str]:
        model = self.policy.model
        return list(model.peft_config) if isinstance(model, PeftModel) else []

    @property
    def objectives(self) -> list[str]:
        return list(self._experts)

    @property
    def adapter_names(self) -> list[str]:
        return list(self._experts.values())

    @property
    def k(self) -> int:
        return len(self._experts)

    @property
    def model(self) -> PeftModel:
        """The base model with the experts' LoRA adapters."""
        model = self.policy.model
        if not isinstance(model, PeftModel):
            raise ConfigError("the ensemble has no experts; add one with Ensemble.add_expert")
        return model

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        return self.policy.tokenizer

    @property
    def is_encoder_decoder(self) -> bool:
        return self.policy.is_encoder_decoder
