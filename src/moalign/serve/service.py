"""The served ensemble: request validation (before anything is queued), the batched decode the
batcher calls, and the start-up warm-up."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import inspect
import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from fastapi import Request

from moalign.core.config import ConfigError
from moalign.emorl.decoding import generate_ids
from moalign.emorl.ensemble import Ensemble
from moalign.emorl.manifest import EnsembleManifest
from moalign.models import DEFAULT_SYSTEM, format_prompts
from moalign.rollout import eos_token_ids
from moalign.sampling import Sampling
from moalign.serve.batcher import Completion, Job, MicroBatcher, StepHook
from moalign.serve.config import LEVEL_NAMES, ServeConfig
from moalign.serve.errors import ApiError
from moalign.serve.metrics import ServeMetrics

# Decoding runs in float32: a positive weight outside this range overflows the aggregated
# hidden states / logits (3.4e38) or vanishes into subnormals (1e-45). Only ratios matter for
# greedy decoding, so the range loses nothing a client needs.
WEIGHT_MIN, WEIGHT_MAX = 1e-6, 1e6
STEP_HOOK = "on_token" in inspect.signature(generate_ids).parameters  # per-token streaming
CONTEXT_ATTRS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")


def model_context(ensemble: Ensemble) -> int:
    """The model's context length in tokens (its config, else the tokenizer's, else 2048)."""
    config = ensemble.model.config
    for attr in CONTEXT_ATTRS:
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(ensemble.tokenizer, "model_max_length", None)
    return int(limit) if isinstance(limit, int) and 0 < limit < 1_000_000 else 2048


def check_text(value: str, what: str) -> None:
    """Refuse text that is not valid Unicode (a lone surrogate from a ``\\ud800`` escape)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ApiError(400, f"{what} is not valid Unicode ({e.reason} at character {e.start}); "
                            "send UTF-8 text", "invalid_unicode") from None


