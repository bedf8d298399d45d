"""Reward functions written for TRL work as objectives (as GRPOTrainer calls them), dataset
columns reach them from data specs, data specs take datasets hub ids / local dataset folders,
`python:module:function` finds modules in the current folder, and renamed config keys load.

References are hand-computed values; TRL's semantics (keywords, None = not applicable, weighted
nansum over functions) are those of `trl.GRPOTrainer._calculate_rewards` / `_generate_and_score`.
"""

from __future__ import annotations

import json
import math
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch

from moalign.core.config import ConfigError, from_dict, load_config
from moalign.core.errors import DataError, ObjectiveError
from moalign.data import Prompt, load_prompts
from moalign.rewards import scorers as S
from moalign.rewards.functions import calls_like_trl

SEEN: list[dict] = []  # what the reward functions below were called with


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy machine their OpenMP
    barriers wait on descheduled threads (many times slower); restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def reward_len(completions, **kwargs):
    """TRL's quickstart reward: completions near 20 characters score best."""
    return [-abs(20 - len(c)) for c in completions]


def exact_answer(prompts, completions, answer, **kwargs):
    """Uses a dataset column (`answer`); None where the row has no answer (not applicable)."""
    SEEN.append({"prompts": list(prompts), "answer": list(answer), "extra": sorted(kwargs)})
    return [None if a is None else float(a in c) for c, a in zip(completions, answer, strict=True)]


def only_long(completions, **kwargs):
    return [float(len(c)) if len(c) > 6 else None for c in completions]


def legacy(prompts, responses):
    return [float(len(p)) for p in prompts]


@pytest.fixture(autouse=True)
def _fresh():
    SEEN.clear()
    yield
    S.clear_scorer_cache()


def test_conventions_are_told_apart_by_signature():
    assert calls_like_trl(reward_len) and calls_like_trl(exact_answer)
    assert not calls_like_trl(legacy) and not calls_like_trl(math.fsum)
    assert calls_like_trl(lambda **kw: [1.0])


def test_trl_quickstart_function_is_an_objective():
    scorer = S.build_scorer(reward_len)  # a bare function, as in GRPOTrainer(reward_funcs=...)
    out = scorer.score(["a", "b"], ["x" * 20, "y" * 5])
    assert scorer.name == "reward_len" and out.tolist() == [0.0, -15.0]
    dotted = S.build_scorer(f"python:{__name__}:reward_len")
    assert dotted.score(["a"], ["z" * 22]).tolist() == [-2.0]


def test_dataset_columns_are_keyword_lists_and_none_is_not_applicable():
    prompts = [Prompt("What is 2+2?", {"answer": "4", "level": 1}),
               Prompt("What is 2+2?", {"answer": "4", "level": 1}),
               Prompt("Say hi", {"level": 2})]  # no answer column in this row
    scorer = S.build_scorer({"kind": "python", "function": exact_answer, "name": "exact"})
    out = scorer.score(prompts, ["It is 4.", "five", "hi"])
    assert SEEN == [{"prompts": ["What is 2+2?", "What is 2+2?", "Say hi"],
                     "answer": ["4", "4", None], "extra": ["level"]}]
    # row 2 is unscored: it takes the mean of its prompt's scored samples (none), else the
    # batch's (1 + 0) / 2, so it carries no advantage
    assert out.tolist() == [1.0, 0.0, 0.5]


def test_several_functions_with_reward_weights_combine_as_trl():
    scorer = S.build_scorer({"kind": "python", "function": [reward_len, only_long],
                             "reward_weights": [2.0, 0.5], "name": "combo"})
    prompts = ["p", "p", "q", "q"]
    out = scorer.score(prompts, ["x" * 20, "y" * 4, "z" * 10, "w" * 3])
    # Σ_i w_i·r_i over the functions that scored the example (None skipped, as TRL's nansum)
    assert out.tolist() == [2 * 0 + 0.5 * 20, 2 * -16.0, 2 * -10 + 0.5 * 10, 2 * -17.0]
    with pytest.raises(ObjectiveError, match="2 reward_weights for 1 functions"):
        S.build_scorer({"kind": "python", "function": [reward_len], "reward_weights": [1, 2]})


