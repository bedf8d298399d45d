"""Weights and aggregation level reach the decoder: for an asymmetric point (0.2, 0.8) and every
level, the search's evaluator, a study's generation function and the HTTP server return exactly
what a direct `decoding.generate` call with those weights and that level returns.

The reference is the lowest-level API: per-sequence weights (B, K) in the ensemble's objective
order, handed to `decoding.generate` by this test. A swapped weight order or an ignored level
would change the output: the preconditions below check that it would, for this tiny ensemble.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from helpers_objectives import length_score, make_tiny_ensemble, vowel_score

from moalign.emorl import decoding
from moalign.emorl.manifest import load_ensemble
from moalign.evaluation.evaluate import ensemble_generate_fn, make_weight_evaluator
from moalign.models import format_prompts
from moalign.rewards.scorers import build_scorer
from moalign.sampling import Sampling
from moalign.serve import create_app

PROMPTS = ["I feel stressed about work.", "My sister and I keep arguing."]
LEVELS = ("states", "logits", "params")
POINT = (0.2, 0.8)  # (length, vowel): asymmetric on purpose
GREEDY = Sampling.greedy(6)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_ensemble(tmp_path_factory.mktemp("wiring") / "run")


@pytest.fixture(scope="module")
def ensemble(run_dir: Path):
    ens, manifest = load_ensemble(run_dir, device="cpu")
    assert ens.objectives == ["length", "vowel"]
    return ens


_DIRECT: dict[tuple, list[str]] = {}


def direct(ens, weights: tuple[float, ...], level: str) -> list[str]:
    """The reference: one aggregated decode with per-sequence weights (B, K) (memoised)."""
    key = (id(ens), weights, level)
    if key not in _DIRECT:
        texts = format_prompts(ens.policy, PROMPTS, None)
        w = torch.tensor([list(weights)] * len(PROMPTS), dtype=torch.float32)
        _DIRECT[key] = decoding.generate(ens, texts, w, level, GREEDY)
    return list(_DIRECT[key])


def test_preconditions_order_and_level_change_the_output(ensemble) -> None:
    for level in LEVELS:
        assert direct(ensemble, POINT, level) != direct(ensemble, POINT[::-1], level), level
    assert direct(ensemble, POINT, "states") != direct(ensemble, POINT, "params")


class Recorder:
    """A python scorer that keeps every response it scores (in call order)."""

    def __init__(self, name: str, fn) -> None:
        self.seen: list[str] = []
        self.scorer = build_scorer({"kind": "python", "name": name, "function": self._score})
        self.fn = fn

    def _score(self, prompts: list[str], responses: list[str]) -> list[float]:
        self.seen += list(responses)
        return self.fn(prompts, responses)


@pytest.mark.parametrize("level", LEVELS)
def test_search_evaluator_decodes_each_point_with_its_weights_and_level(ensemble, level) -> None:
    rec = [Recorder("length", length_score), Recorder("vowel", vowel_score)]
    evaluate = make_weight_evaluator(ensemble, PROMPTS, [r.scorer for r in rec], level=level,
                                     sampling=GREEDY)
    results = evaluate([POINT, (1.0, 0.0)])
    want = direct(ensemble, POINT, level) + direct(ensemble, (1.0, 0.0), level)
    assert rec[0].seen == rec[1].seen == [w.strip() for w in want]  # scorers see it stripped
    assert [r.point for r in results] == [POINT, (1.0, 0.0)]
    first = [w.strip() for w in want[:len(PROMPTS)]]
    assert results[0].objectives == {
        "length": pytest.approx(sum(length_score(PROMPTS, first)) / len(PROMPTS)),
        "vowel": pytest.approx(sum(vowel_score(PROMPTS, first)) / len(PROMPTS))}


@pytest.mark.parametrize("level", LEVELS)
def test_generation_function_of_a_study_uses_its_weights_and_level(ensemble, level) -> None:
    fn = ensemble_generate_fn(ensemble, {"length": POINT[0], "vowel": POINT[1]}, level,
                              sampling=GREEDY)
    assert [r.strip() for r in fn(PROMPTS)] == [r.strip() for r in direct(ensemble, POINT, level)]


@pytest.fixture(scope="module")
def client(run_dir: Path):
    app = create_app(run_dir, max_batch=4, max_wait_ms=0, max_new_tokens_limit=16,
                     default_max_new_tokens=6, device="cpu", warmup=False)
    with TestClient(app) as c:
        yield c


@pytest.mark.parametrize("level", LEVELS)
def test_server_generate_uses_the_requested_weights_and_level(client, ensemble, level) -> None:
    body = {"prompts": PROMPTS, "weights": {"vowel": POINT[1], "length": POINT[0]},
            "level": level, "max_new_tokens": 6}
    r = client.post("/generate", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["weights"] == {"length": POINT[0], "vowel": POINT[1]}
    assert [x.strip() for x in out["responses"]] == \
        [x.strip() for x in direct(ensemble, POINT, level)]
