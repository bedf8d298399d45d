"""Reward-hacking audit measures against hand-counted values."""

from __future__ import annotations

import pytest

from moalign.evaluation.audit import (
    audit,
    corpus_distinct,
    has_repeated_ngram,
    length_stats,
    longest_common_run,
    repeated_token_share,
)


def test_repeated_ngram_needs_the_same_three_words_twice() -> None:
    assert has_repeated_ngram("you feel sad, you feel sad")
    assert not has_repeated_ngram("you feel sad and you feel alone")  # "you feel" is a 2-gram
    assert not has_repeated_ngram("sad sad")  # fewer than 3 tokens
    assert has_repeated_ngram("a a a a")  # ("a","a","a") at 0 and 1


def test_repeated_token_share_counts_tokens_of_later_occurrences() -> None:
    # tokens: i am here i am here ok (7); 3-grams: (i am here) at 0 and 3 -> tokens 3,4,5 covered
    assert repeated_token_share("I am here. I am here, ok") == pytest.approx(3 / 7)
    assert repeated_token_share("nothing repeats in this reply") == 0.0
    assert repeated_token_share("") == 0.0
    # "a a a a a": 3-grams at 0,1,2 all equal; repeats at 1 and 2 cover tokens 1..4
    assert repeated_token_share("a a a a a") == pytest.approx(4 / 5)


def test_longest_common_run_is_the_longest_shared_word_sequence() -> None:
    prompt = "I feel stressed about work lately and I cannot sleep"
    assert longest_common_run("You feel stressed about work lately.", prompt) == 5
    assert longest_common_run("It sounds hard: stressed about work lately and I cannot sleep",
                              prompt) == 8
    assert longest_common_run("completely different", prompt) == 0


def test_corpus_distinct_pools_all_responses() -> None:
    texts = ["you are strong", "you are brave"]
    assert corpus_distinct(texts, 1) == pytest.approx(4 / 6)  # you, are, strong, brave
    assert corpus_distinct(texts, 2) == pytest.approx(3 / 4)  # (you are) twice
    assert corpus_distinct([""], 2) == 0.0


def test_length_stats_against_hand_percentiles() -> None:
    texts = ["a", "a b", "a b c", "a b c d", "a b c d e"]  # lengths 1..5
    stats = length_stats(texts)
    assert stats == {"mean": 3.0, "median": 3.0, "p10": pytest.approx(1.4),
                     "p90": pytest.approx(4.6)}


def test_audit_of_a_gamed_system() -> None:
    prompt = "My sister and I keep arguing about money every single week"
    responses = ["great great great great", "my sister and i keep arguing about money", "",
                 "That sounds exhausting for you."]
    a = audit([prompt] * 4, responses)
    assert a["n"] == 4
    assert a["repetition_rate"] == 0.25
    assert a["repeated_token_share"] == pytest.approx((3 / 4) / 4)  # only the first response
    assert a["prompt_copy_rate"] == 0.25  # 8 shared words >= 6
    assert a["empty_rate"] == 0.25
    assert a["length"]["mean"] == pytest.approx((4 + 8 + 0 + 5) / 4)
    with pytest.raises(ValueError, match="prompts"):
        audit([prompt], responses)
