"""Sampling responses and scoring their tokens, for causal and encoder-decoder policies.

A `Rollout` keeps the query and the response as separate padded tensors: queries are left-padded
for causal LMs (so generation appends on the right) and right-padded for encoder-decoders;
responses are right-padded, and `response_mask` is 1 on every generated token up to and including
the first EOS, 0 after it (our choice: the SCST loss covers EOS; the authors' EMORL code leaves
EOS out).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, cast

import torch
import torch.nn.functional as F
from peft import PeftModel
from transformers import DynamicCache
from transformers.modeling_outputs import CausalLMOutputWithPast, Seq2SeqLMOutput

from moalign.fastpath import dropout_active, merged_lora
from moalign.models import Policy, autocast, decode_text, format_prompts
from moalign.processors import stop_criteria, stop_steps
from moalign.sampling import Sampling

if TYPE_CHECKING:
    from moalign.models import GenerativeModel

LMOutput = CausalLMOutputWithPast | Seq2SeqLMOutput


@dataclass
class Rollout:
    prompts: list[str]  # (N,) raw prompts, each repeated n times (samples of a prompt contiguous)
    responses: list[str]  # (N,) decoded responses, EOS and later tokens removed
    query_ids: torch.Tensor  # (N, Tq)
    query_mask: torch.Tensor  # (N, Tq)
    response_ids: torch.Tensor  # (N, Tr)
    response_mask: torch.Tensor  # (N, Tr) 1 up to and including EOS
    # (N, Tr) log π(y_t) of the sampled tokens from the sampling pass's own logits (eval mode,
    # `sample(..., logprobs_at=T)`), 0 on masked positions; None when not requested
    logprobs: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.prompts)

    def select(self, idx: torch.Tensor | list[int]) -> Rollout:
        """Sub-batch (used for minibatches of an experience memory)."""
        idx_list = idx.tolist() if isinstance(idx, torch.Tensor) else list(idx)
        t = torch.as_tensor(idx_list, dtype=torch.long)
        return Rollout([self.prompts[i] for i in idx_list], [self.responses[i] for i in idx_list],
                       self.query_ids[t], self.query_mask[t], self.response_ids[t],
                       self.response_mask[t], None if self.logprobs is None else self.logprobs[t])


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode (no LoRA dropout), then restore the previous mode."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@contextmanager
def inference(model: torch.nn.Module) -> Iterator[None]:
    """`eval_mode` + ``torch.inference_mode`` (decoding without autograd)."""
    with eval_mode(model), torch.inference_mode():
        yield


def left_pad_positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids for left-padded rows, as `generate` computes them: (N, T) -> (N, T)."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


def encode_prompts(policy: Policy, prompts: list[str]) -> dict[str, torch.Tensor]:
    """Tokenise prompt texts: left padding for causal LMs, right padding for encoder-decoders."""
    side = "right" if policy.is_encoder_decoder else "left"
    enc = policy.tokenizer(list(prompts), return_tensors="pt", padding=True, padding_side=side)
    return {"input_ids": enc["input_ids"].to(policy.device),
            "attention_mask": enc["attention_mask"].to(policy.device)}


def eos_token_ids(policy: Policy, override: int | list[int] | None = None) -> list[int]:
    """EOS ids: `override`, else the generation config (int or list), else config / tokenizer."""
    if override is not None:
        return [int(e) for e in (override if isinstance(override, list | tuple) else [override])]
    model = policy.model
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if eos is None:
        eos = getattr(model.config, "eos_token_id", None) or policy.tokenizer.eos_token_id
    return [int(e) for e in (eos if isinstance(eos, list | tuple) else [eos])]


def pad_token_id(policy: Policy) -> int:
    pad = getattr(policy.model.generation_config, "pad_token_id", None)
    return int(pad if pad is not None else policy.tokenizer.pad_token_id)


def eos_mask(ids: torch.Tensor, eos_ids: set[int]) -> torch.Tensor:
    """1 on tokens up to and including the first EOS of each row, 0 after it."""  # (N, T)
    is_eos = torch.zeros_like(ids, dtype=torch.bool)
    for e in eos_ids:
        is_eos |= ids == e
    after = torch.cumsum(is_eos.int(), dim=1) - is_eos.int()  # EOS seen strictly before t
    return (after == 0).long()


def decode_responses(policy: Policy, ids: torch.Tensor, mask: torch.Tensor) -> list[str]:
    eos = set(eos_token_ids(policy))
    out = []
    for row, m in zip(ids.tolist(), mask.tolist(), strict=True):
        toks = [t for t, keep in zip(row, m, strict=True) if keep and t not in eos]
        out.append(decode_text(policy.tokenizer, toks).strip())
    return out


MERGED_SAMPLING = True
"""`sample` decodes with the LoRA adapters folded into the base weights (`fastpath.merged_lora`:
exact in eval mode, one extra copy of the adapted weights while it decodes)."""
LOGITS_BUDGET = 512 * 2**20  # bytes of per-step logits `sample` may keep for `logprobs_at`


def prompt_groups(query_ids: torch.Tensor, query_mask: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Runs of identical rows (the n samples of one prompt are contiguous) form groups:
    (first row of every group (G,), group index of every row (N,))."""
    same = (query_ids[1:] == query_ids[:-1]).all(1) & (query_mask[1:] == query_mask[:-1]).all(1)
    starts = torch.cat([same.new_ones(1), ~same])  # (N,) True where a group starts
    return starts.nonzero().squeeze(1), starts.long().cumsum(0) - 1


