"""Decode-time aggregation of single-objective LoRA experts (EMORL §4.1, Appendix 11).

`generate` decodes token by token with per-sequence weights `w` (K,) or (B, K):

* ``states`` (EMORL Eq. 2): ``S_agg = Σ_i w_i·S_i``, ``logits = f_lm_head(S_agg)``. ``S_i`` is the
  hidden state the LM head consumes (final norm applied; T5's ``d_model^-0.5`` scaling applied
  when its embeddings are tied, exactly as `T5ForConditionalGeneration.forward` does).
* ``logits``: ``logits = Σ_i w_i·logits_i`` over the same jointly decoded prefix (a true ensemble
  decode). For a bias-free linear head this equals ``states`` up to rounding, and so would
  ``Σ_i w_i·log p_i`` (it differs from ``Σ_i w_i·logits_i`` by a constant per row, which softmax
  ignores). ``logits_space="probs"`` is the one genuinely different choice: the mixture
  ``p = Σ_i w_i·p_i / Σ_i w_i`` of the experts' next-token distributions.
* ``params`` (model soup, EMORL Eq. 3): ``θ = θ0 + Σ_i w_i·α_i·B_i·A_i``, then ordinary
  ``model.generate``.

The chosen token is fed back to every expert. ``states``/``logits`` run ONE forward per step over
an expert-major batch of K·B rows (rows ``k·B … k·B+B-1`` use expert k) with a KV cache, feeding
only the new token after the first step. Plain LoRA layers use a batched path (two `bmm` per layer
over stacked expert matrices, adapters otherwise disabled); anything else (DoRA, embedding LoRA)
falls back to PEFT's mixed-adapter batches (the ``adapter_names`` forward argument).
`generate_naive` is the paper-style reference: every step re-runs each expert on the whole prefix.

The combined logits go through transformers' logits processors and stopping criteria
(`moalign.processors`), so every `Sampling` option (top-k, repetition penalty, n-gram ban,
minimum new tokens, stop strings, several responses per prompt) means what it means in
``model.generate``: one expert at weight 1 decodes exactly as ``generate`` with that adapter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal, cast

import torch
from transformers import DynamicCache, EncoderDecoderCache, PreTrainedModel

from moalign.core.config import ConfigError
from moalign.emorl.ensemble import Ensemble, WeightsSpec, check_weights, parse_weights
from moalign.emorl.lora_batching import expert_major_batch
from moalign.emorl.soup import params_ids
from moalign.models import base_model
from moalign.processors import choose_tokens, logits_processors, stop_criteria
from moalign.rollout import (
    encode_prompts,
    eos_token_ids,
    inference,
    left_pad_positions,
    pad_token_id,
)
from moalign.sampling import Sampling

Level = Literal["states", "logits", "params"]
LEVELS: tuple[str, ...] = ("states", "logits", "params")
LogitsSpace = Literal["raw", "probs"]
Weights = WeightsSpec | Sequence[Sequence[float]]
"""(K,) weights shared by every prompt (any `WeightsSpec`), or (B, K): row b weights prompt b."""


def head_input_scale(base: PreTrainedModel) -> float | None:
    """Scale applied to the decoder output before the LM head: T5 with tied embeddings
    multiplies by ``d_model^-0.5`` (``config.scale_decoder_outputs`` in transformers 5)."""
    cfg, model_dim = base.config, getattr(base, "model_dim", None)  # T5's d_model
    if not cfg.is_encoder_decoder or model_dim is None:
        return None
    if getattr(cfg, "scale_decoder_outputs", getattr(cfg, "tie_word_embeddings", False)):
        return float(model_dim) ** -0.5
    return None


def project(base: PreTrainedModel, h: torch.Tensor) -> torch.Tensor:
    """logits = f_lm_head(h) (EMORL Eq. 2) in float32; `h` is the decoder's final-norm output."""
    scale = head_input_scale(base)
    if scale is not None:
        h = h * scale
    return base.get_output_embeddings()(h).float()


