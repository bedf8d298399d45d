"""Exp3 bandits and the DynaOpt dynamic reward weighting baseline (EMORL §2.2, §3, Table 3).

DynaOpt (Min et al. 2024, the DynaOpt baseline of EMORL) keeps two Exp3 bandits with γ = 0.07:

* an inner K-arm bandit whose normalised weights are the reward weights of the K objectives;
* an outer (K+1)-arm bandit, drawn after each validation; arm c < K means "increase objective
  c" and arm K means "keep the weights".

What :meth:`DynaOpt.after_validation` does, in order (and why):

1. outer reward = mean over objectives k of (current validation mean_k − mean of objective k's
   past validation means in the last `window` validations); 0 when there is no history yet.
   This is the authors' "scaled" reward (they use the previous validation round as history).
2. the outer bandit is updated for the arm drawn at the *previous* validation (or at
   :meth:`DynaOpt.start`) with that reward: the reward measures what that choice produced.
3. the current means are appended to the history, and a new outer arm is drawn.
4. if the new arm c < K, the inner bandit's arm c is rewarded with 1, exactly once. The
   authors' "reset the chosen arm after use" is their ``chosen = None`` right after that single
   inner update: the pending choice is cleared so the reward is not applied again at the next
   training step. It does *not* reset any bandit weight (that would erase what the bandit
   learned); :meth:`Exp3.reset_arm` exists for callers who want that, DynaOpt never calls it.

Reward clipping: Exp3's importance-weighted update w ← w·exp(γ·r/(p·K)) is bounded by
exp(|r|) per step because p ≥ γ/K, so rewards are clipped to [reward_min, reward_max] =
[-1, 1] by default (differences of [0, 1] validation means already lie there; the inner reward
is 1). Weights are additionally rescaled by their maximum whenever it leaves [1e-100, 1e100]:
probabilities are scale-invariant, so this only prevents float overflow/underflow over very
long runs.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import TypedDict

_RESCALE_HI = 1e100
_RESCALE_LO = 1e-100


class Exp3State(TypedDict):
    """`Exp3.state_dict()` (JSON-serialisable)."""

    n_arms: int
    gamma: float
    reward_min: float
    reward_max: float
    weights: list[float]


class DynaOptState(TypedDict):
    """`DynaOpt.state_dict()` (JSON-serialisable)."""

    n_objectives: int
    gamma: float
    window: int
    inner: Exp3State
    outer: Exp3State
    history: list[list[float]]
    last_arm: int | None
    n_validations: int


class DrawInfo(TypedDict):
    """`DynaOpt.start()`: the outer arm drawn, the inner arm it rewarded, the reward weights."""

    outer_arm: int
    inner_rewarded: int | None
    weights: list[float]


class ValidationInfo(DrawInfo):
    """`DynaOpt.after_validation()`, for logging."""

    outer_reward: float
    outer_reward_applied: float
    previous_arm: int
    outer_probs: list[float]
    inner_weights: list[float]
    outer_weights: list[float]


@dataclass
class Exp3:
    """Exp3 (Auer et al. 2002) as used by DynaOpt: p = (1−γ)·w/Σw + γ/K; w_c ← w_c·exp(γ·r/(p_c·K)).

    `weights` defaults to K ones. `rng` for :meth:`draw` is owned by the caller (save its state
    with ``rng.getstate()`` next to :meth:`state_dict` for an exactly resumable run).
    """

    n_arms: int
    gamma: float = 0.07
    reward_min: float = -1.0
    reward_max: float = 1.0
    weights: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.n_arms < 1:
            raise ValueError(f"Exp3 needs at least one arm, got {self.n_arms}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"Exp3 gamma must be in (0, 1], got {self.gamma}")
        if self.reward_min > self.reward_max:
            raise ValueError("reward_min must be <= reward_max")
        if not self.weights:
            self.weights = [1.0] * self.n_arms
        if len(self.weights) != self.n_arms:
            raise ValueError(f"{len(self.weights)} weights for {self.n_arms} arms")
        self.weights = [float(w) for w in self.weights]

    def probs(self) -> list[float]:
        """Arm probabilities (1−γ)·w/Σw + γ/K."""
        total = sum(self.weights)
        K = self.n_arms
        return [(1.0 - self.gamma) * w / total + self.gamma / K for w in self.weights]

    def draw(self, rng: random.Random) -> int:
        """Sample an arm from :meth:`probs` with one ``rng.random()`` call."""
        u = rng.random()
        cumulative = 0.0
        probs = self.probs()
        for arm, p in enumerate(probs):
            cumulative += p
            if u < cumulative:
                return arm
        return self.n_arms - 1  # rounding: the cumulative sum may end just below 1

    def update(self, arm: int, reward: float) -> float:
        """w_arm ← w_arm·exp(γ·r/(p_arm·K)), p_arm taken before the update; r clipped.

        Returns the clipped reward that was applied.
        """
        if not 0 <= arm < self.n_arms:
            raise ValueError(f"arm {arm} out of range for {self.n_arms} arms")
        if not math.isfinite(reward):
            raise ValueError(f"Exp3 reward must be finite, got {reward}")
        r = min(max(float(reward), self.reward_min), self.reward_max)
        p = self.probs()[arm]
        self.weights[arm] *= math.exp(self.gamma * r / (p * self.n_arms))
        self._rescale()
        return r

    def reset_arm(self, arm: int) -> None:
        """Set one arm's weight back to its initial value 1."""
        self.weights[arm] = 1.0

    def _rescale(self) -> None:
        top = max(self.weights)
        if top > _RESCALE_HI or top < _RESCALE_LO:
            self.weights = [w / top for w in self.weights]

    def state_dict(self) -> Exp3State:
        """JSON-serialisable state."""
        return {
            "n_arms": self.n_arms,
            "gamma": self.gamma,
            "reward_min": self.reward_min,
            "reward_max": self.reward_max,
            "weights": list(self.weights),
        }

    def load_state_dict(self, state: Exp3State) -> None:
        """Restore :meth:`state_dict` output (the arm count must match)."""
        if int(state["n_arms"]) != self.n_arms:
            raise ValueError(f"state has {state['n_arms']} arms, this bandit {self.n_arms}")
        self.gamma = float(state["gamma"])
        self.reward_min = float(state["reward_min"])
        self.reward_max = float(state["reward_max"])
        self.weights = [float(w) for w in state["weights"]]


