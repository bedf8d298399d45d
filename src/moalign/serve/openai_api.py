"""OpenAI-compatible routes: ``GET /v1/models``, ``POST /v1/completions``,
``POST /v1/chat/completions`` (chat template applied), with ``stream: true`` as server-sent
events, token ``usage``, and the extra body fields ``weights`` ({objective: w}) and ``level``.

Mapping onto `moalign.sampling.Sampling`: ``max_tokens`` (chat: ``max_completion_tokens``) ->
max_new_tokens; ``temperature`` 0 -> greedy, else sampling (OpenAI's default is 1); ``top_p``,
``seed``, ``top_k``, ``min_tokens`` -> min_new_tokens, ``repetition_penalty``,
``no_repeat_ngram_size``; ``stop`` ends the text at the first stop string (excluded); ``n``
decodes each prompt n times in the same batch. Options the decoder cannot honour (logprobs,
echo, suffix, best_of > 1, logit_bias, presence / frequency penalties) answer 400.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from moalign.sampling import Sampling
from moalign.serve.batcher import Completion, Job
from moalign.serve.errors import ApiError
from moalign.serve.schemas import (
    ChatRequest,
    CompletionRequest,
    GenerationOptions,
    OpenAIRequest,
)
from moalign.serve.service import Service, apply_stop, check_text
from moalign.serve.streaming import EventFeed, TextStream, events

MAX_STOP, MAX_STOP_CHARS = 4, 256


def sampling_options(req: GenerationOptions, min_new: int | None) -> dict[str, Any]:
    """The non-default generation options of a request, by `Sampling` field name."""
    options: dict[str, Any] = {}
    if req.top_k not in (None, 0, -1):
        options["top_k"] = req.top_k
    if req.repetition_penalty not in (None, 1.0):
        options["repetition_penalty"] = req.repetition_penalty
    if req.no_repeat_ngram_size:
        options["no_repeat_ngram_size"] = req.no_repeat_ngram_size
    if min_new:
        options["min_new_tokens"] = min_new
    stop = req.stop_strings()
    if len(stop) > MAX_STOP or not all(0 < len(s) <= MAX_STOP_CHARS for s in stop):
        raise ApiError(400, f"stop takes at most {MAX_STOP} non-empty strings of at most "
                            f"{MAX_STOP_CHARS} characters", "invalid_stop", param="stop")
    for i, s in enumerate(stop):
        check_text(s, f"stop {i}")
    if stop:
        options["stop"] = stop
    return options


def refuse_unsupported(req: OpenAIRequest, extra: dict[str, Any]) -> None:
    """400 for OpenAI options the decoder cannot honour (neutral values are accepted)."""
    asked = {"presence_penalty": req.presence_penalty not in (None, 0.0),
             "frequency_penalty": req.frequency_penalty not in (None, 0.0),
             "logit_bias": bool(req.logit_bias), **extra}
    for name, given in asked.items():
        if given:
            raise ApiError(400, f"{name} is not supported by this server", "unsupported_parameter",
                           param=name)


def openai_sampling(svc: Service, req: OpenAIRequest, max_new: int) -> Sampling:
    temperature = 1.0 if req.temperature is None else req.temperature
    return svc.sampling(max_new, temperature > 0, temperature or 1.0,
                        1.0 if req.top_p is None else req.top_p, req.seed,
                        sampling_options(req, req.min_tokens))


def check_model(svc: Service, model: str) -> None:
    if model != svc.model_name:
        raise ApiError(404, f"the model {model!r:.80} does not exist; this server serves "
                            f"{svc.model_name!r} (GET /v1/models)", "model_not_found",
                       param="model")


class Reply:
    """What one OpenAI request needs to build its answer or its stream."""

    def __init__(self, svc: Service, req: OpenAIRequest, chat: bool, prompt_tokens: int) -> None:
        self.svc, self.req, self.chat = svc, req, chat
        self.id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        self.created = int(time.time())
        self.stop = req.stop_strings()
        self.prompt_tokens = prompt_tokens

    def finish(self, outs: list[Completion]) -> list[Completion]:
        return [apply_stop(c, self.stop) for c in outs]

    def head(self) -> dict[str, Any]:
        kind = "chat.completion" if self.chat else "text_completion"
        return {"id": self.id, "object": kind, "created": self.created,
                "model": self.svc.model_name}

    def body(self, outs: list[Completion], weights: list[float]) -> dict[str, Any]:
        choices = []
        for i, c in enumerate(self.finish(outs)):
            content = ({"message": {"role": "assistant", "content": c.text}} if self.chat else
                       {"text": c.text})
            choices.append({"index": i, **content, "logprobs": None,
                            "finish_reason": c.finish_reason})
        completion = sum(c.tokens for c in outs)
        return {**self.head(), "choices": choices,
                "usage": {"prompt_tokens": self.prompt_tokens, "completion_tokens": completion,
                          "total_tokens": self.prompt_tokens + completion},
                "weights": dict(zip(self.svc.objectives, weights, strict=True)),
                "level": self.req.level}

    def chunk(self, row: int, text: str | None, finish: str | None) -> dict[str, Any]:
        head = self.head()
        if self.chat:
            head["object"] = "chat.completion.chunk"
            piece: dict[str, Any] = {"delta": {} if text is None else {"content": text}}
        else:
            piece = {"text": text or ""}
        return {**head, "choices": [{"index": row, **piece, "logprobs": None,
                                     "finish_reason": finish}]}

    def stream(self, job: Job,
               on_abandon: Callable[[], None]) -> StreamingResponse:
        svc = self.svc

        def decode(ids: list[int]) -> str:
            return str(svc.ensemble.tokenizer.decode(ids, skip_special_tokens=True))

        streams = [TextStream(decode, svc.eos, self.stop) for _ in job.texts]
        feed = EventFeed(job, streams)
        options = self.req.stream_options
        usage = {"prompt_tokens": self.prompt_tokens} if options and options.include_usage \
            else None
        first = [] if not self.chat else [
            {**self.chunk(r, None, None), "choices": [{"index": r, "delta": {
                "role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}]}
            for r in range(len(job.texts))]
        body = events(job, feed, self.chunk, svc.cfg.request_timeout_s, self.finish, usage,
                      on_abandon, first)
        return StreamingResponse(body, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})


async def answer(svc: Service, request: Request, reply: Reply, rows: list[str],
                 weights: list[float], sampling: Sampling) -> Any:
    job = svc.new_job(rows, weights, reply.req.level, sampling)
    if not reply.req.stream:
        return reply.body(await svc.run(job, request), weights)
    response = reply.stream(job, lambda: svc.abandon(job))  # the token hooks are set first
    svc.enqueue(job)
    return response


def add_openai_routes(app: FastAPI, svc: Service) -> None:
    @app.get("/v1/models", summary="The served model (OpenAI-compatible)")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{
            "id": svc.model_name, "object": "model", "created": int(svc.metrics.started),
            "owned_by": "moalign", "objectives": svc.objectives,
            "default_weights": svc.default_weights}]}

    @app.post("/v1/completions", summary="Text completion (OpenAI-compatible)")
    async def completions(req: CompletionRequest, request: Request) -> Any:
        check_model(svc, req.model)
        refuse_unsupported(req, {"echo": req.echo, "suffix": req.suffix is not None,
                                 "best_of": (req.best_of or 1) > 1,
                                 "logprobs": req.logprobs is not None})
        prompts = req.prompt_list()
        svc.check_prompts(prompts, req.n)
        max_new = svc.max_new_tokens(req.max_tokens)
        sampling = openai_sampling(svc, req, max_new)
        weights = svc.weights_row(req.weights)
        counts = await svc.tokens(prompts, max_new)
        rows = [p for p in prompts for _ in range(req.n)]
        reply = Reply(svc, req, False, sum(counts))
        return await answer(svc, request, reply, rows, weights, sampling)

    @app.post("/v1/chat/completions", summary="Chat completion (OpenAI-compatible)")
    async def chat(req: ChatRequest, request: Request) -> Any:
        check_model(svc, req.model)
        refuse_unsupported(req, {"logprobs": bool(req.logprobs),
                                 "top_logprobs": req.top_logprobs is not None})
        messages = [(m.role, m.text()) for m in req.messages]
        for i, (_, text) in enumerate(messages):
            check_text(text, f"messages.{i}.content")
        if not any(text.strip() for _, text in messages):
            raise ApiError(400, "every message is empty", "empty_prompt", param="messages")
        svc.check_prompts(["x"], req.n)
        max_new = svc.max_new_tokens(req.max_completion_tokens or req.max_tokens)
        sampling = openai_sampling(svc, req, max_new)
        weights = svc.weights_row(req.weights)
        text = await svc.format_chat(messages)
        counts = await svc.tokens([text], max_new)
        reply = Reply(svc, req, True, counts[0])
        return await answer(svc, request, reply, [text] * req.n, weights, sampling)
