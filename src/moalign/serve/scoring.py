"""Per-objective scores of answers, for a server started with objectives to score
(``moalign serve RUN --score reflection,empathy,fluency``; any `build_scorers` spec works).

* ``GET /score``: the scored objectives and which way each is better (an empty list when the
  server scores nothing, so a client can ask first).
* ``POST /score`` ``{"prompt": "...", "responses": ["...", ...]}`` ->
  ``{"objectives": [...], "higher_is_better": {...}, "scores": [{objective: value}, ...]}``,
  one row per response, each scored against the raw prompt as the trainers' scorers see it.

Scorers are loaded once when the app is built (a wrong spec fails at start-up, not at the first
request) and run one call at a time in a worker thread, so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from moalign.core.errors import ObjectiveError
from moalign.rewards.scorers import Scorer, build_scorers, score_matrix
from moalign.serve.errors import ApiError

MAX_RESPONSES = 16  # responses scored in one request
SCORE_HELP = "start the server with --score NAMES (e.g. --score reflection,empathy,fluency)"


class ScoreRequest(BaseModel):
    """Body of ``POST /score``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str = Field(description="The raw prompt the responses answer.")
    responses: list[str] = Field(min_length=1, max_length=MAX_RESPONSES,
                                 description="Responses to score against the prompt.")


class ScoreResponse(BaseModel):
    objectives: list[str]
    higher_is_better: dict[str, bool]
    scores: list[dict[str, float]] = Field(description="One {objective: score} per response.")


class Scoring:
    """The server's scorers (possibly none) behind one lock."""

    def __init__(self, scorers: Sequence[Scorer] = ()) -> None:
        self.scorers = list(scorers)
        self._lock = threading.Lock()  # scorers are not promised to be thread-safe

    @classmethod
    def from_specs(cls, specs: str | Sequence[Any] | None) -> Scoring:
        """Scorers from ``"a,b"``, a list of specs, or None / empty (nothing scored)."""
        return cls(build_scorers(specs) if specs else [])

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.scorers]

    def info(self) -> dict[str, Any]:
        return {"objectives": self.names,
                "higher_is_better": {s.name: bool(s.higher_is_better) for s in self.scorers}}

    def score(self, prompt: str, responses: list[str]) -> list[dict[str, float]]:
        """One ``{objective: score}`` row per response (blocking: call it from a thread)."""
        with self._lock:
            matrix = score_matrix(self.scorers, [prompt] * len(responses), responses)  # (B, K)
        return [dict(zip(self.names, (float(v) for v in row), strict=True))
                for row in matrix.tolist()]


def add_scoring_routes(app: FastAPI, scoring: Scoring) -> None:
    """``GET /score`` and ``POST /score`` (404 with how to enable it when nothing is scored)."""

    @app.get("/score", summary="The objectives this server scores answers with")
    async def score_info() -> dict[str, Any]:
        return scoring.info()

    @app.post("/score", response_model=ScoreResponse,
              summary="Score responses to a prompt on the server's scored objectives")
    async def score_route(req: ScoreRequest) -> ScoreResponse:
        if not scoring.scorers:
            raise ApiError(404, f"this server scores no objectives; {SCORE_HELP}",
                           "scoring_disabled")
        try:
            rows = await asyncio.to_thread(scoring.score, req.prompt, req.responses)
        except ObjectiveError as e:
            raise ApiError(500, f"scoring failed: {e}", "scoring_failed") from None
        info = scoring.info()
        return ScoreResponse(objectives=info["objectives"],
                             higher_is_better=info["higher_is_better"], scores=rows)
