"""Metrics (EMORL §5.3, MOLMA §4.5.1) against hand-computed values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from moalign.evaluation.metrics import (
    distinct2_authors,
    distinct_n,
    diversity2,
    diversity2_authors,
    edit_rate,
    edit_rate_authors,
    hypervolume,
    levenshtein,
    lexical_metrics,
    mean_std,
    pareto_front,
    tokenize_words,
    win_rates,
)
from moalign.evaluation.treebank import split_sentences, treebank_tokens, word_tokenize


def test_tokenize_words():
    assert tokenize_words("Don't worry—it's self-care!") == ["don't", "worry", "it's", "self-care"]
    assert tokenize_words("Fine,thanks!  OK.") == ["fine", "thanks", "ok"]
    assert tokenize_words("  ...  ") == []


def test_distinct_n_and_diversity2():
    # bigrams: (i feel) (feel sad) (sad i) (i feel) (feel sad) -> 3 distinct / 5
    assert distinct_n("I feel sad, I feel sad.", 2) == pytest.approx(3 / 5)
    assert distinct_n("the cat sat on the mat", 2) == 1.0
    assert distinct_n("the cat sat on the mat", 1) == pytest.approx(5 / 6)
    assert distinct_n("Hello!", 2) == 0.0
    assert distinct_n("", 2) == 0.0
    responses = ["I feel sad, I feel sad.", "the cat sat on the mat", "hello"]
    assert diversity2(responses) == pytest.approx((0.6 + 1.0 + 0.0) / 3)
    with pytest.raises(ValueError):
        diversity2([])


def test_edit_rate():
    # [i feel so alone] -> [you feel alone]: substitute i->you, delete so = 2, / max(4, 3)
    assert edit_rate("I feel so alone", "You feel alone") == pytest.approx(0.5)
    assert edit_rate("I feel sad.", "i feel SAD") == 0.0
    assert edit_rate("", "") == 0.0
    assert edit_rate("a b", "") == 1.0
    assert edit_rate("", "x y z") == 1.0
    assert levenshtein(list("kitten"), list("sitting")) == 3


def test_mean_std():
    mean, std = mean_std([1, 2, 3, 4])
    assert mean == 2.5 and std == pytest.approx(np.sqrt(5 / 3))  # sample std, ddof=1
    assert mean_std([3.0]) == (3.0, 0.0)
    with pytest.raises(ValueError):
        mean_std([])
    with pytest.raises(ValueError):
        mean_std([1.0, float("nan")])


def test_pareto_front():
    pts = [[1, 0], [0, 1], [0.5, 0.5], [0.4, 0.4], [1, 0], [0.5, 0.2]]
    assert pareto_front(pts) == [0, 1, 2, 4]  # duplicates of a front point are both kept
    pts3 = [[1, 1, 1], [1, 1, 0], [0, 0, 2], [0.5, 2, 0]]
    assert pareto_front(pts3) == [0, 2, 3]


def test_hypervolume_2d():
    # staircase (3,1), (2,2), (1,3) over ref (0,0): 3·1 + 2·1 + 1·1
    assert hypervolume([[1, 3], [2, 2], [3, 1]], [0, 0]) == pytest.approx(6.0)
    assert hypervolume([[1, 3], [2, 2], [3, 1], [1, 1]], [0, 0]) == pytest.approx(6.0)
    # ref (1, 1): (1, 3) has zero width, (2, 2) adds 1 · 1, (3, 1.5) adds 1 · 0.5 beyond x = 2
    assert hypervolume([[1, 3], [2, 2], [3, 1.5]], [1, 1]) == pytest.approx(1.5)
    assert hypervolume([[1, -1]], [0, 0]) == 0.0  # not better than ref in every coordinate
    assert hypervolume([[2.0]], [0.5]) == 1.5


def test_hypervolume_3d_hand_examples():
    assert hypervolume([[1, 2, 3]], [0, 0, 0]) == pytest.approx(6.0)
    assert hypervolume([[2, 1, 1], [1, 2, 1]], [0, 0, 0]) == pytest.approx(3.0)
    # inclusion-exclusion: 3 · 2 - 3 · 1 + 1
    assert hypervolume([[2, 1, 1], [1, 2, 1], [1, 1, 2]], [0, 0, 0]) == pytest.approx(4.0)


def _inclusion_exclusion(points: np.ndarray, ref: np.ndarray) -> float:
    total = 0.0
    for r in range(1, len(points) + 1):
        for subset in itertools.combinations(points, r):
            total += (-1) ** (r + 1) * np.prod(np.min(subset, axis=0) - ref)
    return total


def test_hypervolume_3d_exact_matches_inclusion_exclusion():
    rng = np.random.default_rng(0)
    pts = rng.random((7, 3))
    ref = np.zeros(3)
    assert hypervolume(pts, ref) == pytest.approx(_inclusion_exclusion(pts, ref), rel=1e-12)
    # non-zero reference point
    ref = np.array([0.1, 0.2, 0.05])
    inside = pts[np.all(pts > ref, axis=1)]
    assert hypervolume(pts, ref) == pytest.approx(_inclusion_exclusion(inside, ref), rel=1e-12)


def test_hypervolume_is_exact_beyond_three_objectives():
    # two 4-D boxes of volume 2 overlapping in a unit box: 2 + 2 - 1
    assert hypervolume([[2, 1, 1, 1], [1, 2, 1, 1]], [0, 0, 0, 0]) == pytest.approx(3.0)
    rng = np.random.default_rng(1)
    pts = rng.random((6, 5))
    ref = np.full(5, 0.05)
    inside = pts[np.all(pts > ref, axis=1)]
    assert hypervolume(pts, ref) == pytest.approx(_inclusion_exclusion(inside, ref), rel=1e-12)


def test_win_rates_with_ties():
    r = win_rates([3, 3, 3, 3], [1, 3, 5, 2])
    assert r == {"win": 2, "tie": 1, "loss": 1, "win_rate": pytest.approx(2.5 / 4)}
    r = win_rates([2.0, 0.0, 0.0, 0.0, 1.0], [1.0, 2.0, 3.0, 0.5, 1.0])  # 3 losses, counted
    assert (r["win"], r["tie"], r["loss"]) == (1, 1, 3) and r["win_rate"] == pytest.approx(0.3)
    r = win_rates([1.0, 2.0], [1.0, 2.0])
    assert r["tie"] == 2 and r["win_rate"] == 0.5
    r = win_rates([1.0, 2.0], [1.05, 1.0], tol=0.1)
    assert (r["win"], r["tie"], r["loss"]) == (1, 1, 0)
    with pytest.raises(ValueError):
        win_rates([1.0], [1.0, 2.0])


# ----------------------------------------------------------------------------- the authors'


def test_authors_diversity2_divides_by_words_and_keeps_case():
    twelve = "I hear that you feel stuck at work and it hurts you"  # no repeated bigram
    assert len(twelve.split()) == 12
    assert distinct_n(twelve, 2) == 1.0  # 11 distinct / 11 bigrams
    assert distinct2_authors(twelve) == pytest.approx(11 / 12)  # 11 distinct / 12 words
    # case kept: (You, you) (you, You) (You, you) = 2 distinct / 4 words; lower-cased: 1 / 3
    assert distinct2_authors("You you You you") == pytest.approx(2 / 4)
    assert distinct_n("You you You you", 2) == pytest.approx(1 / 3)
    # whitespace words: punctuation stays attached ("sad," and "sad." differ): 3 / 4 vs 2 / 3
    assert distinct2_authors("so sad, so sad.") == pytest.approx(3 / 4)
    assert distinct_n("so sad, so sad.", 2) == pytest.approx(2 / 3)
    assert distinct2_authors("") == 0.0 and distinct2_authors("one") == 0.0
    assert diversity2_authors([twelve, "a b a b"]) == pytest.approx((11 / 12 + 2 / 4) / 2)
    with pytest.raises(ValueError):
        diversity2_authors([])


def test_authors_edit_rate_on_nltk_style_tokens_with_case():
    # [I, feel, sad, .] -> [i, feel, SAD]: two substitutions and one deletion / 4
    assert edit_rate_authors("I feel sad.", "i feel SAD") == pytest.approx(3 / 4)
    assert edit_rate("I feel sad.", "i feel SAD") == 0.0
    # clitics are tokens: [I, ca, n't, sleep, .] -> [You, ca, n't, sleep, ?]
    assert edit_rate_authors("I can't sleep.", "You can't sleep?") == pytest.approx(2 / 5)
    assert edit_rate_authors("", "") == 0.0 and edit_rate_authors("", "Hi.") == 1.0
    rows = lexical_metrics(["I feel sad.", "a b"], ["i feel SAD", "a b a b"])
    assert rows == {"diversity2": [1.0, pytest.approx(2 / 3)], "edit_rate": [0.0, 0.5],
                    "diversity2_authors": [pytest.approx(2 / 3), 0.5],
                    "edit_rate_authors": [0.75, 0.5]}


SENTENCES = [
    "I can't sleep, and \"nobody\" cares.", "You're worried (again) -- that's hard!",
    "Don't worry—it's self-care!", "I gotta go... now?", "It costs $5.50 at 3:30pm.",
    "I cannot believe it's 1,000 miles; wow.", "She said 'hello' to me.",
    "They've gone, we'll see, I'd say.", "My boss' car is [very] {nice} <ok>.",
    "\"Quoted start\" and end.", "Gimme a sec, lemme think, wanna come?", "'Tis the season.",
    "I feel so alone", "Was it you?! Really!!", "I am 50% sure & #1 @home *star*.",
    "He's 6'2\" tall.", "“Fancy quotes” and ‘single’ ones.",
    "well,I think:yes", "Mr. Smith's dog.", "I'm fine, I'll manage, I've tried, we'd go.",
]


@pytest.mark.parametrize("sentence", SENTENCES)
def test_treebank_tokens_match_nltk(sentence):
    """One sentence: our regex tokens equal nltk's own NLTKWordTokenizer (word_tokenize's second
    step; its first, Punkt sentence splitting, needs a data download)."""
    nltk_tokenize = pytest.importorskip("nltk.tokenize")
    assert treebank_tokens(sentence) == nltk_tokenize.NLTKWordTokenizer().tokenize(sentence)


def test_word_tokenize_splits_sentences_before_the_treebank_rules():
    assert word_tokenize("I feel sad. I am tired.") == \
        ["I", "feel", "sad", ".", "I", "am", "tired", "."]
    assert split_sentences("Why? Because I said so! OK.") == \
        ["Why?", "Because I said so!", "OK."]
    assert split_sentences("Ask Dr. Smith. He knows.") == ["Ask Dr. Smith.", "He knows."]
    assert split_sentences("it is 3.5 now. fine") == ["it is 3.5 now. fine"]  # no capital
    assert word_tokenize("") == []
