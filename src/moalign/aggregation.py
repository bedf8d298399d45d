"""Decode-time aggregation of single-objective LoRA experts (EMORL §4.1, Appendix 11; SPEC §3).

An `Ensemble` is one shared base model (a PeftModel) plus K named LoRA experts, one per
objective. `generate` decodes token by token with per-sequence weights `w` (K,) or (B, K):

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
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import torch

from moalign.config import ConfigError, parse_mapping
from moalign.errors import ObjectiveError
from moalign.models import Policy, load_adapter

Level = Literal["states", "logits", "params"]
LEVELS: tuple[str, ...] = ("states", "logits", "params")
LogitsSpace = Literal["raw", "probs"]
_ADAPTER_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")


def check_adapter_name(adapter: str) -> None:
    """Expert adapter names appear in ``--weights name=value`` lists and in PEFT state-dict keys;
    a name inside ``lora_`` (e.g. ``lora``, ``a``) makes PEFT mistake its weights for LoRA
    prefixes when loading, so it is refused."""
    if not _ADAPTER_NAME.match(adapter):
        raise ConfigError(f"expert name {adapter!r} must match {_ADAPTER_NAME.pattern}")
    if adapter in "lora_":
        raise ConfigError(f"expert name {adapter!r} is part of PEFT's 'lora_' prefix; "
                          "pick a longer name")


# --- weights -----------------------------------------------------------------------------------


def check_weights(weights: Any, k: int, batch: int | None = None) -> torch.Tensor:
    """Validated weights as a float32 (B, K) tensor (B = 1 for (K,)): finite, >= 0, at least
    one positive per row (EMORL §4.1 uses w_i ∈ [0, 1]; larger values are allowed since greedy
    states/logits decoding only depends on ratios). `ConfigError` names the offending row."""
    try:
        w = torch.as_tensor(weights, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError) as e:
        raise ConfigError(f"weights must be numbers, got {weights!r}: {e}") from None
    if w.dim() == 1:
        w = w.unsqueeze(0)
    if w.dim() != 2 or w.shape[1] != k:
        raise ConfigError(f"weights need shape ({k},) or (B, {k}) for {k} experts, "
                          f"got {tuple(torch.as_tensor(weights).shape)}")
    if batch is not None and w.shape[0] not in (1, batch):
        raise ConfigError(f"per-sequence weights have {w.shape[0]} rows for {batch} prompts")
    for i, row in enumerate(w):
        where = f"weights row {i} {row.tolist()}" if w.shape[0] > 1 else f"weights {row.tolist()}"
        if not torch.isfinite(row).all():
            raise ConfigError(f"{where} contain NaN or inf")
        if (row < 0).any():
            raise ConfigError(f"{where} contain a negative value; weights must be >= 0")
        if not (row > 0).any():
            raise ConfigError(f"{where} are all zero; at least one expert needs a positive weight")
    return w.to(torch.float32)


def parse_weights(spec: Any, objective_names: Sequence[str]) -> torch.Tensor:
    """Weights (K,) from ``"reflection=0.8,empathy=0.5"``, a dict, ``"0.8,0.5,0"`` or a list.

    Named forms may omit objectives (weight 0); an unknown name raises `ObjectiveError` listing
    the known objectives. The result is validated with `check_weights`.
    """
    names = list(objective_names)
    if isinstance(spec, str):
        parts = [p.strip() for p in spec.split(",") if p.strip()]
        spec = parse_mapping(spec) if any("=" in p for p in parts) else parts
    if isinstance(spec, Mapping):
        unknown = sorted(str(n) for n in spec if n not in names)
        if unknown:
            raise ObjectiveError(f"unknown objective(s) {unknown} in weights; known: {names}")
        values: list[Any] = [spec.get(n, 0.0) for n in names]
    else:
        values = list(spec.tolist() if isinstance(spec, torch.Tensor) else spec)
    try:
        floats = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ConfigError(f"weights must be numbers, got {values!r}") from None
    return check_weights(floats, len(names))[0]


# --- ensemble ----------------------------------------------------------------------------------


class Ensemble:
    """One base model (a PeftModel inside `policy`) plus K named LoRA experts, in objective order.

    `experts` maps objective name -> name of an adapter already on ``policy.model`` (a list means
    adapter name = objective name). Adding an expert never modifies the existing ones (B2).
    """

    def __init__(self, policy: Policy, experts: Mapping[str, str] | Sequence[str] = ()):
        self.policy = policy
        self._experts: dict[str, str] = {}
        experts = [experts] if isinstance(experts, str) else experts
        pairs = experts.items() if isinstance(experts, Mapping) else ((e, e) for e in experts)
        for objective, adapter in pairs:
            self._register(objective, adapter)

    @classmethod
    def from_adapters(cls, policy: Policy, adapters: Mapping[str, str | Path]) -> Ensemble:
        """Load one saved LoRA adapter folder per objective (adapter name = objective name)."""
        ens = cls(policy)
        for objective, path in adapters.items():
            ens.add_expert(objective, path)
        return ens

    def add_expert(self, name: str, path: str | Path | None = None,
                   adapter_name: str | None = None) -> None:
        """Add objective `name`: load the adapter at `path`, or use an adapter already loaded."""
        adapter = adapter_name or name
        if name in self._experts:
            raise ConfigError(f"objective {name!r} already has an expert; objectives: "
                              f"{self.objectives}")
        if path is not None:
            check_adapter_name(adapter)
            if adapter in getattr(self.model, "peft_config", {}):
                raise ConfigError(f"the model already holds an adapter named {adapter!r}")
            load_adapter(self.policy, path, adapter)
        self._register(name, adapter)

    def _register(self, objective: str, adapter: str) -> None:
        check_adapter_name(adapter)
        if adapter not in getattr(self.model, "peft_config", {}):
            raise ConfigError(f"the model holds no LoRA adapter named {adapter!r}")
        self._experts[objective] = adapter

    @property
    def objectives(self) -> list[str]:
        return list(self._experts)

    @property
    def adapter_names(self) -> list[str]:
        return list(self._experts.values())

    @property
    def k(self) -> int:
        return len(self._experts)

    @property
    def model(self) -> Any:
        return self.policy.model

    @property
    def tokenizer(self) -> Any:
        return self.policy.tokenizer

    @property
    def is_encoder_decoder(self) -> bool:
        return self.policy.is_encoder_decoder

    def parse_weights(self, spec: Any) -> torch.Tensor:
        return parse_weights(spec, self.objectives)

    def generate(self, prompts: list[str], weights: Any, **kwargs: Any) -> list[str]:
        """Shortcut for `generate(self, prompts, weights, **kwargs)`."""
        return generate(self, prompts, weights, **kwargs)


# --- model helpers -----------------------------------------------------------------------------


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


def _base(model: Any) -> Any:
    """The transformers model under PEFT (LlamaForCausalLM, T5ForConditionalGeneration, ...)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def head_input_scale(base: Any) -> float | None:
    """Scale applied to the decoder output before the LM head: T5 with tied embeddings
    multiplies by ``d_model^-0.5`` (``config.scale_decoder_outputs`` in transformers 5)."""
    cfg = base.config
    if not cfg.is_encoder_decoder or not hasattr(base, "model_dim"):
        return None
    if getattr(cfg, "scale_decoder_outputs", getattr(cfg, "tie_word_embeddings", False)):
        return float(base.model_dim) ** -0.5
    return None


