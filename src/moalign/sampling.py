"""`Sampling`: the decoding settings of one generation, carried as ONE value everywhere.

Rollouts (`rollout.sample`), the aggregated decoders (`emorl.decoding`, `emorl.soup`), the
evaluation's generation functions, the weight search and the HTTP server all take a
``sampling: Sampling`` instead of loose ``max_new_tokens / do_sample / temperature / top_p /
seed`` keywords, and the settings are validated here, once. Greedy decoding ignores temperature,
top-k, top-p and the seed (`key` drops them, so greedy requests compare equal whatever they carry).

The options are transformers' own ``generate`` options with their meaning there: the aggregated
decoder runs its combined logits through transformers' logits processors and stopping criteria
(`moalign.processors`), and `to_generation_config` / `from_generation_config` convert to and
from a `transformers.GenerationConfig`. One deliberate difference: returned *texts* end before a
stop string (as the OpenAI API and vLLM return them); token ids keep it, as transformers does.

To add a setting: add a field with a default that keeps today's behaviour, check it in
`__post_init__`, map it in `to_generation_config` / `from_generation_config` / `hf_kwargs` and,
for the aggregated decoder, in `moalign.processors.logits_processors`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from moalign.core.config import ConfigError

if TYPE_CHECKING:
    from transformers import GenerationConfig

HF_TOP_K_DEFAULT = 50
"""transformers' top-k when a GenerationConfig samples without setting it."""

