"""transformers' logits processors and stopping criteria for one `Sampling`, for decoders that
run their own token loop (`emorl.decoding`: the experts' logits are combined first, then
processed exactly as ``model.generate`` processes a single model's logits).

`logits_processors` builds the list ``generate`` builds for the same settings, in its order
(transformers ``GenerationMixin._get_logits_processor``): repetition penalty (prompt padding
ignored), n-gram ban, minimum new tokens; then, when sampling, temperature, top-k and top-p.
`choose_tokens` applies it and takes the argmax or one multinomial draw from the softmax, as
``generate`` does. `stop_criteria` is ``generate``'s stop-string criterion; `stop_steps` finds
where it fired in an already generated batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from transformers import (
    LogitsProcessorList,
    MinNewTokensLengthLogitsProcessor,
    NoRepeatNGramLogitsProcessor,
    PreTrainedTokenizerBase,
    RepetitionPenaltyLogitsProcessor,
    StopStringCriteria,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from moalign.sampling import Sampling


def sampling_warpers(sampling: Sampling) -> LogitsProcessorList:
    """Temperature, top-k, top-p: the processors that only act when sampling (none for greedy)."""
    out = LogitsProcessorList()
    if not sampling.do_sample:
        return out
    if sampling.temperature != 1.0:
        out.append(TemperatureLogitsWarper(float(sampling.temperature)))
    if sampling.top_k != 0:
        out.append(TopKLogitsWarper(top_k=int(sampling.top_k), min_tokens_to_keep=1))
    if sampling.top_p < 1.0:
        out.append(TopPLogitsWarper(top_p=float(sampling.top_p), min_tokens_to_keep=1))
    return out


def logits_processors(sampling: Sampling, eos: Sequence[int], prompt_length: int,
                      pad_lengths: torch.Tensor | None = None,
                      device: torch.device | str = "cpu") -> LogitsProcessorList:
    """The processors of ``generate`` for `sampling`. The ids they see are the prompt (causal
    LMs: left-padded, `pad_lengths` (B,) pads per row, excluded from the repetition penalty;
    encoder-decoders: the decoder start token) followed by the generated tokens;
    `prompt_length` is that prefix's length, so ``min_new_tokens`` counts new tokens only."""
    out = LogitsProcessorList()
    if sampling.repetition_penalty != 1.0:
        out.append(RepetitionPenaltyLogitsProcessor(float(sampling.repetition_penalty),
                                                    prompt_ignore_length=pad_lengths))
    if sampling.no_repeat_ngram_size > 0:
        out.append(NoRepeatNGramLogitsProcessor(int(sampling.no_repeat_ngram_size)))
    if sampling.min_new_tokens > 0 and len(eos) > 0:
        out.append(MinNewTokensLengthLogitsProcessor(
            int(prompt_length), int(sampling.min_new_tokens),
            torch.tensor(list(eos), dtype=torch.long, device=device)))
    out.extend(sampling_warpers(sampling))
    return out


def choose_tokens(logits: torch.Tensor, sampling: Sampling, generator: torch.Generator | None,
                  processors: LogitsProcessorList | None = None,
                  ids: torch.Tensor | None = None) -> torch.Tensor:
    """Next tokens (B,) from logits (B, V): run `processors` (default: the sampling warpers,
    which ignore `ids`) with the ids so far (B, T), then argmax (greedy) or one draw from the
    softmax (with `generator`, else the global torch RNG)."""
    procs = sampling_warpers(sampling) if processors is None else processors
    if ids is None:  # the sampling warpers do not read the ids
        ids = logits.new_zeros((logits.shape[0], 0), dtype=torch.long)
    scores = procs(cast(torch.LongTensor, ids), logits) if len(procs) else logits  # (B, V)
    if not sampling.do_sample:
        return scores.argmax(-1)
    return torch.multinomial(scores.softmax(-1), 1, generator=generator).squeeze(-1)


def stop_criteria(sampling: Sampling,
                  tokenizer: PreTrainedTokenizerBase) -> StopStringCriteria | None:
    """transformers' stop-string criterion for ``sampling.stop`` (None without stop strings):
    called with the ids so far (B, T), True for rows whose text now ends with a stop string."""
    if not sampling.stop:
        return None
    return StopStringCriteria(tokenizer=tokenizer, stop_strings=list(sampling.stop))


def stop_steps(ids: torch.Tensor, new: torch.Tensor, criteria: StopStringCriteria
               ) -> torch.Tensor:
    """For a finished generation, the index (N,) of the new token after which each row's text
    first ended with a stop string (``new.shape[1]`` when it never did). `ids` (N, S) is the
    prefix the criterion saw during generation, `new` (N, T) the generated tokens."""
    n, t = new.shape
    first = torch.full((n,), t, dtype=torch.long, device=new.device)
    dummy = torch.zeros(n, 1, device=new.device)  # the criterion ignores the scores
    for step in range(t):
        hit = criteria(torch.cat([ids, new[:, :step + 1]], dim=1), dummy)  # (N,)
        first = torch.where(hit & (first == t), torch.full_like(first, step), first)
    return first
