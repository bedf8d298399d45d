"""Tests for moalign.data: table formats, column mapping, errors, splits, mixes, known formats."""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd
import pytest

from moalign import data as D
from moalign.core.config import ConfigError
from moalign.core.errors import DataError

ROWS = [{"text": f"client says {i}", "reply": f"reply {i}", "label": i % 2} for i in range(5)]


def write_all_formats(tmp_path):
    """The same rows as JSONL, JSON, CSV, TSV, Parquet and a save_to_disk folder."""
    import datasets

    paths = {}
    paths["jsonl"] = tmp_path / "t.jsonl"
    paths["jsonl"].write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    paths["json"] = tmp_path / "t.json"
    paths["json"].write_text(json.dumps(ROWS))
    df = pd.DataFrame(ROWS)
    paths["csv"] = tmp_path / "t.csv"
    df.to_csv(paths["csv"], index=False)
    paths["tsv"] = tmp_path / "t.tsv"
    df.to_csv(paths["tsv"], index=False, sep="\t")
    paths["parquet"] = tmp_path / "t.parquet"
    df.to_parquet(paths["parquet"])
    paths["hf"] = tmp_path / "hf_ds"
    datasets.Dataset.from_list(ROWS).save_to_disk(str(paths["hf"]))
    return paths


def test_load_table_every_format_with_mapping(tmp_path):
    for fmt, path in write_all_formats(tmp_path).items():
        recs = D.load_table(path, columns={"prompt": "text", "response": "reply"})
        assert [r["prompt"] for r in recs] == [r["text"] for r in ROWS], fmt
        assert [r["response"] for r in recs] == [r["reply"] for r in ROWS], fmt
        assert [int(r["label"]) for r in recs] == [r["label"] for r in ROWS], fmt
        assert "text" not in recs[0], fmt  # renamed, not duplicated


def test_load_table_hf_datasetdict_split(tmp_path):
    import datasets

    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS[:3]),
                               "test": datasets.Dataset.from_list(ROWS[3:])})
    dd.save_to_disk(str(tmp_path / "dd"))
    assert len(D.load_table(tmp_path / "dd")) == 3
    assert len(D.load_table(tmp_path / "dd", split="test")) == 2
    with pytest.raises(DataError, match="splits"):
        D.load_table(tmp_path / "dd", split="nope")


def test_load_table_explicit_format_and_json_variants(tmp_path):
    p = tmp_path / "rows.data"
    p.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    assert len(D.load_table(p, fmt="jsonl")) == 5
    cols = tmp_path / "cols.json"
    cols.write_text(json.dumps({"prompt": ["a", "b"], "kind": ["x", "y"]}))
    assert D.load_table(cols) == [{"prompt": "a", "kind": "x"}, {"prompt": "b", "kind": "y"}]
    jl = tmp_path / "lines.json"  # JSON lines saved with a .json suffix
    jl.write_text('{"prompt": "a"}\n{"prompt": "b"}\n')
    assert len(D.load_table(jl)) == 2