class _CachedExperts:
    """All K experts as one expert-major batch with a KV cache: expert k decodes the prompt rows
    `groups[k]` (every row, or only those that give it a non-zero weight), M = Σ_k n_k rows.

    `first()` runs the prompt (and, for encoder-decoders, the encoder once per expert) and returns
    each expert's head input at the current position, zero where an expert skips a row;
    `next(tokens)` feeds only the new token. A causal expert computes each distinct token history
    once: the M batch rows map onto fewer *physical* rows (`phys`), one per distinct (expert,
    prompt, tokens so far), since an expert's hidden state depends on nothing else. The search
    repeats its prompts for every weight point, so the prompt is prefilled once per expert, and
    greedy responses of nearby points share their first tokens: a physical row splits (its cache
    is copied, ``reorder_cache``) only when the rows on it choose different tokens.
    `sizes` holds the physical rows per expert (the `expert_major_batch` blocks).
    """

    def __init__(self, base: PreTrainedModel, groups: list[torch.Tensor],
                 enc: dict[str, torch.Tensor]):
        self.base, self.k, self.b = base, len(groups), enc["input_ids"].shape[0]
        self.rows = torch.cat(groups)  # (M,) prompt row of every batch row
        self.expert = torch.cat([torch.full_like(g, k) for k, g in enumerate(groups)])  # (M,)
        self.full = self.rows.numel() == self.k * self.b  # equal blocks: (K, B) by a reshape
        cfg = self.base.config
        self.ed = bool(cfg.is_encoder_decoder)
        self.decoder = self.base.get_decoder()
        self.cache = (EncoderDecoderCache(DynamicCache(config=cfg), DynamicCache(config=cfg))
                      if self.ed else DynamicCache(config=cfg))
        unique, self.phys = self._distinct(enc)  # (P,) rows to prefill, (M,) their physical row
        first_rows = self.rows[unique]  # (P,) prompt row of every physical row
        self.ids = enc["input_ids"][first_rows]  # (P, S)
        self.mask = enc["attention_mask"][first_rows]  # (P, S)
        self.phys_expert = self.expert[unique]  # (P,) expert of every physical row
        self.sizes = torch.bincount(self.phys_expert, minlength=self.k).tolist()

    def _distinct(self, enc: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch rows to prefill (P,), expert-major; the prefilled row of each batch row
        (M,)): one per distinct (expert, prompt) pair (all rows for encoder-decoders)."""
        m = self.rows.numel()
        every = torch.arange(m, device=self.rows.device)
        if self.ed:
            return every, every
        prompt = torch.cat([enc["input_ids"], enc["attention_mask"]], dim=1)  # (B, 2S)
        content = torch.unique(prompt, dim=0, return_inverse=True)[1]  # (B,) prompt text id
        key = self.expert * self.b + content[self.rows]  # (M,) sorted keys: expert-major
        _, inverse = torch.unique(key, return_inverse=True)  # (M,)
        n_unique = int(inverse.max()) + 1
        if n_unique == m:  # nothing shared: the batch rows as they are
            return every, every
        first = torch.full_like(key, m).scatter_reduce_(0, inverse, every, "amin",
                                                        include_self=False)
        return first[:n_unique], inverse

    def _out(self, hidden: torch.Tensor) -> torch.Tensor:
        """Physical rows' last states (P, T, H) -> head inputs (K, B, H), 0 where skipped."""
        last = hidden[:, -1][self.phys]  # (M, H)
        if self.full:
            return last.reshape(self.k, self.b, -1)  # (K, B, H)
        h = last.new_zeros(self.k, self.b, last.shape[-1])
        h[self.expert, self.rows] = last  # skipped (expert, row) pairs stay 0 (weight 0)
        return h

    def first(self) -> torch.Tensor:
        if self.ed:
            self.enc_h = self.base.get_encoder()(input_ids=self.ids, attention_mask=self.mask)[0]
            start = self.base.config.decoder_start_token_id
            return self.next(torch.full((self.b,), start, dtype=torch.long, device=self.ids.device))
        out = self.decoder(input_ids=self.ids, attention_mask=self.mask,
                           position_ids=left_pad_positions(self.mask), cache=self.cache,
                           use_cache=True)
        self.pos = left_pad_positions(self.mask)[:, -1:]  # (P, 1)
        return self._out(out.last_hidden_state)

    def _split(self, tokens: torch.Tensor) -> torch.Tensor:
        """Regroup the batch rows by (physical row, new token): the new physical rows, sorted
        (so still expert-major), copy their parent's cache; returns their tokens (P', 1)."""
        key = self.phys * 2**32 + tokens[self.rows]  # (M,)
        distinct, self.phys = torch.unique(key, return_inverse=True)  # (P',), (M,)
        parent = distinct // 2**32  # (P',) non-decreasing
        n = self.mask.shape[0]
        if parent.numel() != n or not torch.equal(parent, torch.arange(n, device=parent.device)):
            self.cache.reorder_cache(cast(torch.LongTensor, parent))
            self.mask, self.pos = self.mask[parent], self.pos[parent]
            self.phys_expert = self.phys_expert[parent]
            self.sizes[:] = torch.bincount(self.phys_expert, minlength=self.k).tolist()
        return (distinct % 2**32).unsqueeze(1)

    def next(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.ed:
            out = self.decoder(input_ids=tokens[self.rows].unsqueeze(1),
                               encoder_hidden_states=self.enc_h, encoder_attention_mask=self.mask,
                               cache=self.cache, use_cache=True)
            return self._out(out.last_hidden_state)
        ids = self._split(tokens)  # (P, 1)
        self.mask = torch.cat([self.mask, self.mask.new_ones(self.mask.shape[0], 1)], dim=1)
        self.pos = self.pos + 1
        out = self.decoder(input_ids=ids, attention_mask=self.mask, position_ids=self.pos,
                           cache=self.cache, use_cache=True)
        return self._out(out.last_hidden_state)


# --- combining and choosing tokens -------------------------------------------------------------


def combine(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Σ_i w_i·x_i per sequence: x (K, B, D), w (B, K) -> (B, D) (EMORL Eq. 2)."""
    return (w.t().unsqueeze(-1).to(x.dtype) * x).sum(0)


def aggregate_logits(head: Callable[[torch.Tensor], torch.Tensor], h: torch.Tensor,
                     w: torch.Tensor, level: str, logits_space: LogitsSpace = "raw"
                     ) -> torch.Tensor:
    """Next-token logits (B, V) from per-expert head inputs h (K, B, H) and weights w (B, K):
    ``head(Σ w_i·h_i)`` for states (Eq. 2), ``Σ w_i·head(h_i)`` for logits, or the log of the
    mixture ``Σ w_i·softmax(head(h_i)) / Σ w_i`` for logits with ``logits_space="probs"``."""
    if level == "states":
        return head(combine(h, w))
    logits = head(h)  # (K, B, V)
    if logits_space == "probs":  # log Σ_i (w_i/Σw)·p_i, computed stably in log space
        logw = torch.log(w / w.sum(-1, keepdim=True)).t().unsqueeze(-1)  # (K, B, 1)
        return torch.logsumexp(torch.log_softmax(logits.float(), dim=-1) + logw, dim=0)
    return combine(logits, w)


def _decode_loop(next_logits: Callable[[torch.Tensor | None], torch.Tensor],
                 prefix: torch.Tensor, eos: list[int], pad: int, max_new_tokens: int,
                 choose: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 stop: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 on_token: Callable[[torch.Tensor], None] | None = None) -> torch.Tensor:
    """Token-by-token decode with per-sequence EOS and stop criteria: finished rows emit `pad`;
    stops when every row has finished. `prefix` (B, S) starts the ids that `choose` and `stop`
    see (prompt or decoder start, then the new tokens). Returns the new tokens
    (B, T ≤ max_new_tokens), EOS kept."""
    out: list[torch.Tensor] = []
    ids, tokens = prefix, None
    finished = torch.zeros(prefix.shape[0], dtype=torch.bool, device=prefix.device)
    eos_t = torch.tensor(eos, dtype=torch.long, device=prefix.device)
    for _ in range(max_new_tokens):
        logits = next_logits(tokens)  # (B, V)
        tokens = choose(logits, ids).masked_fill(finished, pad)  # (B,)
        out.append(tokens)
        if on_token is not None:  # streaming: the tokens of this step (B,)
            on_token(tokens)
        ids = torch.cat([ids, tokens.unsqueeze(1)], dim=1)  # (B, S + t)
        finished = finished | torch.isin(tokens, eos_t)
        if stop is not None:
            finished = finished | stop(ids, logits)
        if bool(finished.all()):
            break
    return torch.stack(out, dim=1)


def _run_loop(ensemble: Ensemble, enc: dict[str, torch.Tensor],
              next_logits: Callable[..., torch.Tensor], sampling: Sampling,
              generator: torch.Generator | None,
              eos_token_id: int | list[int] | None,
              on_token: Callable[[torch.Tensor], None] | None = None) -> torch.Tensor:
    """The decode loop with ``generate``'s processors and criteria over the same ids it sees:
    the left-padded prompt (causal) or the decoder start token (encoder-decoder)."""
    policy = ensemble.policy
    if generator is None and sampling.seed is not None:
        generator = torch.Generator(device=policy.device).manual_seed(int(sampling.seed))
    eos = eos_token_ids(policy, eos_token_id)
    if ensemble.is_encoder_decoder:
        start = base_model(ensemble.model).config.decoder_start_token_id
        prefix, pads = enc["input_ids"].new_full((enc["input_ids"].shape[0], 1), start), None
    else:
        prefix = enc["input_ids"]  # (B, S)
        pads = (enc["attention_mask"] != 0).int().argmax(dim=1)  # (B,) left pads per row
    procs = logits_processors(sampling, eos, prefix.shape[1], pads, prefix.device)
    return _decode_loop(next_logits, prefix, eos, pad_token_id(policy), sampling.max_new_tokens,
                        lambda x, ids: choose_tokens(x, sampling, generator, procs, ids),
                        stop_criteria(sampling, policy.tokenizer), on_token)


# --- public decoding ---------------------------------------------------------------------------


def _check_args(ensemble: Ensemble, prompts: list[str], weights: Weights, level: str,
                sampling: Sampling) -> torch.Tensor:
    """Validated per-sequence weights (B, K); the sampling settings validate themselves."""
    if ensemble.k == 0:
        raise ConfigError("the ensemble has no experts; add one with Ensemble.add_expert")
    if level not in LEVELS:
        raise ConfigError(f"aggregation level {level!r} is not one of {list(LEVELS)}")
    if not prompts:
        raise ConfigError("no prompts to generate for")
    if not isinstance(sampling, Sampling):
        raise ConfigError(f"sampling must be a moalign.sampling.Sampling, got {sampling!r}")
    if isinstance(weights, str | Mapping):
        weights = parse_weights(weights, ensemble.objectives)
    w = check_weights(weights, ensemble.k, len(prompts))
    return w.expand(len(prompts), -1).to(ensemble.policy.device)  # (B, K)


def _expand(prompts: list[str], w: torch.Tensor, sampling: Sampling
            ) -> tuple[list[str], torch.Tensor, Sampling]:
    """``num_return_sequences`` n: each prompt and its weight row n times in a row (the order
    of ``generate``), then one sequence per row."""
    n = sampling.num_return_sequences
    if n == 1:
        return prompts, w, sampling
    return ([p for p in prompts for _ in range(n)], w.repeat_interleave(n, dim=0),
            replace(sampling, num_return_sequences=1))


def generate_ids(ensemble: Ensemble, prompts: list[str], weights: Weights, level: Level = "states",
                 sampling: Sampling = Sampling(), generator: torch.Generator | None = None,
                 logits_space: LogitsSpace = "raw",
                 eos_token_id: int | list[int] | None = None,
                 on_token: Callable[[torch.Tensor], None] | None = None) -> torch.Tensor:
    """Aggregated decode; returns the new token ids (B, T), EOS kept, `pad` after EOS.

    `weights`: (K,) shared, (B, K) per sequence (row b weights prompt b), a dict or a
    ``"name=value,..."`` string. `prompts` are final texts (apply `format_prompts` first).
    `sampling` (default: greedy, 64 tokens); an explicit `generator` replaces ``sampling.seed``;
    with ``num_return_sequences`` n the rows are n per prompt (B·n, T), as in ``generate``.
    `eos_token_id` overrides the model's stop tokens (``[]``: always `max_new_tokens`).
    `on_token(tokens (B,))` is called after each step (streaming; not at the params level).
    """
    w = _check_args(ensemble, prompts, weights, level, sampling)
    prompts, w, sampling = _expand(prompts, w, sampling)
    if level == "params":
        return params_ids(ensemble, prompts, w, sampling, eos_token_id)
    base = base_model(ensemble.model)
    enc = encode_prompts(ensemble.policy, prompts)
    used = [k for k in range(ensemble.k) if bool(w[:, k].any())]  # zero-weight experts: skip
    adapters, w = [ensemble.adapter_names[k] for k in used], w[:, used]
    groups = [w[:, j].nonzero().squeeze(1) for j in range(len(used))]  # rows with w_k > 0
    experts = _CachedExperts(base, groups, enc)
    with inference(ensemble.model), expert_major_batch(ensemble.model, adapters, experts.sizes):
        h0 = experts.first()  # (K, B, H)

        def next_logits(tokens: torch.Tensor | None) -> torch.Tensor:
            h = h0 if tokens is None else experts.next(tokens)  # (K, B, H)
            return aggregate_logits(lambda x: project(base, x), h, w, level, logits_space)

        return _run_loop(ensemble, enc, next_logits, sampling, generator, eos_token_id,
                         on_token)


def generate(ensemble: Ensemble, prompts: list[str], weights: Weights, level: Level = "states",
             sampling: Sampling = Sampling(), **kwargs: Any) -> list[str]:
    """Aggregated decode (see `generate_ids`) returning the response texts, each cut before its
    first stop string."""
    ids = generate_ids(ensemble, prompts, weights, level, sampling, **kwargs)
    texts = ensemble.tokenizer.batch_decode(ids, skip_special_tokens=True)
    return [sampling.truncate(t) for t in texts]


def _naive_head_inputs(ensemble: Ensemble, enc: dict[str, torch.Tensor],
                       prefix: torch.Tensor) -> torch.Tensor:
    """Re-run every expert separately on the whole prefix (no cache; PEFT ``adapter_names`` with
    one adapter for the whole batch) and return each expert's LM-head input at the last position,
    captured by a hook on the head, so any head scaling is already applied: (K, B, H)."""
    model, base, seen = ensemble.model, base_model(ensemble.model), []
    hook = base.get_output_embeddings().register_forward_pre_hook(
        lambda m, args: seen.append(args[0][:, -1]))
    batch = prefix.shape[0]
    try:
        for adapter in ensemble.adapter_names:
            names = [adapter] * batch
            if ensemble.is_encoder_decoder:
                model(**enc, decoder_input_ids=prefix, use_cache=False, adapter_names=names)
            else:
                ids = torch.cat([enc["input_ids"], prefix], dim=1)
                mask = torch.cat([enc["attention_mask"], torch.ones_like(prefix)], dim=1)
                model(input_ids=ids, attention_mask=mask, position_ids=left_pad_positions(mask),
                      use_cache=False, logits_to_keep=1, adapter_names=names)
    finally:
        hook.remove()
    return torch.stack(seen)


def generate_naive_ids(ensemble: Ensemble, prompts: list[str], weights: Weights,
                       level: Level = "states", sampling: Sampling = Sampling(),
                       generator: torch.Generator | None = None,
                       logits_space: LogitsSpace = "raw",
                       eos_token_id: int | list[int] | None = None) -> torch.Tensor:
    """Reference decode as in the authors' code: each step runs each expert separately on the
    full prefix, without a KV cache. Same maths and outputs as `generate_ids`, O(T²) cost."""
    w = _check_args(ensemble, prompts, weights, level, sampling)
    prompts, w, sampling = _expand(prompts, w, sampling)
    if level == "params":
        raise ConfigError("generate_naive supports the 'states' and 'logits' levels")
    base = base_model(ensemble.model)
    head, enc = base.get_output_embeddings(), encode_prompts(ensemble.policy, prompts)
    start = base.config.decoder_start_token_id if ensemble.is_encoder_decoder else None
    prefix = enc["input_ids"].new_full((len(prompts), 1 if start is not None else 0), start or 0)

    def next_logits(tokens: torch.Tensor | None) -> torch.Tensor:
        nonlocal prefix
        if tokens is not None:
            prefix = torch.cat([prefix, tokens.unsqueeze(1)], dim=1)
        h = _naive_head_inputs(ensemble, enc, prefix)  # (K, B, H), head scaling applied
        return aggregate_logits(lambda x: head(x).float(), h, w, level, logits_space)

    with inference(ensemble.model):
        return _run_loop(ensemble, enc, next_logits, sampling, generator, eos_token_id)


def generate_naive(ensemble: Ensemble, prompts: list[str], weights: Weights,
                   level: Level = "states", sampling: Sampling = Sampling(),
                   **kwargs: Any) -> list[str]:
    """`generate_naive_ids` returning texts (cut before a stop string)."""
    ids = generate_naive_ids(ensemble, prompts, weights, level, sampling, **kwargs)
    texts = ensemble.tokenizer.batch_decode(ids, skip_special_tokens=True)
    return [sampling.truncate(t) for t in texts]
