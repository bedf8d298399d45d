"""Tests for moalign.algorithms.dynaopt: Exp3 maths by hand, DynaOpt update order, checkpoints."""

from __future__ import annotations

import copy
import json
import math
import random

import pytest

from moalign.algorithms.dynaopt import DynaOpt, Exp3


class FixedRng(random.Random):
    """random() returns the queued values in order (to force a particular arm)."""

    def __init__(self, values: list[float]) -> None:
        super().__init__(0)
        self.values = list(values)

    def random(self) -> float:
        return self.values.pop(0)


def test_exp3_probs_and_update_by_hand():
    b = Exp3(3, gamma=0.07)
    assert b.probs() == pytest.approx([1 / 3] * 3)
    applied = b.update(0, 1.0)
    assert applied == 1.0
    # p_0 = 1/3 before the update -> w_0 = exp(0.07 * 1 / (1/3 * 3)) = exp(0.07)
    w0 = math.exp(0.07)
    assert b.weights == pytest.approx([w0, 1.0, 1.0])
    total = w0 + 2.0
    p = [0.93 * w0 / total + 0.07 / 3, 0.93 / total + 0.07 / 3, 0.93 / total + 0.07 / 3]
    assert b.probs() == pytest.approx(p)
    assert sum(b.probs()) == pytest.approx(1.0)
    # second update on arm 1 with a negative reward, using p_1 before the update
    b.update(1, -0.5)
    assert b.weights[1] == pytest.approx(math.exp(0.07 * -0.5 / (p[1] * 3)))
    assert b.weights[0] == pytest.approx(w0)


def test_exp3_reward_clipping_and_validation():
    b = Exp3(2)
    assert b.update(1, 50.0) == 1.0
    assert b.weights[1] == pytest.approx(math.exp(0.07 / (0.5 * 2)))
    assert b.update(0, -50.0) == -1.0
    with pytest.raises(ValueError):
        b.update(0, float("nan"))
    with pytest.raises(ValueError):
        b.update(2, 1.0)
    with pytest.raises(ValueError):
        Exp3(0)


def test_exp3_no_overflow_over_long_runs():
    b = Exp3(2, gamma=0.07)
    for _ in range(20000):
        b.update(0, 1.0)
        b.update(1, -1.0)
    assert all(math.isfinite(w) for w in b.weights)
    p = b.probs()
    assert all(math.isfinite(x) for x in p) and sum(p) == pytest.approx(1.0)
    assert p[1] == pytest.approx(0.07 / 2)


def test_exp3_draw_follows_probs_and_is_seeded():
    b = Exp3(3, weights=[1.0, 2.0, 7.0])
    rng = random.Random(0)
    n = 20000
    counts = [0, 0, 0]
    for _ in range(n):
        counts[b.draw(rng)] += 1
    for c, p in zip(counts, b.probs(), strict=True):
        assert c / n == pytest.approx(p, abs=0.015)
    a = [b.draw(random.Random(5)) for _ in range(3)]
    assert a == [b.draw(random.Random(5)) for _ in range(3)]
    assert b.draw(FixedRng([0.0])) == 0
    assert b.draw(FixedRng([0.999999999])) == 2


def test_exp3_reset_arm_and_state_roundtrip():
    b = Exp3(3, gamma=0.1)
    b.update(2, 0.7)
    b.reset_arm(2)
    assert b.weights == [1.0, 1.0, 1.0]
    b.update(1, 0.3)
    state = json.loads(json.dumps(b.state_dict()))
    c = Exp3(3)
    c.load_state_dict(state)
    assert c == b
    with pytest.raises(ValueError):
        Exp3(2).load_state_dict(state)


def test_dynaopt_drawing_arm_c_rewards_inner_arm_c():
    d = DynaOpt(3)
    # outer probs are uniform 1/4: u = 0.3 selects arm 1
    info = d.start(FixedRng([0.3]))
    assert info["outer_arm"] == 1 and info["inner_rewarded"] == 1
    w1 = math.exp(0.07 * 1.0 / (1 / 3 * 3))
    assert d.inner.weights == pytest.approx([1.0, w1, 1.0])
    assert d.reward_weights() == pytest.approx([1 / (2 + w1), w1 / (2 + w1), 1 / (2 + w1)])
    assert sum(d.reward_weights()) == pytest.approx(1.0)
    # no history: outer reward 0 -> outer weight of arm 1 unchanged; draw the keep arm
    out = d.after_validation([0.5, 0.5, 0.5], FixedRng([0.999]))
    assert out["outer_reward"] == 0.0 and out["previous_arm"] == 1
    assert out["outer_arm"] == 3 and out["inner_rewarded"] is None
    assert d.outer.weights == pytest.approx([1.0, 1.0, 1.0, 1.0])
    assert d.inner.weights == pytest.approx([1.0, w1, 1.0])  # keep arm: unchanged, not reset


def test_dynaopt_outer_reward_window_and_update():
    d = DynaOpt(2, window=2)
    d.start(FixedRng([0.0]))  # arm 0
    assert d.outer_reward([0.4, 0.6]) == 0.0
    d.after_validation([0.5, 0.5], FixedRng([0.0]))  # arm 0 again
    d.after_validation([0.7, 0.3], FixedRng([0.0]))
    d.after_validation([0.1, 0.1], FixedRng([0.0]))
    # history per objective: [0.5, 0.7, 0.1] and [0.5, 0.3, 0.1]; window 2 -> last two
    expected = ((0.9 - (0.7 + 0.1) / 2) + (0.9 - (0.3 + 0.1) / 2)) / 2
    assert d.outer_reward([0.9, 0.9]) == pytest.approx(expected)
    probs_before = d.outer.probs()
    w_before = list(d.outer.weights)
    out = d.after_validation([0.9, 0.9], FixedRng([0.999]))
    assert out["previous_arm"] == 0 and out["outer_reward"] == pytest.approx(expected)
    w_expected = w_before[0] * math.exp(0.07 * expected / (probs_before[0] * 3))
    assert d.outer.weights[0] == pytest.approx(w_expected)
    assert out["outer_arm"] == 2 and out["inner_rewarded"] is None
    assert d.n_validations == 4


def test_dynaopt_after_validation_starts_if_needed_and_validates():
    d = DynaOpt(2)
    out = d.after_validation([0.2, 0.4], random.Random(0))
    assert out["previous_arm"] is not None
    with pytest.raises(ValueError):
        d.after_validation([0.2], random.Random(0))
    with pytest.raises(ValueError):
        d.after_validation([0.2, float("nan")], random.Random(0))


def test_dynaopt_state_roundtrip_resumes_identically():
    rng = random.Random(123)
    data = random.Random(9)
    d = DynaOpt(3, window=3)
    d.start(rng)
    for _ in range(6):
        d.after_validation([data.random() for _ in range(3)], rng)
    state = json.loads(json.dumps(d.state_dict()))
    rng_state = rng.getstate()
    resumed = DynaOpt(3)
    resumed.load_state_dict(state)
    rng2 = random.Random()
    rng2.setstate(rng_state)
    original = copy.deepcopy(d)
    assert resumed.state_dict() == original.state_dict()
    for _ in range(10):
        means = [data.random() for _ in range(3)]
        assert original.after_validation(means, rng) == resumed.after_validation(means, rng2)
    assert resumed.state_dict() == original.state_dict()
    with pytest.raises(ValueError):
        DynaOpt(2).load_state_dict(state)
