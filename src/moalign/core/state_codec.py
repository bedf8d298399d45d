"""Training state as JSON plus a table of tensors: what a checkpoint stores instead of a pickle.

`encode_state` turns a nested value (an optimiser's `state_dict`, RNG states, cursors, histories)
into JSON-ready data; every tensor and numeric numpy array goes into the `tensors` table (saved with
safetensors) and is referred to by its key. `decode_state` reverses it. The codec knows only
None, bools, numbers, strings, lists, tuples, dicts, `torch.Tensor` and numeric `numpy.ndarray`:
reading a state builds nothing else, so a state file cannot run code the way a pickle can.

Markers (dicts with one key starting with ``$``) keep what JSON cannot:

    {"$tuple": [...]}                                  a tuple (RNG states, Adam's betas)
    {"$items": [[key, value], ...]}                    a dict whose keys are not all strings
    {"$tensor": "KEY"}                                 tensors[KEY]
    {"$ndarray": "KEY", "dtype": "<u4", "shape": [..]} a numpy array stored as its bytes (uint8)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

TUPLE, ITEMS, TENSOR, NDARRAY = "$tuple", "$items", "$tensor", "$ndarray"
NUMERIC_KINDS = "biuf"  # numpy dtype kinds an array may have: bool, int, uint, float


class StateFormatError(ValueError):
    """A state file does not follow this codec (a missing tensor, an unknown marker)."""


def _tensor_key(tensors: dict[str, torch.Tensor], where: str) -> str:
    return f"{len(tensors)}:{where}"  # the index makes keys unique whatever `where` holds


def _encode_array(arr: np.ndarray, tensors: dict[str, torch.Tensor], where: str) -> dict[str, Any]:
    if arr.dtype.kind not in NUMERIC_KINDS:
        raise TypeError(f"cannot save the {arr.dtype} array at {where}: only numeric arrays")
    arr = np.ascontiguousarray(arr)
    key = _tensor_key(tensors, where)
    tensors[key] = torch.from_numpy(arr.reshape(-1).view(np.uint8).copy())
    return {NDARRAY: key, "dtype": arr.dtype.str, "shape": list(arr.shape)}


def encode_state(obj: Any, tensors: dict[str, torch.Tensor], where: str = "state") -> Any:
    """`obj` as JSON-ready data; its tensors and arrays are added to `tensors` (CPU,
    contiguous). Anything the codec does not know is a TypeError naming where it is."""
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, torch.Tensor):
        key = _tensor_key(tensors, where)
        tensors[key] = obj.detach().cpu().contiguous()
        return {TENSOR: key}
    if isinstance(obj, np.ndarray):
        return _encode_array(obj, tensors, where)
    if isinstance(obj, np.generic):
        return encode_state(obj.item(), tensors, where)
    if isinstance(obj, tuple):
        return {TUPLE: [encode_state(v, tensors, f"{where}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode_state(v, tensors, f"{where}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in obj):
            return {k: encode_state(v, tensors, f"{where}.{k}") for k, v in obj.items()}
        return {ITEMS: [[encode_state(k, tensors, f"{where}.key"),
                         encode_state(v, tensors, f"{where}.{k}")] for k, v in obj.items()]}
    raise TypeError(f"cannot save a {type(obj).__name__} at {where} in a checkpoint: use "
                    "numbers, strings, lists, tuples, dicts, tensors or numeric numpy arrays")


def _tensor(tensors: dict[str, torch.Tensor], key: object) -> torch.Tensor:
    if not isinstance(key, str) or key not in tensors:
        raise StateFormatError(f"the state refers to a tensor {key!r} that is not stored")
    return tensors[key]


def _decode_array(obj: dict[str, Any], tensors: dict[str, torch.Tensor]) -> np.ndarray:
    try:
        dtype = np.dtype(str(obj["dtype"]))
        shape = tuple(int(n) for n in obj["shape"])
    except (KeyError, TypeError, ValueError):
        raise StateFormatError(f"a stored array has a bad dtype or shape: {obj}") from None
    if dtype.kind not in NUMERIC_KINDS:
        raise StateFormatError(f"a stored array has the non-numeric dtype {dtype}")
    raw = _tensor(tensors, obj[NDARRAY]).numpy().tobytes()
    try:
        return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    except ValueError:
        raise StateFormatError(f"a stored array does not fit its shape {list(shape)}") from None


def decode_state(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Rebuild what `encode_state` wrote, taking tensors from `tensors`."""
    if isinstance(obj, list):
        return [decode_state(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    markers = [k for k in obj if isinstance(k, str) and k.startswith("$")]
    if not markers:
        return {k: decode_state(v, tensors) for k, v in obj.items()}
    if TUPLE in obj and isinstance(obj[TUPLE], list):
        return tuple(decode_state(v, tensors) for v in obj[TUPLE])
    if ITEMS in obj and isinstance(obj[ITEMS], list):
        if not all(isinstance(kv, list) and len(kv) == 2 for kv in obj[ITEMS]):
            raise StateFormatError("a stored mapping has items that are not [key, value] pairs")
        try:
            return {decode_state(k, tensors): decode_state(v, tensors) for k, v in obj[ITEMS]}
        except TypeError:  # a key that cannot be a dict key (a list)
            raise StateFormatError("a stored mapping has an unhashable key") from None
    if TENSOR in obj:
        return _tensor(tensors, obj[TENSOR])
    if NDARRAY in obj:
        return _decode_array(obj, tensors)
    raise StateFormatError(f"unknown marker(s) {markers} in the stored state")