def prefix_cache(model: GenerativeModel | PeftModel, ids: torch.Tensor, mask: torch.Tensor,
                 rows: torch.Tensor) -> DynamicCache:
    """The KV cache of G distinct left-padded prompts without their last token, computed once
    per prompt and then repeated for the N rows that share them (`rows`: (N,) prompt index):
    (G, Tq) -> a cache of N rows and Tq - 1 positions. Gradients flow through it."""
    cache = DynamicCache(config=model.config)
    head = mask[:, :-1]  # (G, Tq-1)
    model(input_ids=ids[:, :-1], attention_mask=head, position_ids=left_pad_positions(head),
          cache=cache, use_cache=True, logits_to_keep=1)
    # (G, ...) -> (N, ...), index_select; transformers annotates int64 index tensors LongTensor
    cache.reorder_cache(cast(torch.LongTensor, rows.to(ids.device)))
    return cache


def shared_prefill(model: GenerativeModel | PeftModel, unique: Mapping[str, torch.Tensor],
                   rows: torch.Tensor) -> dict[str, DynamicCache]:
    """`generate` keywords that start N samples from one prefill of each of the B distinct
    prompts (`unique`: (B, Tq) input_ids / attention_mask; `rows`: (N,) prompt of each sample);
    ``generate`` then feeds only the last prompt token. Empty when there is nothing to share."""
    if unique["input_ids"].shape[1] < 2 or len(rows) == unique["input_ids"].shape[0]:
        return {}
    device = next(model.parameters()).device
    return {"cache": prefix_cache(model, unique["input_ids"].to(device),
                                  unique["attention_mask"].to(device), rows)}


@torch.no_grad()
def sample(policy: Policy, prompts: list[str], sampling: Sampling, n: int = 1,
           system: str | None = None, max_prompt_tokens: int = 256,
           logprobs_at: float | None = None) -> Rollout:
    """Generate `n` responses per prompt in eval mode (EMORL §5.1 sampling); a
    ``sampling.seed`` seeds a forked torch RNG (None: the global RNG advances).

    `logprobs_at` = T also returns ``Rollout.logprobs``: log softmax(z/T) of the sampled tokens,
    z the raw logits ``generate`` computed anyway (``output_logits``), which saves the eval-mode
    forward that would recompute them (MOLMA's log π at rollout time); skipped (None) when the
    per-step logits would need more than `LOGITS_BUDGET` bytes.

    ``sampling.num_return_sequences`` m multiplies `n` (n·m responses per prompt, contiguous).
    With stop strings, `response_mask` also ends at the token that completed one, and the
    response text ends before it."""
    n, sampling = n * sampling.num_return_sequences, replace(sampling, num_return_sequences=1)
    repeated = [p for p in prompts for _ in range(n)]
    tok = policy.tokenizer
    unique = tok(format_prompts(policy, list(prompts), system), return_tensors="pt",
                 padding=True, truncation=True, max_length=max_prompt_tokens,
                 add_special_tokens=True)  # (B, Tq): the n copies of a row pad alike
    rows = torch.arange(len(prompts)).repeat_interleave(n)  # (N,) prompt of each sample
    enc = {k: v[rows].to(policy.device) for k, v in unique.items()}
    rng = torch.random.fork_rng(devices=[]) if sampling.seed is not None else nullcontext()
    with eval_mode(policy.model), rng, autocast(policy), merged_lora(policy.model) \
            if MERGED_SAMPLING else nullcontext():
        if sampling.seed is not None:
            torch.manual_seed(int(sampling.seed))
        kw = {} if policy.is_encoder_decoder else shared_prefill(policy.model, unique, rows)
        keep = logprobs_at is not None and len(repeated) * sampling.max_new_tokens * \
            len(policy.tokenizer) * 4 <= LOGITS_BUDGET
        gen = policy.model.generate(**enc, **sampling.hf_kwargs(), pad_token_id=tok.pad_token_id,
                                    tokenizer=tok, output_logits=keep,
                                    return_dict_in_generate=keep, **kw)
    out = gen.sequences if keep else gen  # (N, Tq+Tr)
    prefix = out[:, :1] if policy.is_encoder_decoder else enc["input_ids"]  # ids before resp
    resp = out[:, prefix.shape[1]:]  # T5: the decoder start token dropped
    mask = eos_mask(resp, set(eos_token_ids(policy)))
    criteria = stop_criteria(sampling, tok)
    if criteria is not None:
        steps = stop_steps(prefix, resp, criteria)  # (N,)
        mask = mask * (torch.arange(resp.shape[1], device=resp.device) <= steps[:, None]).long()
    texts = [sampling.truncate(t).strip() for t in decode_responses(policy, resp, mask)]
    logp = None
    if keep and logprobs_at is not None:
        logits = torch.stack(gen.logits, dim=1)  # (N, Tr, V) raw, before any processor
        logp = token_logprobs(logits, resp, mask, logprobs_at)  # (N, Tr)
    return Rollout(repeated, texts, enc["input_ids"], enc["attention_mask"], resp, mask, logp)


