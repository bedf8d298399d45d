"""Prepacked oneDNN matrix products for the `nn.Linear` layers of a model on the CPU.

On the CPU a float32 `nn.Linear` runs MKL's ``sgemm``. oneDNN's inner product over a weight
reordered once into its blocked layout (``mkldnn::_reorder_linear_weight``, what
``torch.compile`` emits for frozen CPU weights) computes the same product 2-3x faster on
this project's AMD EPYC (AVX-512) for the shapes a policy runs: decoding (12 rows: 0.27 ->
0.11 ms for a 1536x576 weight), the gradient pass (384 rows: 6.5 -> 2.8 ms) and the 49k-row
LM head (12 rows: 14.6 -> 5.4 ms); ``bench/packed_linear.py`` prints the table on any machine.
The sums are accumulated in another order, so outputs differ from MKL's by float rounding
(~1e-6 relative).

`install` turns every plain `nn.Linear` of a model into a `PackedLinear` (the same module, the
same parameters and state dict; only ``forward`` differs). A `PackedLinear` uses a packed copy
of its weight when the input is float32 on the CPU without autocast and the weight needs no
gradient (a frozen base weight, or any weight under ``no_grad``); anything else (CUDA, bf16,
autocast, a trainable weight in a gradient pass) is the ordinary ``F.linear``, and so is a
product of fewer than 4 rows with a weight under 4M entries (one served request: MKL's kernel
is faster there, `bench/packed_linear.py`). The copy is made
on first use and remade when the weight changes (a new tensor, or an in-place update), and the
backward pass (the gradient of the input, ``g·W``) packs the transposed weight on first need.
Memory: one packed copy of each frozen weight used, two once gradients flow through it
(SmolLM2 SCST step, `bench/scst_step.py`: 2.5 -> 3.5 GiB peak RSS, 7.6 -> 4.7 s).
``MOALIGN_PACKED_LINEAR=forward`` packs for the forward only (one copy; the backward's
``g·W`` runs MKL: ~0.8 s more per SCST step, 0.7 GiB less), ``=0`` turns packing off.
"""

from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from moalign.core.errors import ConfigError

MODES = ("all", "forward", "0")
MODE = os.environ.get("MOALIGN_PACKED_LINEAR", "all")  # one of MODES, checked by `available`
PACK_BACKWARD = MODE != "forward"  # "forward": the backward's g·W runs MKL on the dense weight
SLOTS = 2  # packed weights kept per layer: its own weight and one transient (merged LoRA)
FEW_ROWS, LARGE = 4, 2**22  # below FEW_ROWS rows, MKL wins on weights under LARGE entries


def _probe() -> bool:
    """True when this torch build can prepack a linear weight and run it (x86 oneDNN)."""
    try:
        w = torch.ones(4, 3)
        y = _linear(torch.ones(2, 3), _reorder(w), None)
        return bool(torch.allclose(y, torch.full((2, 4), 3.0)))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


def _reorder(weight: torch.Tensor) -> torch.Tensor:
    """The weight (out, in) reordered into oneDNN's blocked layout (an opaque tensor)."""
    with torch.inference_mode(False), torch.no_grad():
        return torch.ops.mkldnn._reorder_linear_weight(weight.detach().contiguous())