def test_csv_empty_cells_become_none_and_text_stays_text(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("prompt,response\nNA,\nhello,world\n")
    recs = D.load_table(p)
    assert recs[0] == {"prompt": "NA", "response": None}


def test_missing_file_names_it(tmp_path):
    with pytest.raises(DataError, match="nope.jsonl"):
        D.load_table(tmp_path / "nope.jsonl")


def test_unknown_format(tmp_path):
    p = tmp_path / "rows.xyz"
    p.write_text("x")
    with pytest.raises(DataError, match="format"):
        D.load_table(p)
    with pytest.raises(DataError, match="unknown data format"):
        D.load_table(p, fmt="xml")


def test_missing_column_lists_available_and_how_to_map(tmp_path):
    path = write_all_formats(tmp_path)["jsonl"]
    with pytest.raises(DataError) as e:
        D.load_table(path, columns={"prompt": "question"})
    msg = str(e.value)
    assert "'question'" in msg and "text" in msg and "reply" in msg and "columns=" in msg


def test_empty_data(tmp_path):
    p = tmp_path / "empty.jsonl"
    p.write_text("\n")
    with pytest.raises(DataError, match="no rows"):
        D.load_table(p)
    c = tmp_path / "empty.csv"
    c.write_text("prompt,response\n")
    with pytest.raises(DataError, match="no rows"):
        D.load_table(c)


def test_bad_json_line_names_the_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"a": 1}\n{oops\n{"a": 2}\n')
    with pytest.raises(DataError, match="line 2"):
        D.load_table(p)


def test_deterministic_split():
    items = list(range(100))
    a = D.deterministic_split(items, (0.8, 0.1, 0.1), seed=3)
    b = D.deterministic_split(items, (0.8, 0.1, 0.1), seed=3)
    c = D.deterministic_split(items, (0.8, 0.1, 0.1), seed=4)
    assert a == b and a != c
    assert [len(p) for p in a] == [80, 10, 10]
    assert sorted(sum(a, [])) == items
    assert [len(p) for p in D.deterministic_split(list(range(7)), (0.5, 0.5))] == [4, 3]
    with pytest.raises(ConfigError):
        D.deterministic_split(items, (0.5, 0.2))


def test_mix_prompts_proportions_and_determinism():
    help_ = [f"h{i}" for i in range(100)]
    safe = [f"s{i}" for i in range(5)]
    mix = D.mix_prompts([(help_, 0.6), (safe, 0.4)], n=50, seed=1)
    assert len(mix) == 50
    kinds = Counter(m[0] for m in mix)
    assert kinds == {"h": 30, "s": 20}  # small source cycled
    assert Counter(m for m in mix if m[0] == "s").most_common(1)[0][1] == 4
    assert mix == D.mix_prompts([(help_, 0.6), (safe, 0.4)], n=50, seed=1)
    assert len(set(m for m in mix if m[0] == "h")) == 30  # no repeats while a source lasts
    assert len(D.mix_prompts([(help_, 2), (safe, 1)], n=7)) == 7
    with pytest.raises(ConfigError):
        D.mix_prompts([(help_, 0.0)], n=3)


def test_load_pair(tmp_path):
    p = tmp_path / "pair_data.csv"
    lines = [f'"I feel {i}, honestly",high {i},medium {i},low {i}' for i in range(20)]
    p.write_text("\n".join(lines) + "\n")
    splits = D.load_pair(p)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [16, 2, 2]
    rec = splits["train"][0]
    i = rec["prompt"].split()[2].rstrip(",")
    assert rec["prompt"] == f"I feel {i}, honestly"
    assert rec["reference"] == rec["reference_high"] == f"high {i}"
    assert rec["reference_medium"] == f"medium {i}" and rec["reference_low"] == f"low {i}"
    assert D.load_pair(p) == splits
    prompts = D.load_prompts({"path": str(p), "format": "pair", "split": "val"})
    assert prompts == [r["prompt"] for r in splits["val"]]


def test_load_pair_too_few_columns(tmp_path):
    p = tmp_path / "pair_data.csv"
    p.write_text("a,b\nc,d\n")
    with pytest.raises(DataError, match="4 columns"):
        D.load_pair(p)


def test_load_psych8k(tmp_path):
    p = tmp_path / "psych8k.json"
    p.write_text(json.dumps([
        {"instruction": "You are a counsellor.", "input": "I can't sleep.", "output": "That..."},
        {"instruction": "You are a counsellor.", "input": "I'm lonely.", "output": "It sounds"},
    ]))
    recs = D.load_psych8k(p)
    assert recs[0]["prompt"] == "I can't sleep." and recs[0]["reference"] == "That..."
    assert D.load_prompts({"path": str(p), "format": "psych8k"}) == ["I can't sleep.",
                                                                     "I'm lonely."]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"question": "x"}]))
    with pytest.raises(DataError, match="instruction"):
        D.load_psych8k(bad)


def test_preferences_plain_with_mapping(tmp_path):
    p = tmp_path / "prefs.csv"
    pd.DataFrame([{"q": "hi", "good": "hello!", "bad": "go away"}]).to_csv(p, index=False)
    recs = D.load_preferences(p, columns={"prompt": "q", "chosen": "good", "rejected": "bad"})
    assert recs == [{"prompt": "hi", "chosen": "hello!", "rejected": "go away"}]
    with pytest.raises(DataError, match="columns"):
        D.load_preferences(p)