async def wait_disconnect(request: Request) -> None:
    """Return when the client closes the connection (its body has been read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def apply_stop(completion: Completion, stop: Sequence[str]) -> Completion:
    """Cut the text at the first stop string (excluded, as OpenAI does)."""
    cuts = [i for i in (completion.text.find(s) for s in stop if s) if i >= 0]
    if not cuts:
        return completion
    return Completion(completion.text[:min(cuts)], completion.tokens, "stop")


class Service:
    """The loaded ensemble, request validation, and the generation that the batcher calls."""

    def __init__(self, cfg: ServeConfig, ensemble: Ensemble, manifest: EnsembleManifest,
                 model_name: str) -> None:
        self.cfg, self.ensemble, self.manifest = cfg, ensemble, manifest
        self.model_name = model_name
        self.objectives: list[str] = list(ensemble.objectives)
        self.context = int(min(model_context(ensemble), cfg.context_tokens or math.inf))
        self.eos = set(eos_token_ids(ensemble.policy))
        self.default_weights = self._default_weights()
        self.batcher = MicroBatcher(self.run_batch, cfg.max_batch, cfg.max_wait_ms / 1000.0,
                                    cfg.max_queue)
        self.metrics: ServeMetrics = ServeMetrics(lambda: self.batcher.depth)
        self.batcher.metrics = self.metrics
        # validation tokenises in its own thread with its own tokenizer copy: a fast tokenizer
        # shared with the decoding thread fails with "Already borrowed"
        self.checker = dataclasses.replace(ensemble.policy,
                                           tokenizer=copy.deepcopy(ensemble.tokenizer))
        self.validator = ThreadPoolExecutor(1, thread_name_prefix="moalign-validate")

    def _default_weights(self) -> dict[str, float]:
        best = self.manifest.best_weights or {}
        if best:
            w = self.weights_row(best)
            return dict(zip(self.objectives, w, strict=True))
        return {n: 1.0 / len(self.objectives) for n in self.objectives}

    # --------------------------------------------------------------------------- validation

    def weights_row(self, spec: Mapping[str, float] | None) -> list[float]:
        """Validated (K,) weights from ``{objective: w}`` (omitted objectives weigh 0)."""
        spec = self.default_weights if spec is None else spec
        unknown = sorted(set(spec) - set(self.objectives))
        if unknown:
            shown = f"{unknown[:5]}" + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            raise ApiError(400, f"invalid weights: unknown objective(s) {shown}; this "
                                f"ensemble serves {self.objectives}", "invalid_weights",
                           param="weights")
        for name, w in spec.items():
            problem = ("is NaN" if math.isnan(w) else "is infinite" if math.isinf(w) else
                       "is negative; weights must be >= 0" if w < 0 else
                       f"is outside [{WEIGHT_MIN:g}, {WEIGHT_MAX:g}], the range float32 decoding "
                       "supports (use 0 to switch an objective off)"
                       if w and not WEIGHT_MIN <= w <= WEIGHT_MAX else None)
            if problem:
                raise ApiError(400, f"invalid weights: {name}={w!r} {problem}",
                               "invalid_weights", param=f"weights.{name}")
        row = [float(spec.get(n, 0.0)) for n in self.objectives]
        if not any(row):
            raise ApiError(400, "invalid weights: all zero; give at least one objective a "
                                "positive weight", "invalid_weights", param="weights")
        return row

    def check_prompts(self, prompts: list[str], n: int = 1, what: str = "prompt") -> None:
        """Count, emptiness and Unicode of raw prompts (cheap checks, before tokenising)."""
        limit = self.cfg.max_prompts_per_request
        if len(prompts) * n > limit:
            raise ApiError(400, f"{len(prompts)} prompt(s) x n={n} sequences in one request; "
                                f"the limit is max_prompts_per_request={limit}", "too_many_prompts")
        for i, p in enumerate(prompts):
            check_text(p, f"{what} {i}")
            if not p.strip():
                raise ApiError(400, f"{what} {i} is empty", "empty_prompt", param=what)

    def max_new_tokens(self, asked: int | None) -> int:
        n = asked or self.cfg.default_max_new_tokens
        if n > self.cfg.max_new_tokens_limit:
            raise ApiError(400, f"max_new_tokens={n} exceeds the limit max_new_tokens_limit="
                                f"{self.cfg.max_new_tokens_limit}", "max_tokens_too_large",
                           param="max_new_tokens")
        return n

    def sampling(self, max_new: int, do_sample: bool, temperature: float, top_p: float,
                 seed: int | None, options: Mapping[str, Any]) -> Sampling:
        """A `Sampling`; an option the installed `Sampling` lacks is refused as not supported."""
        known = {f.name for f in dataclasses.fields(Sampling)}
        kwargs: dict[str, Any] = {"max_new_tokens": max_new, "do_sample": do_sample,
                                  "temperature": temperature, "top_p": top_p, "seed": seed}
        for name, value in options.items():
            if name in known:
                kwargs[name] = value
            elif name != "stop":  # stop strings are also applied here, after decoding
                raise ApiError(400, f"{name} is not supported by this server's decoder",
                               "unsupported_parameter", param=name)
        try:
            return Sampling(**kwargs)
        except (ConfigError, TypeError, ValueError) as e:
            raise ApiError(400, str(e), "invalid_sampling") from None

    async def tokens(self, texts: list[str], max_new: int) -> list[int]:
        """Token counts of formatted prompts; 400 when prompt + max_new_tokens exceed the
        context."""
        tok = self.checker.tokenizer
        counts = await asyncio.get_running_loop().run_in_executor(
            self.validator, lambda: [len(ids) for ids in tok(texts)["input_ids"]])
        for i, n in enumerate(counts):
            if n + max_new > self.context:
                room = max(self.context - max_new, 0)
                raise ApiError(400, f"prompt {i} is {n} tokens and max_new_tokens is {max_new}: "
                                    f"together they exceed the context of {self.context} "
                                    f"tokens; shorten the prompt to at most {room} tokens or "
                                    "ask for fewer new tokens",
                               "context_length_exceeded", param="prompt")
        return counts

    async def format(self, prompts: list[str]) -> list[str]:
        """The prompts as the decoder sees them (chat template, system prompt)."""
        return await asyncio.get_running_loop().run_in_executor(
            self.validator, format_prompts, self.checker, prompts, self.manifest.system)

    async def format_chat(self, messages: Sequence[tuple[str, str]]) -> str:
        return await asyncio.get_running_loop().run_in_executor(
            self.validator, self._chat_text, messages)

    def _chat_text(self, messages: Sequence[tuple[str, str]]) -> str:
        """Chat messages (role, text) rendered with the chat template; the manifest's system
        prompt (else the default one) unless the messages start with their own."""
        roles = [("system" if r == "developer" else r) for r, _ in messages]
        msgs = [{"role": r, "content": t} for r, (_, t) in zip(roles, messages, strict=True)]
        tok, system = self.checker.tokenizer, self.manifest.system
        if self.checker.is_encoder_decoder or not getattr(tok, "chat_template", None):
            parts = ([system] if system and roles[0] != "system" else []) + [t for _, t in messages]
            return "\n\n".join(parts)
        if roles[0] != "system":
            msgs.insert(0, {"role": "system", "content": system or DEFAULT_SYSTEM})
        return str(tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True))

    def new_job(self, rows: list[str], weights: list[float], level: str,
                sampling: Sampling) -> Job:
        return Job(rows, weights, (level, sampling.key()),
                   asyncio.get_running_loop().create_future())

    # --------------------------------------------------------------------------- queueing

    def enqueue(self, job: Job) -> None:
        """Queue a validated job; a full queue answers 503 with Retry-After."""
        try:
            self.batcher.enqueue(job)
        except asyncio.QueueFull:
            raise ApiError(503, f"server busy: max_queue={self.cfg.max_queue} requests are "
                                f"waiting; retry after {self.cfg.retry_after_s} s",
                           "server_busy", {"Retry-After": str(self.cfg.retry_after_s)}) from None

    async def run(self, job: Job, request: Request) -> list[Completion]:
        """Queue a job and wait for its completions. A client that leaves first has its job
        abandoned (skipped by the batcher, or its decode stopped)."""
        self.enqueue(job)
        left = asyncio.ensure_future(wait_disconnect(request))
        try:
            done, _ = await asyncio.wait({job.future, left}, timeout=self.cfg.request_timeout_s,
                                         return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            self.abandon(job)
            raise
        finally:
            left.cancel()
        if job.future in done:
            try:
                return job.future.result()
            except Exception as e:
                raise ApiError(500, f"generation failed: {type(e).__name__}: {e}",
                               "generation_failed") from None
        self.abandon(job)
        if left in done:
            raise ApiError(499, "the client closed the connection", "client_closed")
        raise ApiError(504, f"no answer within request_timeout_s={self.cfg.request_timeout_s:g}",
                       "timeout")

    def abandon(self, job: Job) -> None:
        if not job.future.done():
            self.metrics.cancelled.inc()
        job.abandon()

    # --------------------------------------------------------------------------- decoding

    def run_batch(self, texts: list[str], weights: list[list[float]], key: tuple,
                  hook: StepHook | None = None) -> list[Completion]:
        """ONE aggregated generation for a group of compatible requests (runs in a thread)."""
        level, sampling = key
        kwargs: dict[str, Any] = {}
        if hook is not None and STEP_HOOK and level != "params":
            kwargs["on_token"] = lambda tokens: hook(tokens.tolist())
        ids = generate_ids(self.ensemble, texts, torch.tensor(weights, dtype=torch.float32),
                           level=level, sampling=sampling, **kwargs)
        return [self._completion(row) for row in ids.tolist()]

    def _completion(self, row: list[int]) -> Completion:
        end = next((i for i, t in enumerate(row) if t in self.eos), None)
        n = len(row) if end is None else end + 1
        text = str(self.ensemble.tokenizer.decode(row[:n], skip_special_tokens=True))
        return Completion(text, n, "length" if end is None else "stop")

    def warmup(self) -> None:
        """One tiny generation (and one tokenisation) so the first request is not slow."""
        texts = format_prompts(self.ensemble.policy, ["Hello."], self.manifest.system)
        self.run_batch(texts, [self.weights_row(None)], ("states", Sampling.greedy(2)))
        self.checker.tokenizer(texts)

    def info(self) -> dict[str, Any]:
        cfg = self.cfg
        return {"objectives": self.objectives, "default_weights": self.default_weights,
                "levels": list(LEVEL_NAMES), "model": self.model_name,
                "limits": {"max_batch": cfg.max_batch, "max_wait_ms": cfg.max_wait_ms,
                           "max_new_tokens_limit": cfg.max_new_tokens_limit,
                           "default_max_new_tokens": cfg.default_max_new_tokens,
                           "context_tokens": self.context,
                           "max_body_bytes": cfg.max_body_bytes,
                           "max_prompts_per_request": cfg.max_prompts_per_request,
                           "weight_range": [WEIGHT_MIN, WEIGHT_MAX]}}