def _linear(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x (..., in) @ W^T + b with W prepacked: (..., out)."""
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")


@dataclass
class _Packed:
    """A packed weight and what identifies the dense tensor it was made from. `alias` keeps
    that tensor's storage alive, so an equal storage address means the same storage."""

    key: tuple[Any, ...]
    alias: torch.Tensor
    forward: torch.Tensor
    transposed: torch.Tensor | None = field(default=None)

    def backward(self) -> torch.Tensor:
        """W^T packed (in, out), made on the first backward pass through the layer."""
        if self.transposed is None:
            self.transposed = _reorder(self.alias.t())
        return self.transposed


_CACHE: weakref.WeakKeyDictionary[nn.Module, list[_Packed]] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()
_AVAILABLE: bool | None = None


def available() -> bool:
    """Packing is on (``MOALIGN_PACKED_LINEAR``) and this torch build supports it."""
    global _AVAILABLE
    if _AVAILABLE is None:
        if MODE not in MODES:
            raise ConfigError(f"MOALIGN_PACKED_LINEAR={MODE!r} is not one of {list(MODES)}: "
                              "all (default), forward (pack for the forward only) or 0 (off)")
        _AVAILABLE = MODE != "0" and _probe()
    return _AVAILABLE


def _key(w: torch.Tensor) -> tuple[Any, ...]:
    return (w.untyped_storage().data_ptr(), w.storage_offset(), tuple(w.shape), w.stride(),
            w._version)


def _packed(layer: nn.Linear) -> _Packed:
    """The layer's packed weight for its current weight tensor (made and cached on a miss)."""
    w = layer.weight
    key = _key(w)
    with _LOCK:
        slots = _CACHE.setdefault(layer, [])
        for i, entry in enumerate(slots):
            if entry.key == key:
                slots.insert(0, slots.pop(i))
                return entry
        entry = _Packed(key, w.detach(), _reorder(w))
        slots.insert(0, entry)
        del slots[SLOTS:]
        return entry


def release(layer: nn.Module) -> None:
    """Forget the packed copies of tensors that are no longer the layer's weight (called when a
    transient weight, such as a merged LoRA copy, is put back)."""
    weight = getattr(layer, "weight", None)
    if not isinstance(weight, torch.Tensor):
        return
    key = _key(weight)
    with _LOCK:
        slots = _CACHE.get(layer)
        if slots:
            slots[:] = [e for e in slots if e.key == key]


class _PackedProduct(torch.autograd.Function):
    """y = x·W^T + b with a frozen W: forward and the input gradient g·W both prepacked."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, entry: _Packed,
                bias: torch.Tensor | None) -> torch.Tensor:
        ctx.entry = entry
        ctx.has_bias = bias is not None
        return _linear(x, entry.forward, bias)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor
                 ) -> tuple[torch.Tensor | None, None, torch.Tensor | None]:
        if not ctx.needs_input_grad[0]:
            grad_x = None
        elif PACK_BACKWARD:
            grad_x = _linear(grad.contiguous(), ctx.entry.backward(), None)
        else:
            grad_x = grad @ ctx.entry.alias
        grad_b = grad.reshape(-1, grad.shape[-1]).sum(0) \
            if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, None, grad_b


class PackedLinear(nn.Linear):
    """`nn.Linear` whose CPU float32 forward uses a prepacked oneDNN weight (module docstring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        if x.device.type != "cpu" or x.dtype != torch.float32 or w.dtype != torch.float32 \
                or (w.requires_grad and torch.is_grad_enabled()) \
                or torch.is_autocast_enabled("cpu") or not available() \
                or (x.numel() < FEW_ROWS * x.shape[-1] and w.numel() < LARGE):
            return F.linear(x, w, self.bias)
        entry = _packed(self)
        if torch.is_grad_enabled() and (x.requires_grad or
                                        (self.bias is not None and self.bias.requires_grad)):
            return _PackedProduct.apply(x, entry, self.bias)
        return _linear(x, entry.forward, self.bias)


def install(model: nn.Module) -> int:
    """Every plain `nn.Linear` of `model` becomes a `PackedLinear` (in place, same parameters);
    returns how many. Nothing changes when packing is unavailable."""
    if not available():
        return 0
    layers = [m for m in model.modules() if type(m) is nn.Linear]
    for m in layers:
        m.__class__ = PackedLinear
    return len(layers)


def uninstall(model: nn.Module) -> int:
    """Undo `install` (e.g. before moving a model to an accelerator); returns how many."""
    layers: list[nn.Module] = [m for m in model.modules() if type(m) is PackedLinear]
    for m in layers:
        m.__class__ = nn.Linear
        with _LOCK:
            _CACHE.pop(m, None)
    return len(layers)
