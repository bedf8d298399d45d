"""Sampling responses and scoring their tokens, for causal and encoder-decoder policies.

A `Rollout` keeps the query and the response as separate padded tensors: queries are left-padded
for causal LMs (so generation appends on the right) and right-padded for encoder-decoders;
responses are right-padded, and `response_mask` is 1 on every generated token up to and including
the first EOS, 0 after it (our choice: the SCST loss covers EOS; the authors' EMORL code leaves
EOS out).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from moalign.models import Policy, format_prompts
from moalign.sampling import Sampling


@dataclass
class Rollout:
    prompts: list[str]  # (N,) raw prompts, each repeated n times (samples of a prompt contiguous)
    responses: list[str]  # (N,) decoded responses, EOS and later tokens removed
    query_ids: torch.Tensor  # (N, Tq)
    query_mask: torch.Tensor  # (N, Tq)
    response_ids: torch.Tensor  # (N, Tr)
    response_mask: torch.Tensor  # (N, Tr) 1 up to and including EOS

    def __len__(self) -> int:
        return len(self.prompts)

    def select(self, idx: torch.Tensor | list[int]) -> Rollout:
        """Sub-batch (used for minibatches of an experience memory)."""
        idx_list = idx.tolist() if isinstance(idx, torch.Tensor) else list(idx)
        t = torch.as_tensor(idx_list, dtype=torch.long)
        return Rollout([self.prompts[i] for i in idx_list], [self.responses[i] for i in idx_list],
                       self.query_ids[t], self.query_mask[t], self.response_ids[t],
                       self.response_mask[t])


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
        out.append(policy.tokenizer.decode(toks, skip_special_tokens=True).strip())
    return out


@torch.no_grad()
def sample(policy: Policy, prompts: list[str], sampling: Sampling, n: int = 1,
           system: str | None = None, max_prompt_tokens: int = 256) -> Rollout:
    """Generate `n` responses per prompt in eval mode (EMORL §5.1 sampling); a
    ``sampling.seed`` seeds a forked torch RNG (None: the global RNG advances)."""
    repeated = [p for p in prompts for _ in range(n)]
    tok = policy.tokenizer
    enc = tok(format_prompts(policy, repeated, system), return_tensors="pt", padding=True,
              truncation=True, max_length=max_prompt_tokens, add_special_tokens=True)
    enc = {k: v.to(policy.device) for k, v in enc.items()}
    rng = torch.random.fork_rng(devices=[]) if sampling.seed is not None else nullcontext()
    with eval_mode(policy.model), rng:
        if sampling.seed is not None:
            torch.manual_seed(int(sampling.seed))
        out = policy.model.generate(**enc, **sampling.hf_kwargs(), pad_token_id=tok.pad_token_id)
    resp = out if policy.is_encoder_decoder else out[:, enc["input_ids"].shape[1]:]
    if policy.is_encoder_decoder:
        resp = resp[:, 1:]  # drop the decoder start token
    mask = eos_mask(resp, set(eos_token_ids(policy)))
    return Rollout(repeated, decode_responses(policy, resp, mask), enc["input_ids"],
                   enc["attention_mask"], resp, mask)


def _forward_logits(model: torch.nn.Module, r: Rollout, is_ed: bool, **kw: Any) -> Any:
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


def response_logits(model: torch.nn.Module, r: Rollout, is_ed: bool, **kw: Any) -> Any:
    """(logits over the response positions (N, Tr, V), full model output)."""
    out = _forward_logits(model, r, is_ed, **kw)
    tr = r.response_ids.shape[1]
    logits = out.logits if is_ed else out.logits[:, -tr - 1:-1]
    return logits, out


def token_logprobs(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor,
                   temperature: float = 1.0) -> torch.Tensor:
    """log π(y_t | y_<t) of the chosen tokens, 0 on masked positions."""  # (N, T)
    logp = F.log_softmax(logits.float() / temperature, dim=-1)
    return logp.gather(-1, ids.unsqueeze(-1)).squeeze(-1) * mask


def policy_logprobs(policy: Policy, r: Rollout, temperature: float = 1.0) -> torch.Tensor:
    """Token log-probs under the current (trainable) policy, with gradients."""  # (N, Tr)
    logits, _ = response_logits(policy.model, r, policy.is_encoder_decoder)
    return token_logprobs(logits, r.response_ids, r.response_mask, temperature)


@torch.no_grad()
def reference_logprobs(policy: Policy, r: Rollout, temperature: float = 1.0) -> torch.Tensor:
    """Token log-probs under the frozen base model (LoRA adapters disabled)."""  # (N, Tr)
    disable = getattr(policy.model, "disable_adapter", None)
    with disable() if callable(disable) else nullcontext():
        logits, _ = response_logits(policy.model, r, policy.is_encoder_decoder)
    return token_logprobs(logits, r.response_ids, r.response_mask, temperature)
