"""Pair heads with surface features and an adversarial held-out set; `prepare`'s accuracy line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from moalign.cli import app
from moalign.commands.scoring import head_accuracy_line
from moalign.rewards import heads
from moalign.rewards.heads import TrainScorerConfig, read_meta, surface_features, train_scorer
from moalign.rewards.scorers import build_scorer

GOOD = "You're worried the exams are taking over."
WEATHER = "The weather is nice today."


def test_surface_features_by_hand() -> None:
    prompt = "I miss my dad so much."
    # 12 words, 11 bigrams of which 6 distinct; 10 trigrams, 8 of them in the prompt's 4;
    # first person: i, my, i, my; no final punctuation; no question mark
    echo = "I miss my dad so much I miss my dad so much"
    s = surface_features([prompt, prompt], [echo, "Do you miss him?"])
    want = torch.tensor([[1 - 6 / 11, 1.0, 8 / 10, 4 / 12, 0.0],
                         [0.0, 0.0, 0.0, 0.0, 1.0]])
    assert torch.allclose(s, want)


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    tmp = tmp_path_factory.mktemp("head")
    rows = []
    for i in range(12):
        p = f"I have been worried about my exams number {i} and cannot focus."
        rows += [{"prompt": p, "response": GOOD, "label": 1, "family": "positive"},
                 {"prompt": p, "response": WEATHER, "label": 0, "family": "off_topic"}]
    data = write_rows(tmp / "labels.jsonl", rows)
    # adversarial: for two prompts the same pair labelled both ways (exactly one of each two
    # rows is right, whatever the head says), plus two weather replies labelled 0 (right as long
    # as the head calls weather a 0, checked below): 4 right of 6
    adv = []
    for p in ("My exams start on Monday.", "I failed a mock exam."):
        adv += [{"prompt": p, "response": GOOD, "label": lab, "family": "both"} for lab in (0, 1)]
        adv.append({"prompt": p, "response": WEATHER, "label": 0, "family": "weather"})
    adversarial = write_rows(tmp / "adversarial.jsonl", adv)
    cfg = TrainScorerConfig(data=str(data), out=str(tmp / "out"), epochs=100, seed=0,
                            adversarial=str(adversarial))
    return train_scorer(cfg), tmp / "out"


def test_training_reports_plain_and_adversarial_accuracy(trained: tuple[dict, Path]) -> None:
    result, out = trained
    weather = build_scorer(str(out)).score(["My exams start on Monday.", "I failed a mock exam."],
                                           [WEATHER, WEATHER])
    assert (weather < 0.5).all()  # the premise of the 4/6 below
    assert result["adversarial_accuracy"] == 0.6667 and result["n_adversarial"] == 6
    assert result["adversarial_by_family"] == {"both": 0.5, "weather": 1.0}
    assert result["val_accuracy"] == 1.0 and result["n_val"] > 0
    meta = read_meta(out)
    assert meta["adversarial_accuracy"] == 0.6667 and meta["surface"] == list(heads.SURFACE)
    assert meta["val_by_family"] == {"off_topic": 1.0, "positive": 1.0}


def test_surface_head_scores_through_build_scorer(tmp_path: Path) -> None:
    # a head that looks only at "unfinished" (weight 2 on class 1): P(1) = sigmoid(2 * unfinished)
    head = heads.PairHead(dim=384, n_classes=2, extra=len(heads.SURFACE))
    with torch.no_grad():
        head.net.weight.zero_()
        head.net.bias.zero_()
        head.net.weight[1, 4 * 384 + heads.SURFACE.index("unfinished")] = 2.0
    heads.save_head(tmp_path / "h", head, {"backbone": heads.MINILM})
    got = build_scorer(str(tmp_path / "h")).score(["I'm anxious."] * 2, ["Hello.", "Hello there"])
    want = torch.tensor([0.5, 1 / (1 + torch.exp(torch.tensor(-2.0)).item())])
    assert torch.allclose(got, want, atol=1e-5)
    u = torch.zeros(1, 384)
    with pytest.raises(ValueError, match="surface"):
        head.expected_score(u, u)


def test_accuracy_line_names_both_sets() -> None:
    line = head_accuracy_line({"val_accuracy": 0.9126, "n_val": 286,
                               "adversarial_accuracy": 0.9, "n_adversarial": 320})
    assert line == ("held-out accuracy 0.9126 plain (n=286), 0.9000 adversarial (n=320)")
    assert head_accuracy_line({"val_accuracy": 0.5, "n_val": 4}) == \
        "held-out accuracy 0.5000 plain (n=4)"


def test_prepare_prints_each_heads_two_accuracies(trained, monkeypatch, tmp_path) -> None:
    _, out = trained
    monkeypatch.setenv("COLUMNS", "300")
    monkeypatch.setenv("MOALIGN_CACHE", str(tmp_path))
    monkeypatch.setattr("moalign.models.resolve_model", lambda name: f"/bundled/{name}")
    monkeypatch.setattr("moalign.rewards.reward_models.ensure_embedded_reward_models",
                        lambda: None)
    monkeypatch.setattr(heads, "ensure_embedded_head", lambda name: out)
    res = CliRunner().invoke(app, ["prepare"])
    assert res.exit_code == 0, res.output
    lines = [line for line in res.output.splitlines() if " head " in line]
    assert len(lines) == 2
    for name, line in zip(("empathy", "reflection"), lines, strict=True):
        assert f"{name} head" in line
        assert "1.0000 plain" in line and "0.6667 adversarial (n=6)" in line


def test_embedded_head_retrains_when_adversarial_data_changes(monkeypatch, tmp_path) -> None:
    calls: list[str] = []
    monkeypatch.setenv("MOALIGN_CACHE", str(tmp_path))

    def fake_train(cfg: TrainScorerConfig) -> dict:
        calls.append(cfg.adversarial)
        meta = {"data_sha256": heads._file_sha256(heads.embedded_path(cfg.data)),
                "adversarial_sha256": adversarial_sha, "train_config": heads.asdict(cfg)}
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        (Path(cfg.out) / heads.META_FILE).write_text(json.dumps(meta))
        return {}

    monkeypatch.setattr(heads, "train_scorer", fake_train)
    adversarial_sha = "stale"
    heads.ensure_embedded_head("reflection")
    heads.ensure_embedded_head("reflection")  # stale adversarial hash: trains again
    assert calls == ["reflection_adversarial"] * 2
    adversarial_sha = heads._file_sha256(heads.embedded_path("reflection_adversarial"))
    heads.ensure_embedded_head("reflection")
    heads.ensure_embedded_head("reflection")  # now up to date: reused
    assert len(calls) == 3
