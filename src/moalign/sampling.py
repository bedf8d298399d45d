"""`Sampling`: the decoding settings of one generation, carried as ONE value everywhere.

Rollouts (`rollout.sample`), the aggregated decoders (`emorl.decoding`, `emorl.soup`), the
evaluation's generation functions, the weight search and the HTTP server all take a
``sampling: Sampling`` instead of loose ``max_new_tokens / do_sample / temperature / top_p /
seed`` keywords, and the settings are validated here, once. Greedy decoding ignores temperature,
top-p and the seed (`key` drops them, so greedy requests compare equal whatever they carry).

To add a setting (top-k, repetition penalty, stop strings): add a field with a default that
keeps today's behaviour, check it in `__post_init__`, and map it in `hf_kwargs` (``generate``)
and in `moalign.emorl.decoding.choose_tokens` (the aggregated decoder).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace
from typing import Any

from moalign.core.config import ConfigError


@dataclass(frozen=True)
class Sampling:
    """How to decode: greedy (``do_sample=False``) or temperature + nucleus (top-p) sampling
    (EMORL §5.1); ``seed`` seeds a private generator (None: the global torch RNG)."""

    max_new_tokens: int = 64
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        bad = []
        if isinstance(self.max_new_tokens, bool) or \
                not isinstance(self.max_new_tokens, numbers.Integral) or self.max_new_tokens < 1:
            bad.append(f"max_new_tokens >= 1 (got {self.max_new_tokens!r})")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            bad.append(f"temperature > 0 (got {self.temperature!r})")
        if not 0 < self.top_p <= 1:
            bad.append(f"0 < top_p <= 1 (got {self.top_p!r})")
        if bad:
            raise ConfigError("invalid sampling settings: need " + ", ".join(bad))

    @classmethod
    def greedy(cls, max_new_tokens: int = 64) -> Sampling:
        """Greedy decoding (argmax at every step)."""
        return cls(max_new_tokens=max_new_tokens)

    def with_seed(self, seed: int | None) -> Sampling:
        """The same settings with another seed (one generation run of an evaluation)."""
        return replace(self, seed=seed)

    def key(self) -> Sampling:
        """The settings that change a decode: greedy drops temperature, top-p and the seed."""
        return self if self.do_sample else Sampling.greedy(self.max_new_tokens)

    def hf_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of transformers' ``generate`` (top-k off: pure nucleus sampling).
        The seed is not among them: callers seed the RNG around ``generate``."""
        if not self.do_sample:
            return {"max_new_tokens": self.max_new_tokens, "do_sample": False}
        return {"max_new_tokens": self.max_new_tokens, "do_sample": True,
                "temperature": self.temperature, "top_p": self.top_p, "top_k": 0}
