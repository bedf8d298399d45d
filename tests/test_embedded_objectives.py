"""The embedded counselling objectives rank clear cases correctly.

Heads are trained once on first use into the default cache (`MOALIGN_CACHE`), so later runs only
load them. The fluency test loads the bundled SmolLM2 and is marked slow.
"""

from __future__ import annotations

import random

import pytest

from moalign.data import EMBEDDED_DATA_DIR
from moalign.rewards.heads import EMBEDDED_HEADS, ensure_embedded_head, read_meta
from moalign.rewards.scorers import build_scorer, score_matrix

pytestmark = pytest.mark.skipif(
    not all((EMBEDDED_DATA_DIR / f"{f}.jsonl").is_file() for f in EMBEDDED_HEADS.values()),
    reason="embedded label data not written yet",
)

# (client statement, reflective empathic answer, dismissive off-topic answer)
CASES = [
    ("I've been so overwhelmed at work that I can't sleep anymore.",
     "It sounds like the pressure at work has become so heavy that it's keeping you up at "
     "night, and you're exhausted.",
     "Whatever. Did you see the football game last night?"),
    ("My mother criticises everything I do, and I'm starting to believe her.",
     "You feel hurt by your mother's constant criticism, and it's shaking your confidence in "
     "yourself.",
     "Just ignore it. Anyway, what's for dinner?"),
    ("Since my divorce I feel like I have no one to talk to.",
     "Since the divorce you've been feeling really alone, like there's nobody left who "
     "listens.",
     "Lots of people get divorced. The stock market went up today."),
    ("I keep drinking more than I want to, and I'm scared of where it's heading.",
     "You're worried that your drinking is getting out of control, and that frightens you.",
     "Drinking is fine. Have you tried the new phone that came out?"),
]


@pytest.fixture(scope="module")
def head_scorers():
    return [build_scorer("reflection"), build_scorer("empathy")]


def test_heads_trained_with_good_heldout_accuracy(head_scorers):
    for name in EMBEDDED_HEADS:
        meta = read_meta(ensure_embedded_head(name))
        assert meta["val_accuracy"] > 0.75, (name, meta["val_accuracy"])
        assert meta["n_val"] > 0


def test_reflective_empathic_answer_outscores_dismissive(head_scorers):
    prompts = [c[0] for c in CASES for _ in range(2)]
    responses = [r for c in CASES for r in (c[1], c[2])]
    m = score_matrix(head_scorers, prompts, responses)  # (2 * n, 2)
    assert ((m >= 0) & (m <= 1)).all()
    good, bad = m[0::2], m[1::2]  # (n, 2)
    assert (good > bad).all(), (good, bad)


@pytest.mark.slow
def test_fluent_sentence_outscores_shuffled_words():
    fluency = build_scorer("fluency")
    rng = random.Random(0)
    prompts, responses = [], []
    for prompt, good, _ in CASES:
        words = good.split()
        rng.shuffle(words)
        prompts += [prompt, prompt]
        responses += [good, " ".join(words)]
    s = score_matrix([fluency], prompts, responses)[:, 0]  # (2 * n,)
    assert ((s > 0) & (s <= 1)).all()
    assert (s[0::2] > s[1::2]).all(), s
