"""Plain Python reward functions as objectives, called the way TRL calls them.

Two calling conventions, told apart by the function's signature (`calls_like_trl`):

* TRL's (``GRPOTrainer(reward_funcs=...)``): keyword arguments ``prompts=`` and
  ``completions=`` plus every other column of the prompt's dataset row as a keyword list aligned
  with the completions; the quickstart form ``f(completions, **kwargs)`` works. A function is
  called this way when it has a ``completions`` parameter, or takes ``**kwargs`` and at most
  one positional parameter.
* moalign's ``f(prompts, responses)``: two positional lists; dataset columns are passed too when
  the function accepts them (named parameters or ``**kwargs``).

Prompts and completions are plain strings (TRL's standard, non-conversational format); TRL's
trainer-only keywords (``completion_ids``, ``trainer_state``, ``log_metric``...) are not passed.
Dataset columns travel with the prompts (`moalign.data.Prompt.columns`, filled by
`load_prompts` from the data spec's other columns).

A function returns one value per completion; ``None`` means "not applicable", as in TRL. Several
functions make one objective as TRL's ``reward_weights`` combine them: r = Σ_i w_i·r_i over the
functions that scored the example (TRL's ``nansum``). An example no function scored carries no
signal: TRL leaves it out of the group baseline and gives it advantage 0; here it takes the mean
score of the other samples of its prompt (else of the batch, else 0), which gives it advantage 0
under SCST's per-prompt mean baseline and leaves every baseline unchanged.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from moalign.core.errors import ObjectiveError

RewardFn = Callable[..., Sequence[float | None]]


def _parameters(fn: Callable[..., Any]) -> list[inspect.Parameter] | None:
    try:
        return list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # builtins without a signature: moalign's convention
        return None


def calls_like_trl(fn: Callable[..., Any]) -> bool:
    """True when `fn` follows TRL's reward-function convention (see the module docstring)."""
    params = _parameters(fn)
    if params is None:
        return False
    names = {p.name for p in params}
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
    return "completions" in names or (var_kw and len(positional) <= 1)


def prompt_columns(prompts: Sequence[str]) -> dict[str, list[Any]]:
    """The prompts' dataset columns as TRL passes them: {column: [value per example]} (a column
    missing from some rows is None there)."""
    rows = [getattr(p, "columns", None) or {} for p in prompts]
    keys = list(dict.fromkeys(k for row in rows for k in row))
    return {k: [row.get(k) for row in rows] for k in keys}


def _accepted(fn: Callable[..., Any], columns: dict[str, list[Any]],
              taken: set[str]) -> dict[str, list[Any]]:
    params = _parameters(fn) or []
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return {k: v for k, v in columns.items() if k not in taken}
    names = {p.name for p in params} - taken
    return {k: v for k, v in columns.items() if k in names}


def call_reward_function(fn: RewardFn, prompts: Sequence[str],
                         responses: Sequence[str]) -> list[float | None]:
    """One value (or None) per response from `fn`, called in its own convention."""
    columns = prompt_columns(prompts)
    ps, rs = [str(p) for p in prompts], list(responses)
    if calls_like_trl(fn):
        out = fn(prompts=ps, completions=rs, **_accepted(fn, columns, {"prompts", "completions"}))
    else:
        names = [p.name for p in (_parameters(fn) or [])[:2]]
        out = fn(ps, rs, **_accepted(fn, columns, set(names)))
    values = [None if v is None else float(v) for v in out]
    if len(values) != len(rs):
        raise ObjectiveError(f"the reward function {getattr(fn, '__name__', fn)!r} returned "
                             f"{len(values)} values for {len(rs)} completions; return one per "
                             "completion (None where it does not apply)")
    return values


def combine_functions(values: Sequence[Sequence[float | None]],
                      weights: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """TRL's weighted sum over reward functions with None skipped: values (F, B) -> scores (B,)
    float32 and the mask (B,) of examples no function scored (their score is 0 here)."""
    out, unscored = [], []
    for column in zip(*values, strict=True):  # one example: F values
        scored = [w * v for w, v in zip(weights, column, strict=True) if v is not None]
        out.append(math.fsum(scored) if scored else 0.0)
        unscored.append(not scored)
    return torch.tensor(out, dtype=torch.float32), torch.tensor(unscored, dtype=torch.bool)


def fill_unscored(scores: torch.Tensor, unscored: torch.Tensor,
                  prompts: Sequence[str]) -> torch.Tensor:
    """Unscored entries -> the mean of the scored samples of the same prompt, else of the whole
    batch, else 0, so such a sample gets advantage 0: (B,), (B,) bool -> (B,)."""
    if not bool(unscored.any()):
        return scores
    out = scores.clone()
    scored = scores[~unscored]
    batch_mean = float(scored.mean()) if len(scored) else 0.0
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(str(p), []).append(i)
    for rows in groups.values():
        idx = torch.tensor(rows)
        have = scores[idx][~unscored[idx]]
        fill = float(have.mean()) if len(have) else batch_mean
        out[idx] = torch.where(unscored[idx], torch.full_like(scores[idx], fill), scores[idx])
    return out
