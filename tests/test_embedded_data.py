"""The embedded datasets moalign ships: present, well-formed, balanced, leak-free, reproducible."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "src" / "moalign" / "embedded" / "data"
SCRIPT = ROOT / "scripts" / "make_embedded_data.py"

FIELDS = {
    "counsel_train": {"prompt"},
    "counsel_val": {"prompt"},
    "counsel_test": {"prompt"},
    "reflection_labels": {"prompt", "response", "label", "family"},
    "empathy_labels": {"prompt", "response", "label", "family"},
    "reflection_adversarial": {"prompt", "response", "label", "family"},
    "empathy_adversarial": {"prompt", "response", "label", "family"},
    "help_safety_prompts": {"prompt", "kind"},
    "help_prefs": {"prompt", "chosen", "rejected"},
    "safety_prefs": {"prompt", "chosen", "rejected"},
}
MINIMUM = {
    "counsel_train": 200,
    "counsel_val": 32,
    "counsel_test": 32,
    "reflection_labels": 600,
    "empathy_labels": 600,
    "reflection_adversarial": 300,
    "empathy_adversarial": 300,
    "help_safety_prompts": 180,
    "help_prefs": 250,
    "safety_prefs": 250,
}
SPLITS = ("counsel_train", "counsel_val", "counsel_test")


def load(name: str) -> list[dict]:
    lines = (DATA / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def prompts(name: str) -> set[str]:
    return {r["prompt"] for r in load(name)}


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_file_parses_with_expected_fields(name: str) -> None:
    records = load(name)
    assert records, f"{name} is empty"
    for record in records:
        assert set(record) == FIELDS[name], record
        for key, value in record.items():
            if key == "label":
                assert value in (0, 1)
            else:
                assert isinstance(value, str) and value.strip() == value and value, record


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_counts_meet_minimums_and_no_duplicate_records(name: str) -> None:
    records = load(name)
    assert len(records) >= MINIMUM[name]
    keys = [tuple(sorted(r.items())) for r in records]
    assert len(set(keys)) == len(keys), f"{name} has duplicate records"


def test_readme_is_present() -> None:
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    assert "python scripts/make_embedded_data.py" in readme
    for name in FIELDS:
        assert f"{name}.jsonl" in readme


def test_client_statements() -> None:
    statements = [r["prompt"] for name in SPLITS for r in load(name)]
    assert len(statements) >= 300
    assert len(set(statements)) == len(statements)
    for text in statements:
        assert 12 <= len(text.split()) <= 60, text
    openings = Counter(" ".join(t.split()[:2]) for t in statements)
    assert openings.most_common(1)[0][1] < 0.1 * len(statements), "openings are too uniform"


def test_counsel_splits_do_not_overlap() -> None:
    train, val, test = (prompts(name) for name in SPLITS)
    assert not train & val
    assert not train & test
    assert not val & test


@pytest.mark.parametrize("name", ["reflection_labels", "empathy_labels"])
def test_label_files_are_balanced_and_use_train_prompts_only(name: str) -> None:
    records = load(name)
    share = sum(r["label"] for r in records) / len(records)
    assert 0.45 <= share <= 0.55
    assert prompts(name) <= prompts("counsel_train")
    responses = Counter(r["response"] for r in records)
    assert len(responses) > 0.5 * len(records), "responses are not varied enough"


def test_prompt_mix_is_sixty_forty() -> None:
    kinds = Counter(r["kind"] for r in load("help_safety_prompts"))
    assert set(kinds) == {"help", "safety"}
    total = sum(kinds.values())
    assert 0.55 <= kinds["help"] / total <= 0.65
    assert len(prompts("help_safety_prompts")) == total


@pytest.mark.parametrize("name", ["help_prefs", "safety_prefs"])
def test_preference_pairs_differ(name: str) -> None:
    for record in load(name):
        assert record["chosen"] != record["rejected"]


def test_generator_reproduces_shipped_files(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    shipped = sorted(p.name for p in DATA.iterdir() if p.is_file())
    regenerated = sorted(p.name for p in tmp_path.iterdir())
    assert regenerated == shipped
    for name in shipped:
        assert (tmp_path / name).read_bytes() == (DATA / name).read_bytes(), name


# ----------------------------------------------------------------------------- hard negatives

HARD = {  # hard-negative family -> the heads it is a negative for
    "off_topic": {"reflection", "empathy"},
    "platitude": {"reflection", "empathy"},
    "parroting": {"reflection", "empathy"},
    "repetition": {"reflection", "empathy"},
    "truncated": {"reflection", "empathy"},
    "advice": {"reflection", "empathy"},
    "question": {"reflection"},
    "wrong_emotion": {"reflection", "empathy"},
}
HEADS = ("reflection", "empathy")
FIRST_PERSON = {"i", "i'm", "i've", "my", "me"}
CONTRADICTING = {"relieved", "excited", "proud", "calm", "cheerful", "delighted", "content",
                 "confident", "thrilled", "at peace", "grateful", "carefree", "overjoyed",
                 "relaxed"}


def by_family(name: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for record in load(name):
        out.setdefault(record["family"], []).append(record)
    return out


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("part", ["labels", "adversarial"])
def test_every_hard_negative_family_present_with_its_label(head: str, part: str) -> None:
    families = by_family(f"{head}_{part}")
    wanted = {f for f, heads in HARD.items() if head in heads}
    assert wanted <= set(families), wanted - set(families)
    if part == "adversarial":  # only hard negatives and their positives
        assert set(families) == wanted | {"positive"}
        assert len(families["positive"]) == sum(len(families[f]) for f in wanted)
    for family, records in families.items():
        assert {r["label"] for r in records} == {1 if family == "positive" else 0}, family
    assert "question" in families or head == "empathy"
    assert head == "reflection" or "question" not in families


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


@pytest.mark.parametrize("name", [f"{h}_{p}" for h in HEADS for p in ("labels", "adversarial")])
def test_hard_negatives_are_what_their_family_says(name: str) -> None:
    families = by_family(name)
    for r in families["truncated"]:
        assert r["response"][-1] not in ".!?", r  # cut mid-sentence
    for r in families["repetition"]:
        w = words(r["response"])
        bigrams = list(zip(w, w[1:], strict=False))
        assert len(set(bigrams)) < len(bigrams), r  # some phrase comes back
    for r in families["parroting"]:
        w = words(r["response"])
        assert FIRST_PERSON & set(w), r  # the client's first person kept
        assert sum(x in words(r["prompt"]) for x in w) >= 0.6 * len(w), r
    for r in families["wrong_emotion"]:
        assert any(f in r["response"] for f in CONTRADICTING), r
    for r in families.get("question", []):
        assert r["response"].endswith("?"), r


@pytest.mark.parametrize("head", HEADS)
def test_adversarial_rows_never_in_training_rows(head: str) -> None:
    train, adversarial = load(f"{head}_labels"), load(f"{head}_adversarial")
    assert not {r["response"] for r in train} & {r["response"] for r in adversarial}
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in adversarial}
    assert prompts(f"{head}_adversarial") <= prompts("counsel_val") | prompts("counsel_test")
    cliche = "This is a classic cliché, but it really is true that time heals."
    assert cliche not in {r["response"] for r in train}  # the probe in the README is held out