UNSUPPORTED_OPTIONS: dict[str, Any] = {
    "num_beams": 1, "penalty_alpha": None, "typical_p": 1.0, "min_p": None, "top_h": None,
    "epsilon_cutoff": 0.0, "eta_cutoff": 0.0, "guidance_scale": None, "bad_words_ids": None,
    "sequence_bias": None, "force_words_ids": None, "constraints": None,
    "encoder_repetition_penalty": 1.0, "encoder_no_repeat_ngram_size": 0,
    "exponential_decay_length_penalty": None, "suppress_tokens": None,
    "begin_suppress_tokens": None, "forced_bos_token_id": None, "forced_eos_token_id": None,
    "min_length": 0, "max_time": None, "watermarking_config": None,
    "renormalize_logits": False, "remove_invalid_values": False,
}
"""GenerationConfig settings the aggregated decoder does not implement, with their no-op values:
`from_generation_config` refuses a config that sets one to anything else."""


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclass(frozen=True)
class Sampling:
    """How to decode: greedy (``do_sample=False``) or sampling with temperature, top-k and
    nucleus (top-p) filtering (EMORL §5.1); ``seed`` seeds a private generator (None: the global
    torch RNG). The other options act in both modes, as in transformers' ``generate``:
    ``repetition_penalty`` (CTRL penalty, 1.0 = off), ``no_repeat_ngram_size`` (0 = off),
    ``min_new_tokens`` (EOS suppressed before that), ``stop`` (a row ends once its text ends with
    one of these strings) and ``num_return_sequences`` (responses per prompt; needs sampling)."""

    max_new_tokens: int = 64
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    top_k: int = 0  # 0: off
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    min_new_tokens: int = 0
    stop: tuple[str, ...] = ()
    num_return_sequences: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):  # one stop string given bare
            object.__setattr__(self, "stop", (self.stop,))
        elif not isinstance(self.stop, tuple) and isinstance(self.stop, Sequence):
            object.__setattr__(self, "stop", tuple(self.stop))
        bad = self._problems()
        if bad:
            raise ConfigError("invalid sampling settings: need " + ", ".join(bad))

    def _problems(self) -> list[str]:
        bad = []
        if not _is_int(self.max_new_tokens) or self.max_new_tokens < 1:
            bad.append(f"max_new_tokens >= 1 (got {self.max_new_tokens!r})")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            bad.append(f"temperature > 0 (got {self.temperature!r})")
        if not 0 < self.top_p <= 1:
            bad.append(f"0 < top_p <= 1 (got {self.top_p!r})")
        for name in ("top_k", "no_repeat_ngram_size", "min_new_tokens"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 0:
                bad.append(f"{name} >= 0 (got {getattr(self, name)!r})")
        if not (math.isfinite(self.repetition_penalty) and self.repetition_penalty > 0):
            bad.append(f"repetition_penalty > 0 (got {self.repetition_penalty!r})")
        if not isinstance(self.stop, tuple) or not all(isinstance(s, str) and s
                                                       for s in self.stop):
            bad.append(f"stop = non-empty strings (got {self.stop!r})")
        if not _is_int(self.num_return_sequences) or self.num_return_sequences < 1:
            bad.append(f"num_return_sequences >= 1 (got {self.num_return_sequences!r})")
        elif self.num_return_sequences > 1 and not self.do_sample:
            bad.append("do_sample=true for num_return_sequences > 1 (greedy decoding returns "
                       "the same response every time)")
        return bad

    @classmethod
    def greedy(cls, max_new_tokens: int = 64) -> Sampling:
        """Greedy decoding (argmax at every step)."""
        return cls(max_new_tokens=max_new_tokens)

    def with_seed(self, seed: int | None) -> Sampling:
        """The same settings with another seed (one generation run of an evaluation)."""
        return replace(self, seed=seed)

    def key(self) -> Sampling:
        """The settings that change a decode: greedy drops temperature, top-k, top-p and the
        seed."""
        if self.do_sample:
            return self
        return replace(self, temperature=1.0, top_p=1.0, seed=None, top_k=0)

    def hf_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of transformers' ``generate``; options at their default are left
        out, and top-k is passed as 0 when sampling (transformers would otherwise apply 50).
        The seed is not among them: callers seed the RNG around ``generate``. With stop strings,
        ``generate`` also needs ``tokenizer=``."""
        out: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample}
        if self.do_sample:
            out.update(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k)
        defaults = Sampling()
        for name in ("repetition_penalty", "no_repeat_ngram_size", "min_new_tokens",
                     "num_return_sequences"):
            if getattr(self, name) != getattr(defaults, name):
                out[name] = getattr(self, name)
        if self.stop:
            out["stop_strings"] = list(self.stop)
        return out

    def to_generation_config(self) -> GenerationConfig:
        """These settings as a `transformers.GenerationConfig` (``model.generate(...,
        generation_config=...)`` decodes the same way; the seed is not part of it)."""
        from transformers import GenerationConfig  # lazy: keeps `moalign --help` fast

        return GenerationConfig(**self.hf_kwargs())

    @classmethod
    def from_generation_config(cls, config: GenerationConfig, seed: int | None = None
                               ) -> Sampling:
        """Settings from a `transformers.GenerationConfig`, read as ``generate`` reads it
        (sampling without ``top_k`` uses transformers' 50; no ``max_new_tokens``: 64). Options
        the aggregated decoder does not implement (beam search, min-p, ...) are an error."""
        used = sorted(k for k, off in UNSUPPORTED_OPTIONS.items()
                      if getattr(config, k, None) not in (None, off))
        if used:
            raise ConfigError(f"GenerationConfig options {used} are not supported by moalign's "
                              "decoders; remove them (supported: max_new_tokens, do_sample, "
                              "temperature, top_k, top_p, repetition_penalty, "
                              "no_repeat_ngram_size, min_new_tokens, stop_strings, "
                              "num_return_sequences)")

        def get(name: str, default: Any) -> Any:
            value = getattr(config, name, None)
            return default if value is None else value

        stop = get("stop_strings", ())
        do_sample = bool(get("do_sample", False))
        return cls(max_new_tokens=int(get("max_new_tokens", 64)), do_sample=do_sample,
                   temperature=float(get("temperature", 1.0)), top_p=float(get("top_p", 1.0)),
                   seed=seed, top_k=int(get("top_k", HF_TOP_K_DEFAULT if do_sample else 0)),
                   repetition_penalty=float(get("repetition_penalty", 1.0)),
                   no_repeat_ngram_size=int(get("no_repeat_ngram_size", 0)),
                   min_new_tokens=int(get("min_new_tokens", 0)),
                   stop=(stop,) if isinstance(stop, str) else tuple(stop),
                   num_return_sequences=int(get("num_return_sequences", 1)))

    def truncate(self, text: str) -> str:
        """`text` cut before the first stop string (the text a client receives)."""
        cuts = [i for i in (text.find(s) for s in self.stop) if i >= 0]
        return text[:min(cuts)] if cuts else text
