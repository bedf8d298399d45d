"""Expert-major mixed-adapter batches: K LoRA experts in ONE forward over K·B rows.

Rows ``k·B … k·B+B-1`` use expert k. Plain LoRA layers use a batched path (two `bmm` per layer
over stacked expert matrices, adapters otherwise disabled; the delta is ``s_k·B_k·A_k·x`` exactly
as PEFT computes it); anything else (DoRA, embedding LoRA) falls back to PEFT's mixed-adapter
batches (the ``adapter_names`` forward argument). Blocks may also differ in size (expert k on
n_k rows, e.g. only the rows that give it a non-zero weight): then each block gets its own pair
of matrix products.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from peft import PeftModel
from peft.tuners.lora import LoraLayer
from peft.tuners.lora.layer import Linear as LoraLinear
from peft.utils import AuxiliaryTrainingWrapper


def lora_layers(model: torch.nn.Module) -> list[Any]:
    """Every LoRA layer of `model` (PEFT's `LoraLayer` modules; their adapters are dynamic)."""
    return [m for m in model.modules() if isinstance(m, LoraLayer)]


def _fast_path_ok(model: torch.nn.Module, layers: list[Any], adapters: list[str]) -> bool:
    """Plain (vanilla, unmerged, nn.Linear-based) LoRA everywhere and no `modules_to_save`
    copies: then the stacked `bmm` path computes exactly what PEFT does."""
    if any(isinstance(m, AuxiliaryTrainingWrapper) for m in model.modules()):
        return False
    for m in layers:
        if not isinstance(m, LoraLinear) or m.merged or getattr(m, "fan_in_fan_out", False):
            return False
        if any(a in getattr(m, "lora_variant", {}) for a in adapters):
            return False
    return True


def _stack(layer: Any, adapters: list[str]) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Per-layer stacks A^T (K, in, R) and (s·B)^T (K, R, out), s = α/r; zeros where an expert
    has no LoRA on this layer; ranks zero-padded to the largest one."""
    present = [a for a in adapters if a in layer.lora_A]
    if not present:
        return None
    rank = max(layer.lora_A[a].weight.shape[0] for a in present)
    w = layer.lora_A[present[0]].weight
    d_in, d_out = w.shape[1], layer.lora_B[present[0]].weight.shape[0]
    a_t = w.new_zeros(len(adapters), d_in, rank)
    b_t = w.new_zeros(len(adapters), rank, d_out)
    for k, a in enumerate(adapters):
        if a in layer.lora_A:
            r = layer.lora_A[a].weight.shape[0]
            a_t[k, :, :r] = layer.lora_A[a].weight.t()
            b_t[k, :r, :] = layer.lora_B[a].weight.t() * layer.scaling[a]
    return a_t, b_t


def _delta_hook(a_t: torch.Tensor, b_t: torch.Tensor, sizes: list[int]) -> Callable[..., Any]:
    """Forward hook adding expert k's LoRA delta x·A_k^T·(s_k·B_k)^T to its block of rows
    (``sizes[k]`` rows, in order; the list is read at every call): two `bmm` over all blocks
    when they are equal, else one pair of matrix products per block."""

    def hook(module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any],
             output: torch.Tensor) -> torch.Tensor:
        x = args[0] if args else kwargs["x"]  # (M, T, in), M = Σ sizes
        if len(set(sizes)) == 1:
            k = len(sizes)
            xa = torch.bmm(x.reshape(k, -1, x.shape[-1]).to(a_t.dtype), a_t)  # (K, B·T, R)
            if output.dtype == b_t.dtype and output.is_contiguous():
                output.view(k, -1, output.shape[-1]).baddbmm_(xa, b_t)  # (K, B·T, out)
                return output
            return output + torch.bmm(xa, b_t).reshape(output.shape).to(output.dtype)
        out = output if output.dtype == b_t.dtype and output.is_contiguous() \
            else output.to(b_t.dtype).contiguous()
        start = 0
        for k, n in enumerate(sizes):
            if n:
                seg = x[start:start + n].reshape(-1, x.shape[-1]).to(a_t.dtype)  # (n·T, in)
                out[start:start + n].view(-1, out.shape[-1]).addmm_(seg @ a_t[k], b_t[k])
            start += n
        return out if out is output else out.to(output.dtype)

    return hook


def _inject_names(adapters: list[str], sizes: list[int]) -> Callable[..., Any]:
    def pre_hook(module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
                 ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        names = [a for a, n in zip(adapters, sizes, strict=True) for _ in range(n)]
        return args, {**kwargs, "adapter_names": names}

    return pre_hook


@contextmanager
def expert_major_batch(model: PeftModel, adapters: list[str],
                       rows_per_expert: int | Sequence[int]) -> Iterator[None]:
    """Inside this context, a batch of K·rows_per_expert rows runs expert k on rows
    ``k·rows … (k+1)·rows-1`` (LoRA delta ``s_k·B_k·A_k·x``), in one forward for all experts.
    A list gives each expert its own number of rows (consecutive blocks, in order); it is read
    at every forward, so the caller may change its entries between forwards."""
    sizes = rows_per_expert if isinstance(rows_per_expert, list) else \
        [rows_per_expert] * len(adapters) if isinstance(rows_per_expert, int) \
        else [int(n) for n in rows_per_expert]
    layers = lora_layers(model)
    handles = []
    try:
        if _fast_path_ok(model, layers, adapters):
            with model.disable_adapter():
                for m in layers:
                    stacks = _stack(m, adapters)
                    if stacks is not None:
                        handles.append(m.register_forward_hook(_delta_hook(*stacks, sizes),
                                                               with_kwargs=True))
                yield
        else:
            for m in [*layers, *(m for m in model.modules()
                                 if isinstance(m, AuxiliaryTrainingWrapper))]:
                handles.append(m.register_forward_pre_hook(_inject_names(adapters, sizes),
                                                           with_kwargs=True))
            yield
    finally:
        for h in handles:
            h.remove()