def test_unscored_examples_take_their_prompts_mean():
    def some(completions, **kw):
        return [None if c == "?" else float(len(c)) for c in completions]

    out = S.build_scorer(some).score(["a", "a", "a", "b"], ["xx", "?", "xxxx", "?"])
    assert out.tolist() == [2.0, 3.0, 4.0, 3.0]  # a: mean(2, 4); b: batch mean (2 + 4) / 2
    matrix = S.score_matrix([S.build_scorer(some)], ["a", "a"], ["?", "?"])
    assert matrix.tolist() == [[0.0], [0.0]]  # nothing scored at all: 0, no NaN


def test_legacy_functions_and_explicit_nan_keep_their_contract():
    assert S.build_scorer(legacy).score(["ab", "c"], ["x", "y"]).tolist() == [2.0, 1.0]

    def nan_fn(prompts, responses):
        return [math.nan] * len(prompts)

    with pytest.raises(ObjectiveError, match="returned NaN on example 0"):
        S.score_matrix([S.build_scorer(nan_fn)], ["a"], ["b"])


def test_columns_flow_from_a_data_file_through_rollouts(tmp_path):
    from moalign.models import tiny_causal_lm
    from moalign.rollout import sample
    from moalign.sampling import Sampling

    data = tmp_path / "qa.jsonl"
    rows = [{"question": "Capital of France?", "answer": "Paris", "topic": "geo"},
            {"question": "2+2?", "answer": "4", "topic": "math"}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    prompts = load_prompts({"path": str(data), "column": "question"})
    assert prompts == ["Capital of France?", "2+2?"]
    assert prompts[1].columns == {"answer": "4", "topic": "math"}
    rollout = sample(tiny_causal_lm(), prompts, Sampling.greedy(3), n=2)
    scorer = S.build_scorer({"kind": "python", "function": exact_answer, "name": "exact"})
    S.score_matrix([scorer], rollout.prompts, rollout.responses)
    assert SEEN[0]["answer"] == ["Paris", "Paris", "4", "4"] and SEEN[0]["extra"] == ["topic"]


def test_prompts_pickle_and_dump_as_strings():
    import pickle

    import yaml

    p = Prompt("hello", {"answer": 1})
    q = pickle.loads(pickle.dumps(p))
    assert q == "hello" and q.columns == {"answer": 1} and hash(q) == hash("hello")
    assert yaml.safe_dump([p]) == "- hello\n" and json.dumps(p) == '"hello"'


# ----------------------------------------------------------------------------- data specs


def _dataset_folder(root: Path) -> Path:
    """A local dataset folder whose README declares two configs with train/test splits."""
    for config, n in (("easy", 1), ("hard", 2)):
        for split in ("train", "test"):
            folder = root / config
            folder.mkdir(parents=True, exist_ok=True)
            lines = [json.dumps({"question": f"{config}-{split}-{i}", "answer": str(i)})
                     for i in range(n + (split == "test"))]
            (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    configs = "".join(
        f"- config_name: {c}\n  data_files:\n  - split: train\n    path: {c}/train.jsonl\n"
        f"  - split: test\n    path: {c}/test.jsonl\n" for c in ("easy", "hard"))
    (root / "README.md").write_text(f"---\nconfigs:\n{configs}---\n")
    return root


@pytest.fixture()
def offline_datasets(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")
    return datasets


def test_local_dataset_folder_with_config_and_split(tmp_path, offline_datasets):
    folder = _dataset_folder(tmp_path / "qa")
    got = load_prompts({"path": str(folder), "config": "hard", "split": "test",
                        "column": "question"})
    assert got == ["hard-test-0", "hard-test-1", "hard-test-2"]
    assert got[2].columns == {"answer": "2"}
    assert load_prompts({"path": str(folder), "config": "easy", "column": "question"}) == \
        ["easy-train-0"]  # default split: train
    with pytest.raises(DataError, match="cannot load dataset"):
        load_prompts({"path": str(folder), "config": "medium", "column": "question"})


def test_hub_id_goes_to_load_dataset(tmp_path, offline_datasets, monkeypatch):
    folder = _dataset_folder(tmp_path / "qa")
    calls = []
    real = offline_datasets.load_dataset

    def fake_hub(path, name=None, **kw):  # the hub, served from the local folder
        calls.append((path, name, kw.get("split")))
        return real(str(folder), name, **kw)

    monkeypatch.setattr(offline_datasets, "load_dataset", fake_hub)
    got = load_prompts({"path": "someone/qa", "config": "easy", "split": "test",
                        "column": "question"})
    assert calls == [("someone/qa", "easy", "test")] and got == ["easy-test-0", "easy-test-1"]
    assert load_prompts({"path": "someone/qa", "format": "hub", "config": "hard",
                         "column": "question", "limit": 1}) == ["hard-train-0"]


def test_saved_datasets_still_load_from_disk(tmp_path, offline_datasets):
    ds = offline_datasets.Dataset.from_list([{"prompt": "a"}, {"prompt": "b"}])
    ds.save_to_disk(str(tmp_path / "saved"))
    assert load_prompts(str(tmp_path / "saved")) == ["a", "b"]


def test_python_spec_finds_a_module_in_the_current_folder(tmp_path, monkeypatch):
    (tmp_path / "my_rewards_i14.py").write_text(textwrap.dedent("""
        def shout(completions, **kwargs):
            return [float(c.isupper()) for c in completions]
    """))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    scorer = S.build_scorer("python:my_rewards_i14:shout")
    assert scorer.score(["p", "p"], ["HEY", "hey"]).tolist() == [1.0, 0.0]
    with pytest.raises(ObjectiveError, match="current folder"):
        S.build_scorer("python:no_such_module_i14:f")


# ----------------------------------------------------------------------------- config names


def test_one_name_for_objective_weights_old_names_still_load(tmp_path):
    from moalign.emorl.weight_search import SearchConfig
    from moalign.molma.config import MolmaConfig

    with pytest.warns(FutureWarning, match="'task_weights' is deprecated; use 'weights'"):
        cfg = from_dict(MolmaConfig, {"task_weights": [1.0, 2.0]})
    assert cfg.weights == [1.0, 2.0]
    old = tmp_path / "search.yaml"
    old.write_text("ensemble: runs/x\nscore_weights: {a: 1.0}\n")
    with pytest.warns(FutureWarning, match="'score_weights' is deprecated"):
        assert load_config(SearchConfig, old).weights == {"a": 1.0}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_config(SearchConfig, None, ["ensemble=r", "weights={a: 2}"]).weights == \
            {"a": 2.0}
    with pytest.raises(ConfigError, match="old name of weights"):
        from_dict(MolmaConfig, {"task_weights": [1.0], "weights": [1.0]})


def test_misspelled_key_suggests_the_closest():
    from moalign.molma.config import MolmaConfig

    with pytest.raises(ConfigError, match=r"did you mean 'iterations'\?"):
        from_dict(MolmaConfig, {"iteratons": 3})
    with pytest.raises(ConfigError) as err:
        from_dict(MolmaConfig, {"zzzzzz": 3})
    assert "did you mean" not in str(err.value) and "valid keys" in str(err.value)


def test_tensor_scores_are_float32_cpu():
    out = S.build_scorer(reward_len).score(["a"], ["b"])
    assert out.dtype == torch.float32 and out.device.type == "cpu"