def _forward_logits(model: GenerativeModel | PeftModel, r: Rollout, is_ed: bool,
                    **kw: object) -> LMOutput:
    """Run the model over query+response; return the output whose logits predict the response."""
    if is_ed:
        start = model.config.decoder_start_token_id if hasattr(model, "config") else 0
        dec_in = torch.cat([torch.full_like(r.response_ids[:, :1], start),
                            r.response_ids[:, :-1]], dim=1)
        return model(input_ids=r.query_ids, attention_mask=r.query_mask,
                     decoder_input_ids=dec_in, decoder_attention_mask=r.response_mask, **kw)
    ids = torch.cat([r.query_ids, r.response_ids], dim=1)  # (N, Tq+Tr)
    attn = torch.cat([r.query_mask, r.response_mask], dim=1)
    return model(input_ids=ids, attention_mask=attn, position_ids=left_pad_positions(attn), **kw)


def response_logits(model: GenerativeModel | PeftModel, r: Rollout, is_ed: bool,
                    **kw: object) -> tuple[torch.Tensor, LMOutput]:
    """(logits over the response positions (N, Tr, V), full model output). Causal LMs run the
    LM head only on the Tr positions that predict the response (``logits_to_keep`` as an index
    tensor: a contiguous gather, so the head is one matrix product instead of a broadcast
    batched one)."""
    if not is_ed:
        tq, tr = r.query_ids.shape[1], r.response_ids.shape[1]
        positions = torch.arange(tq - 1, tq + tr - 1, device=r.query_ids.device)  # (Tr,)
        kw = {**kw, "logits_to_keep": positions}
    out = _forward_logits(model, r, is_ed, **kw)
    if out.logits is None:
        raise ValueError(f"{type(model).__name__} returned no logits; use a language model")
    return out.logits, out


def shared_prefix_logits(model: GenerativeModel | PeftModel, r: Rollout) -> torch.Tensor | None:
    """Causal logits (N, Tr, V) predicting the response tokens, each distinct prompt run once:
    its KV cache (all but its last token) is computed for one row and repeated for the samples
    that share it (`prefix_cache`), then only [last prompt token, response[:-1]] runs per row.
    The same maths as `response_logits`; None when nothing is shared, or when the forward draws
    dropout masks (the n samples would then share one mask on the prompt)."""
    first, rows = prompt_groups(r.query_ids, r.query_mask)
    if len(first) == len(rows) or r.query_ids.shape[1] < 2 or dropout_active(model):
        return None
    cache = prefix_cache(model, r.query_ids[first], r.query_mask[first], rows)
    attn = torch.cat([r.query_mask, r.response_mask[:, :-1]], dim=1)  # (N, Tq+Tr-1)
    ids = torch.cat([r.query_ids[:, -1:], r.response_ids[:, :-1]], dim=1)  # (N, Tr)
    out = model(input_ids=ids, attention_mask=attn, cache=cache, use_cache=True,
                position_ids=left_pad_positions(attn)[:, -ids.shape[1]:])
    return out.logits


def logits_for_response(policy: Policy, r: Rollout) -> torch.Tensor:
    """Logits (N, Tr, V) predicting the response tokens by the cheapest exact path."""
    if not policy.is_encoder_decoder:
        shared = shared_prefix_logits(policy.model, r)
        if shared is not None:
            return shared
    return response_logits(policy.model, r, policy.is_encoder_decoder)[0]


def token_logprobs(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor,
                   temperature: float = 1.0) -> torch.Tensor:
    """log π(y_t | y_<t) of the chosen tokens, 0 on masked positions."""  # (N, T)
    z = logits.float()
    logp = F.log_softmax(z if temperature == 1.0 else z / temperature, dim=-1)
    return logp.gather(-1, ids.unsqueeze(-1)).squeeze(-1) * mask


def policy_logprobs(policy: Policy, r: Rollout, temperature: float = 1.0) -> torch.Tensor:
    """Token log-probs under the current (trainable) policy, with gradients (autocast at the
    policy's precision for a gradient pass)."""  # (N, Tr)
    with autocast(policy, training=True):
        logits = logits_for_response(policy, r)
    return token_logprobs(logits, r.response_ids, r.response_mask, temperature)


@torch.no_grad()
def reference_logprobs(policy: Policy, r: Rollout, temperature: float = 1.0) -> torch.Tensor:
    """Token log-probs under the frozen base model (LoRA adapters disabled)."""  # (N, Tr)
    disable = getattr(policy.model, "disable_adapter", None)
    with disable() if callable(disable) else nullcontext(), autocast(policy, training=True):
        logits = logits_for_response(policy, r)  # the policy's precision: a fair KL
    return token_logprobs(logits, r.response_ids, r.response_mask, temperature)
