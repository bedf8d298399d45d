"""Exact shortcuts for LoRA policies: the active adapters folded into the base weights for
sampling, and the check that decides whether a forward is deterministic.

`merged_lora` computes ``W' = W + Σ_a s_a·B_a·A_a`` (the LoRA forward ``W·x + s·B·A·x`` in one
matrix, PEFT's own merge) into *new* tensors and disables the adapters, so a decoding step costs
what the base model costs; on exit the original weight tensors are put back untouched (PEFT's
``merge_adapter`` / ``unmerge_adapter`` would add and subtract in place and drift by rounding
every cycle). The price is one extra copy of the adapted weights while the context is open.
It is exact maths in eval mode (LoRA dropout off); it does nothing in train mode or for anything
but plain LoRA ``Linear`` layers (DoRA, LoRA bias, embedding LoRA, ``modules_to_save``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

import torch
from peft import PeftModel
from peft.tuners.lora import LoraLayer
from peft.tuners.lora.layer import Linear as LoraLinear
from peft.utils import AuxiliaryTrainingWrapper
from torch import nn

from moalign import packed_linear


def dropout_active(model: nn.Module) -> bool:
    """True when a forward of `model` draws dropout masks (a module in train mode with p > 0)."""
    return any(isinstance(m, nn.Dropout) and m.training and m.p > 0 for m in model.modules())


def _mergeable(model: nn.Module) -> list[LoraLinear] | None:
    """The LoRA layers when every one is a plain, unmerged, enabled LoRA Linear whose active
    adapters are vanilla (no DoRA / variant, no LoRA bias) and no `modules_to_save` copy exists;
    else None."""
    if not isinstance(model, PeftModel) or model.training:
        return None
    if any(isinstance(m, AuxiliaryTrainingWrapper) for m in model.modules()):
        return None
    layers: list[LoraLinear] = []
    for m in model.modules():
        if not isinstance(m, LoraLayer):
            continue
        if not isinstance(m, LoraLinear) or m.merged or m.disable_adapters \
                or getattr(m, "fan_in_fan_out", False):
            return None
        layers.append(m)
        for a in m.active_adapters:
            if a in getattr(m, "lora_variant", {}) or \
                    (a in m.lora_B and m.lora_B[a].bias is not None):
                return None
    return layers if layers else None


def merged_weight(layer: LoraLinear, weight: torch.Tensor) -> torch.Tensor | None:
    """A new tensor W + Σ_a s_a·B_a·A_a over the layer's active adapters (out, in), one fused
    ``addmm`` per adapter (a single allocation); None when no active adapter is on the layer."""
    merged = None
    for a in layer.active_adapters:
        if a not in layer.lora_A:
            continue
        b = cast(torch.Tensor, layer.lora_B[a].weight).to(weight.dtype)  # (out, r)
        a_w = cast(torch.Tensor, layer.lora_A[a].weight).to(weight.dtype)  # (r, in)
        scale = float(layer.scaling[a])
        merged = torch.addmm(weight, b, a_w, alpha=scale) if merged is None \
            else merged.addmm_(b, a_w, alpha=scale)
    return merged


@contextmanager
def merged_lora(model: nn.Module) -> Iterator[bool]:
    """Inside, the active LoRA adapters are folded into copies of the base weights and the
    adapters are disabled; yields True, or False when the model does not qualify (then nothing
    changes). Exact in eval mode up to float rounding; restores the original tensors on exit."""
    layers = _mergeable(model)
    if layers is None:
        yield False
        return
    saved: list[tuple[nn.Parameter, torch.Tensor]] = []
    try:
        with torch.no_grad():
            for m in layers:
                w = cast(nn.Parameter, m.get_base_layer().weight)
                merged = merged_weight(m, w.data)
                if merged is not None:
                    saved.append((w, w.data))
                    w.data = merged
        assert isinstance(model, PeftModel)
        with model.disable_adapter():
            yield True
    finally:
        for w, data in saved:
            w.data = data
        for m in layers:  # drop the packed copies of the merged weights
            packed_linear.release(m.get_base_layer())
