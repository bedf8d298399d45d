"""Evaluation of generations (EMORL §5.1, §5.3): per-objective rewards, diversity-2, edit rate,
and batched evaluation of many aggregation-weight points (mean ± std over seeds × runs: a study's
`moalign.runs.stages.summarise`).

Everything is written against one small abstraction, a *generation function*:

    generate_fn(prompts: list[str], seed: int) -> list[str]        # one response per prompt

so the base policy, a single adapter and an `Ensemble` at any aggregation level are evaluated the
same way (`policy_generate_fn`, `ensemble_generate_fn` build one). Prompts are the raw client
statements; the generation function applies the chat template / system prompt itself, and the
scorers always see the raw prompt.

`make_weight_evaluator` is the search's objective f (EMORL Algorithm 1): it decodes all P weight
points of a call in ONE batched aggregated generation (prompts repeated P times with per-sequence
weights (B·P, K), chunked to bound memory) and scores everything with one `score_matrix` call.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol

import torch
from peft import PeftModel
from tqdm.auto import tqdm

from moalign.algorithms.grid_search import EvalResult, EvaluateFn, Point, aggregate_score
from moalign.emorl import decoding
from moalign.emorl.decoding import Level, LogitsSpace
from moalign.emorl.ensemble import Ensemble, WeightsSpec, parse_weights
from moalign.evaluation.metrics import distinct2_authors, distinct_n, diversity2, lexical_metrics
from moalign.models import Policy, format_prompts
from moalign.rewards.scorers import Scorer, score_matrix
from moalign.rollout import sample
from moalign.sampling import Sampling


class GenerateFn(Protocol):
    """``generate_fn(prompts, seed) -> responses``: one response per raw prompt."""

    def __call__(self, prompts: list[str], seed: int = 0) -> list[str]: ...


# ----------------------------------------------------------------------------- scoring


def score_responses(
    prompts: Sequence[str],
    responses: Sequence[str],
    scorers: Sequence[Scorer],
    objective_names: Sequence[str] | None = None,
    score_weights: Sequence[float] | Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Score responses on every objective plus the lexical metrics (EMORL §5.3).

    Returns ``objectives`` (name -> mean reward), ``score`` (their mean, or the weighted sum of
    `search.aggregate_score` with ``score_weights``), ``per_example`` (name -> list of rewards,
    plus ``edit_rate`` and ``diversity2`` per response), corpus ``diversity2``, mean
    ``edit_rate``, the EMORL authors' definitions of both (``diversity2_authors``,
    ``edit_rate_authors``, also per response) and ``n``. Scorer failures and NaN raise
    `ObjectiveError` (from `score_matrix`).
    """
    prompts, responses = list(prompts), list(responses)
    names = list(objective_names or [s.name for s in scorers])
    if len(names) != len(scorers):
        raise ValueError(f"{len(names)} objective names for {len(scorers)} scorers")
    matrix = score_matrix(scorers, prompts, responses)  # (B, K)
    summary = _summary(prompts, responses, matrix, names, score_weights)
    summary["per_example"]["diversity2"] = [distinct_n(r, 2) for r in responses]
    summary["per_example"]["diversity2_authors"] = [distinct2_authors(r) for r in responses]
    return summary


def _summary(
    prompts: list[str],
    responses: list[str],
    matrix: torch.Tensor,
    names: list[str],
    score_weights: Sequence[float] | Mapping[str, float] | None,
) -> dict[str, Any]:
    """Per-objective means and lexical metrics of one block of (prompt, response, rewards)."""
    objectives = {n: float(matrix[:, k].double().mean()) for k, n in enumerate(names)}
    lexical = lexical_metrics(prompts, responses)  # both definitions, per response
    edits = lexical["edit_rate"]
    per_example: dict[str, list[float]] = {n: matrix[:, k].tolist() for k, n in enumerate(names)}
    per_example["edit_rate"] = edits
    per_example["edit_rate_authors"] = lexical["edit_rate_authors"]
    return {
        "objectives": objectives,
        "score": aggregate_score(objectives, score_weights) if objectives else float("nan"),
        "diversity2": diversity2(responses),
        "edit_rate": math.fsum(edits) / len(edits),
        "diversity2_authors": math.fsum(lexical["diversity2_authors"]) / len(responses),
        "edit_rate_authors": math.fsum(lexical["edit_rate_authors"]) / len(responses),
        "per_example": per_example,
        "n": len(responses),
    }