@dataclass
class DynaOpt:
    """DynaOpt reward weighting: inner K-arm Exp3 + outer (K+1)-arm Exp3 (EMORL §3).

    Call :meth:`start` once before training (the authors draw the first outer arm before the
    first step; :meth:`after_validation` calls it if you forget), use :meth:`reward_weights` for
    the combined reward Σ_k w_k·r_k, and call :meth:`after_validation` after every validation.
    See the module docstring for the exact update order.
    """

    n_objectives: int
    gamma: float = 0.07
    window: int = 5
    inner: Exp3 = field(init=False)
    outer: Exp3 = field(init=False)
    history: list[list[float]] = field(init=False)
    last_arm: int | None = field(init=False, default=None)
    n_validations: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if self.n_objectives < 1:
            raise ValueError("DynaOpt needs at least one objective")
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")
        self.inner = Exp3(self.n_objectives, self.gamma)
        self.outer = Exp3(self.n_objectives + 1, self.gamma)
        self.history = [[] for _ in range(self.n_objectives)]

    def reward_weights(self) -> list[float]:
        """Inner bandit weights normalised to sum 1."""
        total = sum(self.inner.weights)
        return [w / total for w in self.inner.weights]

    def _apply(self, arm: int) -> int | None:
        """Use a freshly drawn outer arm: reward inner arm `arm` with 1 once if arm < K."""
        self.last_arm = arm
        if arm < self.n_objectives:
            self.inner.update(arm, 1.0)
            return arm
        return None

    def start(self, rng: random.Random) -> DrawInfo:
        """Draw and apply the first outer arm (before any validation)."""
        arm = self.outer.draw(rng)
        rewarded = self._apply(arm)
        return {"outer_arm": arm, "inner_rewarded": rewarded, "weights": self.reward_weights()}

    def outer_reward(self, val_means: list[float]) -> float:
        """Mean over k of (current mean_k − mean of k's last `window` past means); 0 if none."""
        diffs = []
        for k, current in enumerate(val_means):
            past = self.history[k][-self.window :]
            diffs.append(float(current) - sum(past) / len(past) if past else 0.0)
        return sum(diffs) / len(diffs)

    def after_validation(self, val_means: list[float], rng: random.Random) -> ValidationInfo:
        """Update both bandits from a validation result and draw the next outer arm.

        val_means: one validation mean reward per objective. Returns a dict for logging.
        """
        if len(val_means) != self.n_objectives:
            raise ValueError(
                f"{len(val_means)} validation means for {self.n_objectives} objectives"
            )
        if any(not math.isfinite(float(v)) for v in val_means):
            raise ValueError(f"validation means must be finite, got {val_means}")
        prev_arm = self.last_arm if self.last_arm is not None else self.start(rng)["outer_arm"]
        reward = self.outer_reward(val_means)
        applied = self.outer.update(prev_arm, reward)
        for k, v in enumerate(val_means):
            self.history[k].append(float(v))
        arm = self.outer.draw(rng)
        rewarded = self._apply(arm)
        self.n_validations += 1
        return {
            "outer_reward": reward,
            "outer_reward_applied": applied,
            "previous_arm": prev_arm,
            "outer_arm": arm,
            "inner_rewarded": rewarded,
            "weights": self.reward_weights(),
            "outer_probs": self.outer.probs(),
            "inner_weights": list(self.inner.weights),
            "outer_weights": list(self.outer.weights),
        }

    def state_dict(self) -> DynaOptState:
        """JSON-serialisable state of both bandits, the history and the pending arm."""
        return {
            "n_objectives": self.n_objectives,
            "gamma": self.gamma,
            "window": self.window,
            "inner": self.inner.state_dict(),
            "outer": self.outer.state_dict(),
            "history": [list(h) for h in self.history],
            "last_arm": self.last_arm,
            "n_validations": self.n_validations,
        }

    def load_state_dict(self, state: DynaOptState) -> None:
        """Restore :meth:`state_dict` output (the objective count must match)."""
        if int(state["n_objectives"]) != self.n_objectives:
            raise ValueError(
                f"state has {state['n_objectives']} objectives, this DynaOpt {self.n_objectives}"
            )
        self.gamma = float(state["gamma"])
        self.window = int(state["window"])
        self.inner.load_state_dict(state["inner"])
        self.outer.load_state_dict(state["outer"])
        self.history = [[float(v) for v in h] for h in state["history"]]
        self.last_arm = None if state["last_arm"] is None else int(state["last_arm"])
        self.n_validations = int(state["n_validations"])