def project(base: Any, h: torch.Tensor) -> torch.Tensor:
    """logits = f_lm_head(h) (EMORL Eq. 2) in float32; `h` is the decoder's final-norm output."""
    scale = head_input_scale(base)
    if scale is not None:
        h = h * scale
    return base.get_output_embeddings()(h).float()


@contextmanager
def _inference(model: Any) -> Iterator[None]:
    """eval mode (no LoRA dropout) + inference_mode; restores the training flag afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)


# --- expert-major mixed-adapter batches --------------------------------------------------------


def _lora_layers(model: Any) -> list[Any]:
    from peft.tuners.lora import LoraLayer

    return [m for m in model.modules() if isinstance(m, LoraLayer)]


def _fast_path_ok(model: Any, layers: list[Any], adapters: list[str]) -> bool:
    """Plain (vanilla, unmerged, nn.Linear-based) LoRA everywhere and no `modules_to_save`
    copies: then the stacked `bmm` path computes exactly what PEFT does."""
    from peft.tuners.lora.layer import Linear as LoraLinear
    from peft.utils import AuxiliaryTrainingWrapper

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


def _bmm_hook(a_t: torch.Tensor, b_t: torch.Tensor) -> Callable[..., Any]:
    """Forward hook adding expert k's LoRA delta x·A_k^T·(s_k·B_k)^T to its block of rows."""
    k = a_t.shape[0]

    def hook(module: Any, args: tuple, kwargs: dict, output: torch.Tensor) -> torch.Tensor:
        x = args[0] if args else kwargs["x"]
        xa = torch.bmm(x.reshape(k, -1, x.shape[-1]).to(a_t.dtype), a_t)  # (K, B·T, R)
        if output.dtype == b_t.dtype and output.is_contiguous():
            output.view(k, -1, output.shape[-1]).baddbmm_(xa, b_t)  # (K, B·T, out), in place
            return output
        return output + torch.bmm(xa, b_t).reshape(output.shape).to(output.dtype)

    return hook