# ----------------------------------------------------------------------------- weight points


def weight_matrix(points: Sequence[Sequence[float]], n_prompts: int) -> torch.Tensor:
    """Per-sequence weights (P·B, K): row ``p·B + b`` holds point p (point-major blocks)."""
    w = torch.as_tensor([list(map(float, p)) for p in points], dtype=torch.float32)  # (P, K)
    return w.repeat_interleave(n_prompts, dim=0)


def generate_for_points(
    ensemble: Ensemble,
    texts: list[str],
    points: Sequence[Sequence[float]],
    level: Level = "states",
    sampling: Sampling = Sampling(),
    chunk_size: int = 256,
    logits_space: LogitsSpace = "raw",
) -> list[str]:
    """Responses for every (point, prompt) pair, point-major, in ⌈P·B / chunk_size⌉ calls.

    ``texts`` are final prompt texts (chat template applied). Each call of
    `decoding.generate` gets a slice of the repeated prompts and its (rows, K) weights.
    """

    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    all_texts = [t for _ in points for t in texts]  # (P·B,)
    weights = weight_matrix(points, len(texts))  # (P·B, K)
    out: list[str] = []
    bar = tqdm(total=len(all_texts), desc=f"decoding {len(points)} weight points", unit="seq",
               leave=False, disable=None)  # a search iteration can take minutes (off: no TTY)
    for start in range(0, len(all_texts), chunk_size):
        stop = start + chunk_size
        out += decoding.generate(ensemble, all_texts[start:stop], weights[start:stop],
                                 level=level, sampling=sampling, logits_space=logits_space)
        bar.update(len(all_texts[start:stop]))
    bar.close()
    return [r.strip() for r in out]


def _responses_for_points(ensemble: Ensemble, raw: list[str], texts: list[str],
                          points: list[Point], level: Level, sampling: Sampling, chunk_size: int,
                          system: str | None, logits_space: LogitsSpace) -> list[str]:
    """Point-major responses; all-zero points (visited only without simplex normalisation)
    define no aggregate, so they get the base policy's responses (θ0, exact for ``params``)."""
    zero = [not any(float(x) != 0.0 for x in p) for p in points]
    live = [p for p, z in zip(points, zero, strict=True) if not z]
    generated = iter(generate_for_points(ensemble, texts, live, level, sampling, chunk_size,
                                         logits_space) if live else [])
    base: list[str] = []
    if any(zero):
        base = policy_generate_fn(ensemble.policy, sampling, system=system)(
            raw, int(sampling.seed or 0))
    out: list[str] = []
    for z in zero:
        out += base if z else [next(generated) for _ in raw]
    return out


def score_distinct(scorers: Sequence[Scorer], prompts: list[str], responses: list[str]
                   ) -> torch.Tensor:
    """`score_matrix` (N, K) over the distinct (prompt, response) pairs only, copied to every
    row that repeats one: neighbouring weight points of a search often decode the same text.
    Assumes scorers are functions of the pair (the same pair gets the same scores)."""
    index: dict[tuple[str, str], int] = {}
    rows = [index.setdefault(pair, len(index)) for pair in zip(prompts, responses, strict=True)]
    matrix = score_matrix(scorers, [p for p, _ in index], [r for _, r in index])  # (U, K)
    return matrix[torch.tensor(rows, dtype=torch.long)]


