"""moalign.rewards.scorers and moalign.rewards.heads on tiny models, plus the basic CLI commands."""

from __future__ import annotations

import json
import math
import textwrap

import pytest
import torch
from typer.testing import CliRunner

from moalign.cli import app
from moalign.core.errors import ObjectiveError
from moalign.models import MINILM, resolve_model, tiny_causal_lm
from moalign.rewards import scorers as S
from moalign.rewards.heads import ScalarHeadModel, TrainScorerConfig, read_meta, train_scorer

PROMPTS = ["I feel stuck at work.", "My sister never calls me back.", "I can't sleep."]
RESPONSES = ["It sounds like work has you feeling trapped.", "You miss her.", "Bananas."]

SCORER_MODULE = '''
import math

def length(prompts, responses):
    return [float(len(r)) for r in responses]

def nan_at_two(prompts, responses):
    return [math.nan if r == "Bananas." else 1.0 for r in responses]

def boom(prompts, responses):
    if any("sister" in p for p in prompts):
        raise RuntimeError("cannot handle siblings")
    return [0.5] * len(prompts)
'''


@pytest.fixture()
def user_module(tmp_path, monkeypatch):
    """A user scorer module importable as `user_scorers`."""
    (tmp_path / "user_scorers.py").write_text(textwrap.dedent(SCORER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "user_scorers"
    S.clear_scorer_cache()


@pytest.fixture(scope="module")
def tiny_lm_dir(tmp_path_factory):
    policy = tiny_causal_lm(seed=0)
    path = tmp_path_factory.mktemp("tiny_lm")
    policy.model.save_pretrained(path)
    policy.tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory):
    """A random-init 3-label BERT classifier with the MiniLM tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tok = AutoTokenizer.from_pretrained(resolve_model(MINILM))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, num_labels=3,
                        id2label={0: "none", 1: "simple", 2: "complex"},
                        label2id={"none": 0, "simple": 1, "complex": 2})
    path = tmp_path_factory.mktemp("tiny_bert")
    BertForSequenceClassification(config).eval().save_pretrained(path)
    tok.save_pretrained(path)
    return path


# ----------------------------------------------------------------------------- python scorer


def test_python_scorer_and_matrix(user_module):
    scorer = S.build_scorer({"kind": "python", "function": f"{user_module}:length"})
    assert scorer.name == f"{user_module}:length" and scorer.higher_is_better
    s = scorer.score(PROMPTS, RESPONSES)
    assert s.shape == (3,) and s.dtype == torch.float32
    assert s.tolist() == [float(len(r)) for r in RESPONSES]
    dotted = S.build_scorer({"kind": "python", "function": f"{user_module}.length", "name": "n"})
    assert dotted.name == "n"
    low = S.build_scorer({"kind": "python", "function": f"{user_module}:length",
                          "name": "len_low", "higher_is_better": False})
    m = S.score_matrix([scorer, low], PROMPTS, RESPONSES, batch_size=2)
    assert m.shape == (3, 2)
    assert torch.equal(m[:, 0], m[:, 1])  # lower-is-better is metadata only, never flipped
    assert not low.higher_is_better
    assert S.build_scorer(f"python:{user_module}:length") is S.build_scorer(
        f"python:{user_module}:length")  # cached


def test_nan_names_objective_and_example(user_module):
    scorer = S.build_scorer({"kind": "python", "function": f"{user_module}:nan_at_two",
                             "name": "nanny"})
    with pytest.raises(ObjectiveError) as e:
        S.score_matrix([scorer], PROMPTS, RESPONSES)
    msg = str(e.value)
    assert "'nanny'" in msg and "NaN" in msg and "example 2" in msg and "Bananas." in msg


def test_exception_names_objective_and_example(user_module):
    scorer = S.build_scorer({"kind": "python", "function": f"{user_module}:boom", "name": "b"})
    with pytest.raises(ObjectiveError) as e:
        S.score_matrix([scorer], PROMPTS, RESPONSES, batch_size=3)
    msg = str(e.value)
    assert "'b'" in msg and "example 1" in msg and "sister" in msg and "siblings" in msg


def test_unknown_objective_lists_known():
    with pytest.raises(ObjectiveError) as e:
        S.build_scorer("kindness")
    assert "reflection" in str(e.value) and "fluency" in str(e.value)
    with pytest.raises(ObjectiveError, match="kind"):
        S.build_scorer({"kind": "oracle"})
    with pytest.raises(ObjectiveError, match="unknown option"):
        S.build_scorer({"kind": "python", "function": "math:fsum", "colour": "red"})
    with pytest.raises(ObjectiveError, match="cannot import"):
        S.build_scorer({"kind": "python", "function": "no_such_module_xyz:f"})


def test_missing_reward_model_says_how_to_train(tmp_path, monkeypatch):
    monkeypatch.setenv("MOALIGN_CACHE", str(tmp_path))
    with pytest.raises(ObjectiveError, match="moalign train-rm --objective helpfulness"):
        S.build_scorer("helpfulness")


# ----------------------------------------------------------------------------- classifier


def test_classifier_scorer(tiny_bert_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    sc = S.build_scorer({"kind": "classifier", "model": str(tiny_bert_dir), "label": "complex",
                         "device": "cpu", "batch_size": 2})
    got = sc.score(PROMPTS, RESPONSES)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_bert_dir)
    with torch.no_grad():
        enc = tok(PROMPTS, RESPONSES, padding=True, return_tensors="pt")
        want = model(**enc).logits.softmax(-1)[:, 2]
    assert torch.allclose(got, want, atol=1e-5)
    by_index = S.build_scorer({"kind": "classifier", "model": str(tiny_bert_dir), "label": 2,
                               "pair": False, "device": "cpu"}).score(PROMPTS, RESPONSES)
    with torch.no_grad():
        enc = tok(RESPONSES, padding=True, return_tensors="pt")
        assert torch.allclose(by_index, model(**enc).logits.softmax(-1)[:, 2], atol=1e-5)
    with pytest.raises(ObjectiveError, match="complex"):
        S.build_scorer({"kind": "classifier", "model": str(tiny_bert_dir), "label": "nope"})
    with pytest.raises(ObjectiveError, match="label="):
        S.build_scorer({"kind": "classifier", "model": str(tiny_bert_dir)})


def test_classifier_single_logit_is_sigmoid(tmp_path):
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tok = AutoTokenizer.from_pretrained(resolve_model(MINILM))
    torch.manual_seed(1)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1,
                     num_attention_heads=2, intermediate_size=32, num_labels=1)
    model = BertForSequenceClassification(cfg).eval()
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    got = S.build_scorer({"kind": "classifier", "model": str(tmp_path), "device": "cpu"}).score(
        PROMPTS, RESPONSES)
    with torch.no_grad():
        want = torch.sigmoid(model(**tok(PROMPTS, RESPONSES, padding=True,
                                         return_tensors="pt")).logits[:, 0])
    assert torch.allclose(got, want, atol=1e-5)


# ----------------------------------------------------------------------------- perplexity


def manual_ppl(model, tok, prefix_ids: list[int], response: str) -> float:
    resp = tok(response, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prefix_ids + resp])
    labels = ids.clone()
    labels[0, : len(prefix_ids)] = -100
    with torch.no_grad():
        return math.exp(model(input_ids=ids, labels=labels).loss.item())


def test_perplexity_matches_manual_with_prompt_masking(tiny_lm_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_lm_dir)
    sc = S.build_scorer({"kind": "perplexity", "model": str(tiny_lm_dir), "template": "plain",
                         "mapping": "raw", "device": "cpu", "batch_size": 8})
    assert not sc.higher_is_better
    ppl = sc.score(PROMPTS, RESPONSES)  # batched with padding, lengths differ
    want = [manual_ppl(model, tok, tok(p + "\n")["input_ids"], r)
            for p, r in zip(PROMPTS, RESPONSES, strict=True)]
    assert torch.allclose(ppl, torch.tensor(want), rtol=1e-4)
    inv = S.build_scorer({"kind": "perplexity", "model": str(tiny_lm_dir), "template": "plain",
                          "device": "cpu"}).score(PROMPTS, RESPONSES)
    assert torch.allclose(inv, 1.0 / torch.tensor(want), rtol=1e-4)
    lin = S.map_perplexity(torch.tensor([10.0, 60.0, 25.0]), "linear")
    assert torch.allclose(lin, torch.tensor([0.8, 0.0, 0.5]))
    assert S.map_perplexity(torch.tensor([math.inf]), "inverse").item() == 0.0


def test_perplexity_chat_template_and_empty_response(tiny_lm_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_lm_dir)
    sc = S.build_scorer({"kind": "perplexity", "model": str(tiny_lm_dir), "device": "cpu",
                         "mapping": "raw"})
    assert sc.template == "chat"
    got = sc.score(PROMPTS[:1], RESPONSES[:1]).item()
    chat = tok.apply_chat_template([{"role": "user", "content": PROMPTS[0]}], tokenize=False,
                                   add_generation_prompt=True)
    want = manual_ppl(model, tok, tok(chat, add_special_tokens=False)["input_ids"], RESPONSES[0])
    assert math.isclose(got, want, rel_tol=1e-4)
    assert sc.score(["hi"], [""]).item() == math.inf
    with pytest.raises(ObjectiveError, match="mapping"):
        S.build_scorer({"kind": "perplexity", "model": str(tiny_lm_dir), "mapping": "log"})


# ----------------------------------------------------------------------------- embedding


def test_embedding_scorer_identical_text_is_one():
    sc = S.build_scorer({"kind": "embedding", "device": "cpu"})
    s = sc.score(["I feel lost.", "The cat sat."], ["I feel lost.", "Stock prices fell today."])
    assert s[0].item() == pytest.approx(1.0, abs=1e-4)
    assert s[1].item() < 0.6


# ----------------------------------------------------------------------------- reward model


@pytest.mark.parametrize("kind", ["encoder", "causal"])
def test_reward_model_save_load_roundtrip(kind, tmp_path, tiny_bert_dir, tiny_lm_dir):
    backbone = tiny_bert_dir if kind == "encoder" else tiny_lm_dir
    rm = ScalarHeadModel.from_backbone(str(backbone), seed=0).eval()
    assert rm.pooling == ("mean" if kind == "encoder" else "last")
    with torch.no_grad():
        want = torch.sigmoid(rm.reward(PROMPTS, RESPONSES))
    out = rm.save(tmp_path / "rm", objective="helpfulness", pairwise_accuracy=0.5)
    meta = read_meta(out)
    assert meta["kind"] == "reward_model" and meta["pairwise_accuracy"] == 0.5
    sc = S.build_scorer(str(out))
    assert torch.allclose(sc.score(PROMPTS, RESPONSES), want, atol=1e-5)
    raw = S.build_scorer({"kind": "reward_model", "path": str(out), "mapping": "raw"})
    assert torch.allclose(torch.sigmoid(raw.score(PROMPTS, RESPONSES)), want, atol=1e-5)


# ----------------------------------------------------------------------------- head / train-scorer


def write_labelled(path, n_prompts: int = 12) -> None:
    rows = []
    for i in range(n_prompts):
        p = f"I have been worried about my exams number {i} and cannot focus."
        rows.append({"prompt": p, "response": "You're worried the exams are taking over.",
                     "label": 1})
        rows.append({"prompt": p, "response": "The weather is nice today.", "label": 0})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_train_scorer_head_roundtrip(tmp_path):
    data = tmp_path / "labels.jsonl"
    write_labelled(data)
    # every prompt also gets its good response labelled 0: the same (prompt, response) has both
    # labels, so whatever the head predicts for it, exactly one of those two rows is right, and
    # the held-out accuracy is 2/3 for ANY held-out prompts as long as "weather" scores as 0
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    rows += [{**r, "label": 0} for r in rows if r["label"] == 1]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = TrainScorerConfig(data=str(data), out=str(tmp_path / "head"), epochs=100, seed=0)
    res = train_scorer(cfg)
    weather = S.build_scorer(str(tmp_path / "head")).score(
        [r["prompt"] for r in rows], ["The weather is nice today."] * len(rows))
    assert (weather < 0.5).all()  # the premise: the head calls the off-topic reply a 0
    assert res["n_val"] > 0 and res["n_val"] % 3 == 0 and res["val_accuracy"] == 0.6667
    assert read_meta(tmp_path / "head")["val_accuracy"] == res["val_accuracy"]
    sc = S.build_scorer(str(tmp_path / "head"))
    s = sc.score(["I'm anxious about exams."] * 2,
                 ["You're worried the exams are taking over.", "The weather is nice today."])
    assert s.shape == (2,) and ((s >= 0) & (s <= 1)).all() and s[0] > s[1]
    again = train_scorer(cfg)
    assert again["val_accuracy"] == res["val_accuracy"]  # deterministic


# ----------------------------------------------------------------------------- CLI


def test_cli_help_lists_commands():
    res = CliRunner().invoke(app, ["--help"])
    assert res.exit_code == 0
    for cmd in ("score", "train-scorer", "prepare", "metrics"):
        assert cmd in res.output


def test_cli_score_python_scorer(user_module, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["score", "--objectives", f"python:{user_module}:length",
                              "--prompt", "I feel stuck.", "--response", "You feel stuck."])
    assert res.exit_code == 0, res.output
    assert "15.0000" in res.output
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"q": p, "a": r}) + "\n"
                            for p, r in zip(PROMPTS, RESPONSES, strict=True)))
    out = tmp_path / "scores.jsonl"
    res = runner.invoke(app, ["score", "-o", f"python:{user_module}:length", "--file", str(data),
                              "--prompt-column", "q", "--response-column", "a",
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r[f"{user_module}:length"] for r in rows] == [float(len(r)) for r in RESPONSES]


def test_cli_train_scorer_and_metrics(tmp_path):
    data = tmp_path / "labels.jsonl"
    write_labelled(data)
    runner = CliRunner()
    res = runner.invoke(app, ["train-scorer", f"data={data}", f"out={tmp_path / 'h'}",
                              "epochs=50"])
    assert res.exit_code == 0, res.output
    assert "held-out accuracy" in res.output
    assert (tmp_path / "h" / "train_scorer.yaml").is_file()
    pairs = tmp_path / "gen.jsonl"
    pairs.write_text(json.dumps({"prompt": "a b c", "response": "a b d"}) + "\n")
    res = runner.invoke(app, ["metrics", "--file", str(pairs), "--out", str(tmp_path / "m.json")])
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["diversity2"] == 1.0 and m["edit_rate"] == pytest.approx(1 / 3)
    # the EMORL authors' definitions: 2 distinct bigrams / 3 words; 1 of 3 tokens differs
    assert m["diversity2_authors"] == pytest.approx(2 / 3)
    assert m["edit_rate_authors"] == pytest.approx(1 / 3)


# Commands that have nothing to configure, or whose positional argument is the config.
NO_CONFIG = {"prepare", "report", "run", "ensemble show", "ensemble export", "ensemble push"}


def _leaf_commands(group, prefix=""):
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            yield from _leaf_commands(cmd, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", cmd


def test_every_command_takes_options_the_same_way():
    """`--config FILE.yaml` plus trailing `key=value` overrides on every configurable command."""
    import typer.main

    commands = dict(_leaf_commands(typer.main.get_command(app)))
    assert len(commands) == 21 and set(commands) > NO_CONFIG
    for name, cmd in commands.items():
        opts = {o for p in cmd.params for o in getattr(p, "opts", [])}
        variadic = [p for p in cmd.params if getattr(p, "nargs", 1) == -1]
        if name in NO_CONFIG:
            assert "--config" not in opts, name
            continue
        assert "--config" in opts and len(variadic) == 1, name


def test_cli_options_config_file_then_flags_then_overrides(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text(json.dumps({"prompt": "p", "answer": "x y"}) + "\n")
    b.write_text("".join(json.dumps({"prompt": "p", "answer": "x y z"}) + "\n" for _ in range(3)))
    cfg = tmp_path / "metrics.yaml"
    cfg.write_text(f"file: {a}\nresponse_column: answer\nout: {tmp_path / 'yaml.json'}\n")
    res = CliRunner().invoke(app, ["metrics", "--config", str(cfg), "--file", str(b),
                                   "--out", str(tmp_path / "flag.json"),
                                   f"out={tmp_path / 'cli.json'}"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "cli.json").read_text())["n"] == 3  # the flag's file
    assert not (tmp_path / "yaml.json").exists() and not (tmp_path / "flag.json").exists()
    res = CliRunner().invoke(app, ["metrics", "--config", str(cfg), "colum=x"])
    assert res.exit_code != 0 and "valid keys" in str(res.exception)  # the loader validates
    res = CliRunner().invoke(app, ["score", "--prompt", "only a prompt"])
    assert res.exit_code != 0 and "--response" in str(res.exception)


def test_split_overrides_keeps_data_that_merely_contains_equals():
    from moalign.commands import split_overrides
    from moalign.commands.ensemble import GenerateConfig

    data, overrides = split_overrides(
        ["x=1 is what?", "level=logits", "sampling.top_p=0.9", "I feel fine"], GenerateConfig)
    assert data == ["x=1 is what?", "I feel fine"]
    assert overrides == ["level=logits", "sampling.top_p=0.9"]