def _inject_names(names: list[str]) -> Callable[..., Any]:
    def pre_hook(module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        return args, {**kwargs, "adapter_names": names}

    return pre_hook


@contextmanager
def expert_major_batch(model: Any, adapters: list[str], rows_per_expert: int) -> Iterator[None]:
    """Inside this context, a batch of K·rows_per_expert rows runs expert k on rows
    ``k·rows … (k+1)·rows-1`` (LoRA delta ``s_k·B_k·A_k·x``), in one forward for all experts."""
    from peft.utils import AuxiliaryTrainingWrapper

    layers = _lora_layers(model)
    handles = []
    try:
        if _fast_path_ok(model, layers, adapters):
            with model.disable_adapter():
                for m in layers:
                    stacks = _stack(m, adapters)
                    if stacks is not None:
                        handles.append(m.register_forward_hook(_bmm_hook(*stacks),
                                                               with_kwargs=True))
                yield
        else:
            names = [a for a in adapters for _ in range(rows_per_expert)]
            for m in [*layers, *(m for m in model.modules()
                                 if isinstance(m, AuxiliaryTrainingWrapper))]:
                handles.append(m.register_forward_pre_hook(_inject_names(names),
                                                           with_kwargs=True))
            yield
    finally:
        for h in handles:
            h.remove()


class _CachedExperts:
    """All K experts as one expert-major batch (K·B rows) with a KV cache.

    `first()` runs the prompt (and, for encoder-decoders, the encoder once per expert) and returns
    each expert's head input at the current position; `next(tokens)` feeds only the new token.
    """

    def __init__(self, base: Any, k: int, enc: dict[str, torch.Tensor]):
        from transformers import DynamicCache, EncoderDecoderCache

        self.base, self.k, self.b = base, k, enc["input_ids"].shape[0]
        self.ids = enc["input_ids"].repeat(self.k, 1)  # (K·B, S)
        self.mask = enc["attention_mask"].repeat(self.k, 1)  # (K·B, S)
        cfg = self.base.config
        self.ed = bool(cfg.is_encoder_decoder)
        self.decoder = self.base.get_decoder()
        self.cache = (EncoderDecoderCache(DynamicCache(config=cfg), DynamicCache(config=cfg))
                      if self.ed else DynamicCache(config=cfg))

    def _out(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden[:, -1].reshape(self.k, self.b, -1)  # (K, B, H)

    def first(self) -> torch.Tensor:
        if self.ed:
            self.enc_h = self.base.get_encoder()(input_ids=self.ids, attention_mask=self.mask)[0]
            start = self.base.config.decoder_start_token_id
            return self.next(torch.full((self.b,), start, dtype=torch.long, device=self.ids.device))
        self.pos = (self.mask.long().cumsum(-1) - 1).clamp(min=0)  # (K·B, S)
        out = self.decoder(input_ids=self.ids, attention_mask=self.mask, position_ids=self.pos,
                           past_key_values=self.cache, use_cache=True)
        self.pos = self.pos[:, -1:]
        return self._out(out.last_hidden_state)

    def next(self, tokens: torch.Tensor) -> torch.Tensor:
        ids = tokens.repeat(self.k).unsqueeze(1)  # (K·B, 1)
        if self.ed:
            out = self.decoder(input_ids=ids, encoder_hidden_states=self.enc_h,
                               encoder_attention_mask=self.mask, past_key_values=self.cache,
                               use_cache=True)
            return self._out(out.last_hidden_state)
        self.mask = torch.cat([self.mask, self.mask.new_ones(self.mask.shape[0], 1)], dim=1)
        self.pos = self.pos + 1
        out = self.decoder(input_ids=ids, attention_mask=self.mask, position_ids=self.pos,
                           past_key_values=self.cache, use_cache=True)
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


def choose_tokens(logits: torch.Tensor, do_sample: bool, temperature: float, top_p: float,
                  generator: torch.Generator | None) -> torch.Tensor:
    """Greedy argmax, or sampling with temperature then nucleus (top-p) filtering; (B,)."""
    if not do_sample:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1)  # ascending, like HF TopPLogitsWarper
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum <= 1 - top_p
        drop[..., -1] = False  # always keep the most likely token
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    probs = logits.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _decode_loop(next_logits: Callable[[torch.Tensor | None], torch.Tensor], batch: int,
                 eos: list[int], pad: int, max_new_tokens: int,
                 choose: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Token-by-token decode with per-sequence EOS: finished rows emit `pad`; stops when every
    row has finished. Returns the new tokens (B, T ≤ max_new_tokens), EOS kept."""
    out: list[torch.Tensor] = []
    tokens = finished = eos_t = None
    for _ in range(max_new_tokens):
        logits = next_logits(tokens)  # (B, V)
        if finished is None:
            finished = torch.zeros(batch, dtype=torch.bool, device=logits.device)
            eos_t = torch.tensor(eos, dtype=torch.long, device=logits.device)
        tokens = choose(logits).masked_fill(finished, pad)  # (B,)
        out.append(tokens)
        finished = finished | torch.isin(tokens, eos_t)
        if bool(finished.all()):
            break
    return torch.stack(out, dim=1)


def _run_loop(ensemble: Ensemble, batch: int, next_logits: Callable[..., torch.Tensor],
              max_new_tokens: int, do_sample: bool, temperature: float, top_p: float,
              seed: int | None, generator: torch.Generator | None,
              eos_token_id: int | list[int] | None) -> torch.Tensor:
    policy = ensemble.policy
    if generator is None and seed is not None:
        generator = torch.Generator(device=policy.device).manual_seed(int(seed))
    return _decode_loop(next_logits, batch, eos_token_ids(policy, eos_token_id),
                        pad_token_id(policy), max_new_tokens,
                        lambda x: choose_tokens(x, do_sample, temperature, top_p, generator))


# --- public decoding ---------------------------------------------------------------------------


def _check_args(ensemble: Ensemble, prompts: list[str], weights: Any, level: str,
                max_new_tokens: int, temperature: float, top_p: float) -> torch.Tensor:
    if ensemble.k == 0:
        raise ConfigError("the ensemble has no experts; add one with Ensemble.add_expert")
    if level not in LEVELS:
        raise ConfigError(f"aggregation level {level!r} is not one of {list(LEVELS)}")
    if not prompts:
        raise ConfigError("no prompts to generate for")
    if max_new_tokens < 1 or temperature <= 0 or not 0 < top_p <= 1:
        raise ConfigError(f"need max_new_tokens >= 1, temperature > 0 and 0 < top_p <= 1; got "
                          f"{max_new_tokens}, {temperature}, {top_p}")
    if isinstance(weights, str | Mapping):
        weights = parse_weights(weights, ensemble.objectives)
    w = check_weights(weights, ensemble.k, len(prompts))
    return w.expand(len(prompts), -1).to(ensemble.policy.device)  # (B, K)


def generate_ids(ensemble: Ensemble, prompts: list[str], weights: Any, level: Level = "states",
                 max_new_tokens: int = 64, do_sample: bool = False, temperature: float = 1.0,
                 top_p: float = 1.0, seed: int | None = None,
                 generator: torch.Generator | None = None,
                 logits_space: LogitsSpace = "raw",
                 eos_token_id: int | list[int] | None = None) -> torch.Tensor:
    """Aggregated decode; returns the new token ids (B, T), EOS kept, `pad` after EOS.

    `weights`: (K,) shared, (B, K) per sequence (row b weights prompt b), a dict or a
    ``"name=value,..."`` string. `prompts` are final texts (apply `format_prompts` first).
    `eos_token_id` overrides the model's stop tokens (``[]``: always `max_new_tokens`).
    """
    w = _check_args(ensemble, prompts, weights, level, max_new_tokens, temperature, top_p)
    if level == "params":
        return _params_ids(ensemble, prompts, w, max_new_tokens, do_sample, temperature, top_p,
                           seed, eos_token_id)
    base = _base(ensemble.model)
    enc = encode_prompts(ensemble.policy, prompts)
    used = [k for k in range(ensemble.k) if bool(w[:, k].any())]  # zero-weight experts: skip
    adapters, w = [ensemble.adapter_names[k] for k in used], w[:, used]
    with _inference(ensemble.model), expert_major_batch(ensemble.model, adapters, len(prompts)):
        experts = _CachedExperts(base, len(adapters), enc)

        def next_logits(tokens: torch.Tensor | None) -> torch.Tensor:
            h = experts.first() if tokens is None else experts.next(tokens)  # (K, B, H)
            return aggregate_logits(lambda x: project(base, x), h, w, level, logits_space)

        return _run_loop(ensemble, len(prompts), next_logits, max_new_tokens, do_sample,
                         temperature, top_p, seed, generator, eos_token_id)


def generate(ensemble: Ensemble, prompts: list[str], weights: Any, level: Level = "states",
             max_new_tokens: int = 64, **kwargs: Any) -> list[str]:
    """Aggregated decode (see `generate_ids`) returning the response texts."""
    ids = generate_ids(ensemble, prompts, weights, level, max_new_tokens, **kwargs)
    return ensemble.tokenizer.batch_decode(ids, skip_special_tokens=True)


# --- params level (model soup) -----------------------------------------------------------------


def soup_adapter(model: Any, adapters: list[str], weights: Sequence[float]) -> str:
    """Add a temporary adapter with ΔW = Σ_i w_i·α_i/r_i·B_i·A_i exactly (EMORL Eq. 3).

    PEFT's ``combination_type="linear"`` scales A and B by sqrt(w_i·s_i) each and sums them
    separately, which adds cross terms B_i·A_j; ``"cat"`` stacks [w_i·s_i·A_i] and [B_i] so
    B·A = Σ_i w_i·s_i·B_i·A_i with no cross terms. The new adapter's own scaling is forced to 1
    (PEFT sets lora_alpha = r, which is not 1 under rsLoRA). Returns the adapter name.
    """
    name = f"moalign_soup_{uuid.uuid4().hex[:8]}"
    model.add_weighted_adapter(adapters, [float(x) for x in weights], name,
                               combination_type="cat")
    for m in _lora_layers(model):
        if name in m.scaling:
            m.scaling[name] = 1.0
    return name


def _params_ids(ensemble: Ensemble, prompts: list[str], w: torch.Tensor, max_new_tokens: int,
                do_sample: bool, temperature: float, top_p: float, seed: int | None,
                eos_token_id: int | list[int] | None) -> torch.Tensor:
    """One soup adapter per distinct weight row; one `generate` over a mixed-adapter batch."""
    model, policy = ensemble.model, ensemble.policy
    rows = [tuple(r) for r in w.cpu().tolist()]
    soups: dict[tuple[float, ...], str] = {}
    sampling = ({"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0}
                if do_sample else {"do_sample": False})
    try:
        for r in dict.fromkeys(rows):
            soups[r] = soup_adapter(model, ensemble.adapter_names, r)
        enc = encode_prompts(policy, prompts)
        with _inference(model), torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(int(seed))
            out = model.generate(
                **enc, adapter_names=[soups[r] for r in rows], max_new_tokens=max_new_tokens,
                eos_token_id=eos_token_ids(policy, eos_token_id) or None,
                min_new_tokens=max_new_tokens if eos_token_id == [] else None,
                pad_token_id=pad_token_id(policy),
                **sampling)
    finally:
        for name in soups.values():
            model.delete_adapter(name)
    return out[:, 1:] if ensemble.is_encoder_decoder else out[:, enc["input_ids"].shape[1]:]


# --- naive reference (paper style) -------------------------------------------------------------


def _naive_head_inputs(ensemble: Ensemble, enc: dict[str, torch.Tensor],
                       prefix: torch.Tensor) -> torch.Tensor:
    """Re-run every expert separately on the whole prefix (no cache; PEFT ``adapter_names`` with
    one adapter for the whole batch) and return each expert's LM-head input at the last position,
    captured by a hook on the head, so any head scaling is already applied: (K, B, H)."""
    model, base, seen = ensemble.model, _base(ensemble.model), []
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
                pos = (mask.long().cumsum(-1) - 1).clamp(min=0)
                model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False,
                      logits_to_keep=1, adapter_names=names)
    finally:
        hook.remove()
    return torch.stack(seen)


def generate_naive_ids(ensemble: Ensemble, prompts: list[str], weights: Any,
                       level: Level = "states", max_new_tokens: int = 64,
                       do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0,
                       seed: int | None = None, generator: torch.Generator | None = None,
                       logits_space: LogitsSpace = "raw",
                       eos_token_id: int | list[int] | None = None) -> torch.Tensor:
    """Reference decode as in the authors' code: each step runs each expert separately on the
    full prefix, without a KV cache. Same maths and outputs as `generate_ids`, O(T²) cost."""
    w = _check_args(ensemble, prompts, weights, level, max_new_tokens, temperature, top_p)
    if level == "params":
        raise ConfigError("generate_naive supports the 'states' and 'logits' levels")
    base = _base(ensemble.model)
    head, enc = base.get_output_embeddings(), encode_prompts(ensemble.policy, prompts)
    start = base.config.decoder_start_token_id if ensemble.is_encoder_decoder else None
    prefix = enc["input_ids"].new_full((len(prompts), 1 if start is not None else 0), start or 0)

    def next_logits(tokens: torch.Tensor | None) -> torch.Tensor:
        nonlocal prefix
        if tokens is not None:
            prefix = torch.cat([prefix, tokens.unsqueeze(1)], dim=1)
        h = _naive_head_inputs(ensemble, enc, prefix)  # (K, B, H), head scaling applied
        return aggregate_logits(lambda x: head(x).float(), h, w, level, logits_space)

    with _inference(ensemble.model):
        return _run_loop(ensemble, len(prompts), next_logits, max_new_tokens, do_sample,
                         temperature, top_p, seed, generator, eos_token_id)


def generate_naive(ensemble: Ensemble, prompts: list[str], weights: Any,
                   level: Level = "states", max_new_tokens: int = 64, **kwargs: Any) -> list[str]:
    """`generate_naive_ids` returning texts."""
    ids = generate_naive_ids(ensemble, prompts, weights, level, max_new_tokens, **kwargs)
    return ensemble.tokenizer.batch_decode(ids, skip_special_tokens=True)