def make_weight_evaluator(
    ensemble: Ensemble,
    prompts: Sequence[str],
    scorers: Sequence[Scorer],
    level: Level = "states",
    sampling: Sampling = Sampling(),
    system: str | None = None,
    chunk_size: int = 256,
    objective_names: Sequence[str] | None = None,
    score_weights: Sequence[float] | Mapping[str, float] | None = None,
    logits_space: LogitsSpace = "raw",
) -> EvaluateFn:
    """The search's `EvaluateFn` for an `Ensemble` on fixed validation prompts.

    One call with P points runs ONE batched aggregated generation over the B prompts repeated P
    times (per-sequence weights (P·B, K); split into ``chunk_size``-row calls to bound memory),
    then ONE `score_matrix` over all P·B responses. Each point's `EvalResult` has the
    per-objective mean rewards, ``score`` = their mean (or `aggregate_score` with
    ``score_weights``), and ``extra`` = diversity-2, edit rate, a sample response and the
    amortised seconds per point. ``sampling`` (default greedy) decodes every point, with its
    ``seed`` when sampling. The all-zero point, which only a search without simplex
    normalisation visits, is evaluated as the base policy (adapters off).
    """
    raw = [str(p) for p in prompts]
    if not raw:
        raise ValueError("make_weight_evaluator needs at least one validation prompt")
    texts = format_prompts(ensemble.policy, raw, system)
    names = list(objective_names or [s.name for s in scorers])

    def evaluate(points: list[Point]) -> list[EvalResult]:
        if not points:
            return []
        t0 = time.perf_counter()
        responses = _responses_for_points(ensemble, raw, texts, points, level, sampling,
                                          chunk_size, system, logits_space)
        all_prompts = raw * len(points)
        matrix = score_distinct(scorers, all_prompts, responses)  # (P·B, K_obj)
        seconds = (time.perf_counter() - t0) / len(points)
        results = []
        for i, point in enumerate(points):
            rows = slice(i * len(raw), (i + 1) * len(raw))
            s = _summary(raw, responses[rows], matrix[rows], names, score_weights)
            extra = {"diversity2": s["diversity2"], "edit_rate": s["edit_rate"],
                     "sample": responses[rows][0][:200], "seconds": round(seconds, 4)}
            results.append(EvalResult(tuple(point), s["score"], s["objectives"], extra))
        return results

    return evaluate


# ----------------------------------------------------------------------------- generation fns


def policy_generate_fn(
    policy: Policy,
    sampling: Sampling = Sampling(),
    system: str | None = None,
    adapter: str | None = None,
) -> GenerateFn:
    """A `GenerateFn` for a plain policy (base model, or one named LoRA adapter made active).

    ``adapter=None`` on a PeftModel disables every adapter (the pre-trained baseline). Each
    call decodes with ``sampling`` seeded by the call's ``seed``.
    """

    def generate_fn(prompts: list[str], seed: int = 0) -> list[str]:
        model = policy.model
        ctx: AbstractContextManager[object] = nullcontext()
        if adapter is not None:
            model.set_adapter(adapter)
        elif isinstance(model, PeftModel):
            ctx = model.disable_adapter()
        with ctx:
            rollout = sample(policy, list(prompts), sampling.with_seed(seed), system=system)
        return rollout.responses

    return generate_fn


def ensemble_generate_fn(
    ensemble: Ensemble,
    weights: WeightsSpec,
    level: Level = "states",
    sampling: Sampling = Sampling(),
    system: str | None = None,
    chunk_size: int = 256,
    logits_space: LogitsSpace = "raw",
) -> GenerateFn:
    """A `GenerateFn` for an `Ensemble` with fixed weights (K,), a dict or ``"a=0.8,b=0.2"``.

    ``logits_space`` only matters at level ``logits``: ``raw`` sums logits, ``probs`` mixes
    the experts' next-token distributions (see `decoding.aggregate_logits`)."""
    w = parse_weights(weights, ensemble.objectives)  # (K,) validated

    def generate_fn(prompts: list[str], seed: int = 0) -> list[str]:
        texts = format_prompts(ensemble.policy, list(prompts), system)
        return generate_for_points(ensemble, texts, [w.tolist()], level,
                                   sampling.with_seed(seed), chunk_size, logits_space)

    return generate_fn
