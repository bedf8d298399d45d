"""Strict request and response models of the server.

Every request model is strict (no coercion: ``true`` is not a weight, ``"4"`` and ``4.0`` are not
integers, ``"yes"`` is not a boolean), forbids unknown fields, and refuses infinite or NaN
sampling settings. Weights may be NaN or infinite here only so that the service can refuse them
with a message naming the objective (`Service.weights_row`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SEED_LIMIT = 2**63  # seeds are int64 (torch.Generator.manual_seed)

Level = Literal["states", "logits", "params"]
Weight = Annotated[float, Field(allow_inf_nan=True)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Seed = Annotated[int, Field(ge=0, lt=SEED_LIMIT, description="Sampling seed, 0 <= seed < 2^63.")]
STRICT = ConfigDict(extra="forbid", strict=True)

WEIGHTS_HELP = ("Objective weights {name: w >= 0}; omitted objectives weigh 0; default: the "
                "ensemble's searched best weights (else uniform).")


class GenerationOptions(BaseModel):
    """Decoding options beyond greedy/temperature/top-p (mapped onto `moalign.sampling.Sampling`;
    refused with 400 "not supported" where the installed `Sampling` lacks the field)."""

    model_config = STRICT

    top_k: int | None = Field(None, ge=-1, description="Keep the k most likely tokens (0/-1: off).")
    repetition_penalty: Finite | None = Field(None, gt=0, le=10)
    no_repeat_ngram_size: int | None = Field(None, ge=0, le=64)
    stop: str | list[str] | None = Field(None, description="Up to 4 stop strings (excluded).")
    weights: dict[str, Weight] | None = Field(None, description=WEIGHTS_HELP)
    level: Level = "states"

    def stop_strings(self) -> tuple[str, ...]:
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return tuple(stop)


class GenerateRequest(GenerationOptions):
    """Body of ``POST /generate``: exactly one of `prompt` / `prompts`."""

    prompt: str | None = Field(None, description="One prompt (the response is in `response`).")
    prompts: list[str] | None = Field(None, description="Several prompts, answered in order.")
    max_new_tokens: int | None = Field(None, ge=1, description="Default: the server's.")
    min_new_tokens: int | None = Field(None, ge=0)
    do_sample: bool = False
    temperature: Finite = Field(1.0, gt=0)
    top_p: Finite = Field(1.0, gt=0, le=1)
    seed: Seed | None = None

    @model_validator(mode="after")
    def _one_prompt_field(self) -> GenerateRequest:
        if (self.prompt is None) == (self.prompts is None):
            raise ValueError("give exactly one of `prompt` (a string) or `prompts` (a list)")
        if self.prompts is not None and not self.prompts:
            raise ValueError("`prompts` is empty; give at least one prompt")
        return self

    def prompt_list(self) -> list[str]:
        return [self.prompt] if self.prompt is not None else list(self.prompts or [])


class GenerateResponse(BaseModel):
    responses: list[str]
    response: str | None = Field(None, description="The single response when `prompt` was used.")
    weights: dict[str, float]
    level: str
    max_new_tokens: int
    batch_size: int = Field(description="Sequences decoded together with this request's.")
    queue_ms: float
    latency_ms: float


# ----------------------------------------------------------------------------- OpenAI-compatible


class StreamOptions(BaseModel):
    model_config = STRICT
    include_usage: bool = False


class OpenAIRequest(GenerationOptions):
    """Fields shared by ``/v1/completions`` and ``/v1/chat/completions``. OpenAI's defaults:
    temperature 1 (sampling; 0 is greedy), top_p 1. `weights` and `level` are extra fields."""

    model: str
    max_tokens: int | None = Field(None, ge=1)
    min_tokens: int | None = Field(None, ge=0)
    temperature: Finite | None = Field(None, ge=0, le=2)
    top_p: Finite | None = Field(None, gt=0, le=1)
    n: int = Field(1, ge=1, le=16)
    stream: bool = False
    stream_options: StreamOptions | None = None
    seed: Seed | None = None
    presence_penalty: Finite | None = Field(None, ge=-2, le=2)
    frequency_penalty: Finite | None = Field(None, ge=-2, le=2)
    logit_bias: dict[str, Finite] | None = None
    user: str | None = Field(None, max_length=256)


class CompletionRequest(OpenAIRequest):
    prompt: str | list[str]
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = Field(None, ge=1)
    logprobs: int | None = Field(None, ge=0)

    def prompt_list(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


class TextPart(BaseModel):
    model_config = STRICT
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = STRICT
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = Field(None, max_length=64)

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class ChatRequest(OpenAIRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0)
