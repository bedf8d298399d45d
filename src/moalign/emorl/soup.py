"""Parameter-level aggregation, the model-soup baseline (EMORL Eq. 3):
θ = θ0 + Σ_i w_i·α_i/r_i·B_i·A_i, then ordinary ``model.generate``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import torch
from peft import PeftModel

from moalign.emorl.ensemble import Ensemble
from moalign.emorl.lora_batching import lora_layers
from moalign.rollout import encode_prompts, eos_token_ids, inference, pad_token_id
from moalign.sampling import Sampling


def soup_adapter(model: PeftModel, adapters: list[str], weights: Sequence[float]) -> str:
    """Add a temporary adapter with ΔW = Σ_i w_i·α_i/r_i·B_i·A_i exactly (EMORL Eq. 3).

    PEFT's ``combination_type="linear"`` scales A and B by sqrt(w_i·s_i) each and sums them
    separately, which adds cross terms B_i·A_j; ``"cat"`` stacks [w_i·s_i·A_i] and [B_i] so
    B·A = Σ_i w_i·s_i·B_i·A_i with no cross terms. The new adapter's own scaling is forced to 1
    (PEFT sets lora_alpha = r, which is not 1 under rsLoRA). Returns the adapter name.
    """
    name = f"moalign_soup_{uuid.uuid4().hex[:8]}"
    model.add_weighted_adapter(adapters, [float(x) for x in weights], name,
                               combination_type="cat")
    for m in lora_layers(model):
        if name in m.scaling:
            m.scaling[name] = 1.0
    return name


def params_ids(ensemble: Ensemble, prompts: list[str], w: torch.Tensor, sampling: Sampling,
               eos_token_id: int | list[int] | None) -> torch.Tensor:
    """One soup adapter per distinct weight row; one `generate` over a mixed-adapter batch
    (rows are already one per returned sequence: ``num_return_sequences`` is expanded by the
    caller)."""
    model, policy = ensemble.model, ensemble.policy
    rows = [tuple(r) for r in w.cpu().tolist()]
    soups: dict[tuple[float, ...], str] = {}
    kwargs = sampling.hf_kwargs()  # every option as `generate` reads it (stop strings too)
    if eos_token_id == []:  # no stop token: always max_new_tokens
        kwargs["min_new_tokens"] = sampling.max_new_tokens
    try:
        for r in dict.fromkeys(rows):
            soups[r] = soup_adapter(model, ensemble.adapter_names, r)
        enc = encode_prompts(policy, prompts)
        with inference(model), torch.random.fork_rng(devices=[]):
            if sampling.seed is not None:
                torch.manual_seed(int(sampling.seed))
            out = model.generate(
                **enc, adapter_names=[soups[r] for r in rows],
                eos_token_id=eos_token_ids(policy, eos_token_id) or None,
                pad_token_id=pad_token_id(policy), tokenizer=policy.tokenizer, **kwargs)
    finally:
        for name in soups.values():
            model.delete_adapter(name)
    return out[:, 1:] if ensemble.is_encoder_decoder else out[:, enc["input_ids"].shape[1]:]