def test_preferences_hh_rlhf(tmp_path):
    single = {"chosen": "\n\nHuman: How do I bake bread?\n\nAssistant: Mix flour and water.",
              "rejected": "\n\nHuman: How do I bake bread?\n\nAssistant: No."}
    multi = {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Tell a joke\n\n"
                       "Assistant: Why did the chicken cross the road?",
             "rejected": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Tell a joke\n\n"
                         "Assistant: I won't."}
    p = tmp_path / "hh.jsonl"
    p.write_text(json.dumps(single) + "\n" + json.dumps(multi) + "\n")
    recs = D.load_preferences(p)
    assert recs[0] == {"prompt": "How do I bake bread?", "chosen": "Mix flour and water.",
                       "rejected": "No."}
    assert recs[1]["prompt"] == "Human: Hi\n\nAssistant: Hello!\n\nHuman: Tell a joke"
    assert recs[1]["chosen"] == "Why did the chicken cross the road?"
    assert recs[1]["rejected"] == "I won't."
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"chosen": "no turns", "rejected": "x"}) + "\n")
    with pytest.raises(DataError, match="HH-RLHF"):
        D.load_preferences(bad)


def test_preferences_pku_and_shp(tmp_path):
    pku = tmp_path / "pku.parquet"
    pd.DataFrame([{"prompt": "p", "response_0": "r0", "response_1": "r1",
                   "safer_response_id": 1, "better_response_id": 0}]).to_parquet(pku)
    assert D.load_preferences(pku) == [{"prompt": "p", "chosen": "r1", "rejected": "r0"}]
    assert D.load_preferences(pku, style="pku_better") == [
        {"prompt": "p", "chosen": "r0", "rejected": "r1"}]
    shp = tmp_path / "shp.jsonl"
    shp.write_text(json.dumps({"history": "h", "human_ref_A": "a", "human_ref_B": "b",
                               "labels": 0}) + "\n")
    assert D.load_preferences(shp) == [{"prompt": "h", "chosen": "b", "rejected": "a"}]
    with pytest.raises(DataError, match="unknown preference style"):
        D.load_preferences(shp, style="nope")


def test_load_prompts_variants(tmp_path):
    p = tmp_path / "prompts.jsonl"
    p.write_text("".join(json.dumps({"text": f"q{i}", "kind": "safety" if i % 2 else "help"})
                         + "\n" for i in range(6)))
    assert D.load_prompts(["a", "b"]) == ["a", "b"]
    assert D.load_prompts({"path": str(p), "column": "text", "limit": 2}) == ["q0", "q1"]
    assert D.load_prompts({"path": str(p), "columns": {"prompt": "text"},
                           "where": {"kind": "safety"}}) == ["q1", "q3", "q5"]
    txt = tmp_path / "prompts.txt"
    txt.write_text("one\n\ntwo\n")
    assert D.load_prompts(str(txt)) == ["one", "two"]
    with pytest.raises(DataError, match="'prompt'"):
        D.load_prompts(str(p))
    with pytest.raises(DataError, match="no prompts"):
        D.load_prompts({"path": str(p), "column": "text", "where": {"kind": "x"}})


def test_embedded_unknown_name_lists_available():
    with pytest.raises(DataError, match="available"):
        D.embedded_path("no_such_dataset")
    with pytest.raises(DataError, match="split"):
        D.counsel_prompts("dev")


EMBEDDED = ["counsel_train", "counsel_val", "counsel_test", "reflection_labels",
            "empathy_labels", "help_safety_prompts", "help_prefs", "safety_prefs"]


@pytest.mark.skipif(not all((D.EMBEDDED_DATA_DIR / f"{n}.jsonl").is_file() for n in EMBEDDED),
                    reason="embedded data files not written yet")
def test_embedded_datasets_load():
    for split in ("train", "val", "test"):
        prompts = D.counsel_prompts(split)
        assert prompts and all(isinstance(p, str) and p for p in prompts)
    assert not set(D.counsel_prompts("train")) & set(D.counsel_prompts("test"))
    for name in ("reflection_labels", "empathy_labels"):
        recs = D.load_embedded(name)
        assert {"prompt", "response", "label"} <= recs[0].keys()
    kinds = {r["kind"] for r in D.load_embedded("help_safety_prompts")}
    assert kinds == {"help", "safety"}
    for name in ("help_prefs", "safety_prefs"):
        recs = D.load_preferences(D.embedded_path(name))
        assert recs and all(r["chosen"] != r["rejected"] for r in recs)
    assert D.load_prompts("counsel_val") == D.counsel_prompts("val")
