"""Objectives as scorers (EMORL §5.3, MOLMA §3.2): `score(prompts, responses) -> (B,)`, batched.

Kinds (`build_scorer({"kind": ..., **options})`):

* `classifier` — any HF sequence classifier; `model`, `label` (name or index; default the
  positive class of a 2-class model), `pair` (score the (prompt, response) pair, default True).
  Output: softmax probability of `label`, or the sigmoid of a single logit.
* `perplexity` — a causal LM's perplexity of the response given the prompt (prompt tokens masked
  out); `model`, `mapping` (`inverse` = 1/PPL, default; `linear` = clip((50 - PPL)/50, 0, 1);
  `raw` = PPL, lower is better), `template` (`auto`, `chat`, `plain`).
* `embedding` — cosine similarity of prompt and response sentence embeddings (`model`, MiniLM).
* `reward_model` — a `ScalarHeadModel` folder (`path`, or `embedded` = helpfulness / safety),
  `mapping` `sigmoid` (default, from the folder) or `raw`.
* `head` — a pair head from `moalign train-scorer` (`path`, or `embedded` = reflection / empathy).
* `python` — `function` = `pkg.mod:func`, `pkg.mod.func`, a callable or a list of them; either
  `f(prompts, responses) -> floats` or a TRL reward function (keywords `prompts=`,
  `completions=`, the dataset's other columns; None = not applicable); several functions with
  `reward_weights` make one objective as TRL combines them (`moalign.rewards.functions`).

Common options: `name`, `higher_is_better`, `device` (`auto`, `cpu`, `cuda:1`), `batch_size`.
`higher_is_better` is metadata only: scores are never flipped here; a trainer that maximises
rewards negates lower-is-better objectives itself. Scores come back as float32 on the CPU,
whatever device the scorer runs on.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import sys
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypedDict, TypeVar, Unpack, runtime_checkable

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from moalign.core.errors import ModelNotFoundError, ObjectiveError
from moalign.models import (
    MINILM,
    SMOLLM2,
    cache_dir,
    chat_text,
    pick_device,
    resolve_model,
    to_device,
)
from moalign.rewards.functions import call_reward_function, combine_functions, fill_unscored
from moalign.rewards.heads import (
    META_FILE,
    ScalarHeadModel,
    cached_encoder,
    ensure_embedded_head,
    load_head,
    mean_pool,
    read_meta,
    surface_features,
)

P = ParamSpec("P")
R = TypeVar("R")

EMBEDDED_OBJECTIVES: dict[str, dict[str, str]] = {
    "reflection": {"kind": "head", "embedded": "reflection"},
    "empathy": {"kind": "head", "embedded": "empathy"},
    "fluency": {"kind": "perplexity", "model": SMOLLM2, "mapping": "inverse"},
    "helpfulness": {"kind": "reward_model", "embedded": "helpfulness"},
    "safety": {"kind": "reward_model", "embedded": "safety"},
}


@runtime_checkable
class Scorer(Protocol):
    """An objective: `score(prompts, responses)` -> float tensor (B,)."""

    name: str
    higher_is_better: bool

    def score(self, prompts: list[str], responses: list[str]) -> torch.Tensor: ...


class CommonOptions(TypedDict, total=False):
    """The options every scorer kind takes (`BaseScorer.__init__`) but `higher_is_better`."""

    name: str | None
    device: str
    batch_size: int


class ScorerOptions(CommonOptions, total=False):
    """The options every scorer kind takes (`BaseScorer.__init__`)."""

    higher_is_better: bool


class BaseScorer:
    """Batching, device and length checks; subclasses implement `_score_batch` (b,) -> (b,)."""

    kind = "base"

    def __init__(self, name: str | None = None, higher_is_better: bool = True,
                 device: str = "auto", batch_size: int = 16) -> None:
        self.name = name or self.kind
        self.higher_is_better = higher_is_better
        self.device = pick_device(device)
        self.batch_size = batch_size

    def score(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        if len(prompts) != len(responses):
            raise ObjectiveError(f"{self.name}: {len(prompts)} prompts but {len(responses)} "
                                 "responses; pass one response per prompt")
        out = [torch.zeros(0)]
        for i in range(0, len(prompts), self.batch_size):
            with torch.no_grad():
                s = self._score_batch(list(prompts[i:i + self.batch_size]),
                                      list(responses[i:i + self.batch_size]))
            out.append(s.detach().float().cpu().reshape(-1))
        return torch.cat(out)  # (B,)

    def _score_batch(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, device={self.device})"


# ----------------------------------------------------------------------------- model caches


@lru_cache(maxsize=8)
def _classifier(path: str, device: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    model = to_device(AutoModelForSequenceClassification.from_pretrained(path), device).eval()
    return model, AutoTokenizer.from_pretrained(path)


@lru_cache(maxsize=4)
def _causal_lm(path: str, device: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    model = to_device(AutoModelForCausalLM.from_pretrained(path), device).eval()
    return model, AutoTokenizer.from_pretrained(path)


@lru_cache(maxsize=8)
def _reward_model(path: str, mtime: float, device: str) -> ScalarHeadModel:
    return ScalarHeadModel.load(path, device)


def _load_model_or_error(loader: Callable[P, R], name: str, *args: P.args,
                         **kwargs: P.kwargs) -> R:
    try:
        return loader(*args, **kwargs)
    except OSError as e:
        raise ModelNotFoundError(f"cannot load model {name!r}: {e}. Offline? Use a local folder "
                                 f"or a bundled id ({SMOLLM2!r}, {MINILM!r}).") from None


# ----------------------------------------------------------------------------- kinds


class ClassifierScorer(BaseScorer):
    """Softmax probability of `label` (or sigmoid of a single logit) of a sequence classifier."""

    kind = "classifier"

    def __init__(self, model: str, label: str | int | None = None, pair: bool = True,
                 max_length: int = 512, **common: Unpack[ScorerOptions]) -> None:
        super().__init__(**common)
        self.model, self.tokenizer = _load_model_or_error(
            _classifier, model, resolve_model(model), str(self.device))
        self.pair, self.max_length = pair, max_length
        self.label_index = self._label_index(label)

    def _label_index(self, label: str | int | None) -> int | None:
        cfg = self.model.config
        n_labels = int(cfg.num_labels or 0)
        label2id: dict[str, int | str] = dict(cfg.label2id or {})
        if n_labels == 1:
            return None
        if label is None:
            if n_labels == 2:
                return 1
            raise ObjectiveError(f"{self.name}: the classifier has {n_labels} labels "
                                 f"{list((cfg.id2label or {}).values())}; pick one with "
                                 "label=<name>")
        if isinstance(label, int) or str(label).isdigit():
            idx = int(label)
        elif label in label2id:
            idx = int(label2id[label])
        else:
            raise ObjectiveError(f"{self.name}: unknown label {label!r}; the classifier's "
                                 f"labels are {list(label2id)}")
        if not 0 <= idx < n_labels:
            raise ObjectiveError(f"{self.name}: label index {idx} out of range "
                                 f"(0..{n_labels - 1})")
        return idx

    def _score_batch(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        args = (prompts, responses) if self.pair else (responses,)
        enc = self.tokenizer(*args, padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt").to(self.device)
        logits = self.model(**enc).logits  # (b, C)
        if self.label_index is None:
            return torch.sigmoid(logits[:, 0])
        return logits.softmax(-1)[:, self.label_index]


def _prompt_prefix(tok: PreTrainedTokenizerBase, prompt: str, template: str) -> list[int]:
    if template == "chat":
        text = chat_text(tok, [{"role": "user", "content": prompt}])
        return tok(text, add_special_tokens=False)["input_ids"]
    ids = tok(prompt + "\n", add_special_tokens=True)["input_ids"] if prompt else []
    if not ids:
        start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        ids = [start]
    return ids


def _pack(prefixes: list[list[int]], targets: list[list[int]], pad: int,
          max_length: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ids (b, T), attention mask (b, T) and a response-token mask (b, T)."""
    rows = []
    for p, r in zip(prefixes, targets, strict=True):
        r = r[: max_length - 1]
        p = p[-(max_length - len(r)):]
        rows.append((p, r))
    width = max(len(p) + len(r) for p, r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attn = torch.zeros(len(rows), width, dtype=torch.long)
    resp = torch.zeros(len(rows), width, dtype=torch.bool)
    for i, (p, r) in enumerate(rows):
        n = len(p) + len(r)
        ids[i, :n] = torch.tensor(p + r)
        attn[i, :n] = 1
        resp[i, len(p):n] = True
    return ids, attn, resp


def response_nll(
    model: PreTrainedModel, tok: PreTrainedTokenizerBase, prompts: list[str],
    responses: list[str], template: str = "plain", max_length: int = 512,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed NLL of the response tokens given the prompt and their count: ((b,), (b,)).

    The response is tokenised on its own (no special tokens) after the prompt prefix (`plain`:
    `prompt + "\\n"`; `chat`: the chat template with a generation prompt); prompt tokens and
    padding are masked out of the loss. Over-long inputs keep the response and drop the
    prompt's left end.
    """
    prefixes = [_prompt_prefix(tok, p, template) for p in prompts]
    targets = [tok(r, add_special_tokens=False)["input_ids"] if r else [] for r in responses]
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    ids, attn, resp = _pack(prefixes, targets, pad, max_length)
    dev = next(model.parameters()).device
    # the LM head only from the first position that predicts a response token (`logits_to_keep`)
    first = int(resp.int().argmax(1)[resp.any(1)].min().item()) - 1 if resp.any() else 0
    keep = torch.arange(max(first, 0), ids.shape[1] - 1)  # (T',) positions whose logits count
    logits = model(input_ids=ids.to(dev), attention_mask=attn.to(dev),
                   logits_to_keep=keep.to(dev)).logits.float()  # (b, T', V)
    logp = torch.log_softmax(logits, dim=-1)  # (b, T', V)
    tgt = ids[:, keep + 1].to(dev)  # (b, T') the tokens they predict
    nll = -logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)  # (b, T')
    mask = resp[:, keep + 1].to(dev).float()  # (b, T'): positions predicting responses
    return (nll * mask).sum(1).cpu(), mask.sum(1).cpu()


def map_perplexity(ppl: torch.Tensor, mapping: str) -> torch.Tensor:
    """`inverse` 1/PPL, `linear` clip((50 - PPL)/50, 0, 1), `raw` PPL. (B,) -> (B,)"""
    if mapping == "inverse":
        return 1.0 / ppl
    if mapping == "linear":
        return ((50.0 - ppl) / 50.0).clamp(0.0, 1.0)
    if mapping == "raw":
        return ppl
    raise ObjectiveError(f"unknown perplexity mapping {mapping!r}; use inverse, linear or raw")


class PerplexityScorer(BaseScorer):
    """Fluency from a causal LM's perplexity of the response given the prompt.

    An empty response has PPL = inf (score 0 under `inverse` and `linear`).
    """

    kind = "perplexity"

    def __init__(self, model: str = SMOLLM2, mapping: str = "inverse", template: str = "auto",
                 max_length: int = 512, higher_is_better: bool | None = None,
                 **common: Unpack[CommonOptions]) -> None:
        map_perplexity(torch.ones(1), mapping)  # validate early
        hib = mapping != "raw" if higher_is_better is None else higher_is_better
        super().__init__(higher_is_better=hib, **common)
        self.model, self.tokenizer = _load_model_or_error(
            _causal_lm, model, resolve_model(model), str(self.device))
        if template == "auto":
            template = "chat" if getattr(self.tokenizer, "chat_template", None) else "plain"
        if template not in ("chat", "plain"):
            raise ObjectiveError(f"unknown template {template!r}; use auto, chat or plain")
        self.mapping, self.template, self.max_length = mapping, template, max_length

    @torch.no_grad()
    def perplexity(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        """Perplexity of each response given its prompt (inf for an empty response). (B,)"""
        nll, n = response_nll(self.model, self.tokenizer, prompts, responses, self.template,
                              self.max_length)
        return torch.where(n > 0, torch.exp(nll / n.clamp(min=1)), torch.full_like(nll, math.inf))

    def _score_batch(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        return map_perplexity(self.perplexity(prompts, responses), self.mapping)


class EmbeddingScorer(BaseScorer):
    """Cosine similarity of mean-pooled prompt and response embeddings (MiniLM by default)."""

    kind = "embedding"

    def __init__(self, model: str = MINILM, max_length: int = 256,
                 **common: Unpack[ScorerOptions]) -> None:
        super().__init__(**common)
        self.model, self.tokenizer = _load_model_or_error(cached_encoder, model, model,
                                                          str(self.device))
        self.max_length = max_length

    def _embed(self, texts: list[str]) -> torch.Tensor:
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt").to(self.device)
        return mean_pool(self.model(**enc).last_hidden_state, enc["attention_mask"])  # (b, H)

    def _score_batch(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        return torch.cosine_similarity(self._embed(prompts), self._embed(responses), dim=-1)


def embedded_reward_model_dir(name: str) -> Path:
    """Where `moalign prepare` and `moalign train-rm --objective <name> --replace-prepared` save
    the embedded reward model."""
    return cache_dir() / "reward_models" / name


class RewardModelScorer(BaseScorer):
    """A `ScalarHeadModel` folder saved by moalign's Bradley-Terry trainer."""

    kind = "reward_model"

    def __init__(self, path: str | None = None, embedded: str | None = None,
                 mapping: str | None = None, **common: Unpack[ScorerOptions]) -> None:
        super().__init__(**(ScorerOptions(name=embedded or (path and Path(path).name)) | common))
        folder = Path(path) if path else embedded_reward_model_dir(str(embedded))
        if not (folder / META_FILE).is_file():
            if embedded:
                raise ObjectiveError(
                    f"the {embedded} reward model is not trained yet (looked in {folder}): run "
                    f"`moalign prepare` (or `moalign train-rm --objective {embedded} "
                    "--replace-prepared`)")
            raise ObjectiveError(f"{folder} is not a saved reward model ({META_FILE} missing)")
        mtime = (folder / META_FILE).stat().st_mtime
        self.model = _reward_model(str(folder), mtime, str(self.device))
        self.mapping = mapping or self.model.output
        if self.mapping not in ("sigmoid", "raw"):
            raise ObjectiveError(f"unknown reward mapping {self.mapping!r}; use sigmoid or raw")

    def _score_batch(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        r = self.model.reward(prompts, responses)  # (b,)
        return torch.sigmoid(r) if self.mapping == "sigmoid" else r


class HeadScorer(BaseScorer):
    """A pair head on frozen sentence embeddings (`train-scorer`, embedded reflection/empathy)."""

    kind = "head"

    def __init__(self, path: str | None = None, embedded: str | None = None,
                 max_length: int = 256, **common: Unpack[ScorerOptions]) -> None:
        super().__init__(**(ScorerOptions(name=embedded or (path and Path(path).name)) | common))
        if path is None and embedded is None:
            raise ObjectiveError("a `head` scorer needs `path` (a train-scorer folder)")
        folder = Path(path) if path else ensure_embedded_head(str(embedded))
        self.head, self.meta = load_head(folder)
        self.head.to(self.device)
        self.encoder, self.tokenizer = cached_encoder(self.meta["backbone"], str(self.device))
        self.max_length = max_length

    def _embed(self, texts: list[str]) -> torch.Tensor:
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt").to(self.device)
        pooled = mean_pool(self.encoder(**enc).last_hidden_state, enc["attention_mask"])
        return torch.nn.functional.normalize(pooled, dim=-1)  # (b, H)

    def _score_batch(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        s = surface_features(prompts, responses).to(self.device) if self.head.extra else None
        return self.head.expected_score(self._embed(prompts), self._embed(responses), s)


def import_function(dotted: str) -> Callable[..., Any]:
    """`pkg.mod:func` or `pkg.mod.func` -> the function; modules in the current folder are
    importable, as with ``python -m`` (the folder is added to ``sys.path``)."""
    mod_name, _, attr = dotted.partition(":") if ":" in dotted else dotted.rpartition(".")
    cwd = str(Path.cwd())
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
    try:
        fn = getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError, ValueError) as e:
        raise ObjectiveError(f"cannot import scorer function {dotted!r} ({e}); use "
                             "`package.module:function` importable from the current folder "
                             f"({cwd}) or PYTHONPATH") from None
    if not callable(fn):
        raise ObjectiveError(f"{dotted!r} is not callable")
    return fn


RewardFunction = str | Callable[..., Any]
"""A reward function, or its import path `pkg.mod:func`."""


class PythonScorer(BaseScorer):
    """User reward function(s): moalign's ``f(prompts, responses)`` or TRL's convention
    (keywords ``prompts=``, ``completions=``, dataset columns; see `moalign.rewards.functions`).
    Several functions with `reward_weights` make one objective, combined as TRL combines them;
    a None entry means "not applicable" (an explicit NaN stays an error)."""

    kind = "python"

    def __init__(self, function: RewardFunction | list[RewardFunction]
                 | tuple[RewardFunction, ...],
                 reward_weights: Sequence[float] | None = None,
                 **common: Unpack[ScorerOptions]) -> None:
        fns = list(function) if isinstance(function, list | tuple) else [function]
        default = "+".join(f if isinstance(f, str) else getattr(f, "__name__", "reward")
                           for f in fns)
        super().__init__(**(ScorerOptions(name=default, device="cpu") | common))
        if not fns:
            raise ObjectiveError(f"{self.name}: give at least one function")
        self.fns = [import_function(f) if isinstance(f, str) else f for f in fns]
        self.reward_weights = ([1.0] * len(fns) if reward_weights is None
                               else [float(w) for w in reward_weights])
        if len(self.reward_weights) != len(self.fns):
            raise ObjectiveError(f"{self.name}: {len(self.reward_weights)} reward_weights for "
                                 f"{len(self.fns)} functions; give one weight per function")

    def score(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        """Each function called once on the whole batch (as TRL calls it); (B,)."""
        if len(prompts) != len(responses):
            raise ObjectiveError(f"{self.name}: {len(prompts)} prompts but {len(responses)} "
                                 "responses; pass one response per prompt")
        values = [call_reward_function(fn, prompts, responses) for fn in self.fns]  # (F, B)
        scores, unscored = combine_functions(values, self.reward_weights)
        return fill_unscored(scores, unscored, prompts)


SCORER_KINDS: dict[str, type[BaseScorer]] = {
    cls.kind: cls for cls in (ClassifierScorer, PerplexityScorer, EmbeddingScorer,
                              RewardModelScorer, HeadScorer, PythonScorer)
}
_SHORTHAND_ARG = {"classifier": "model", "perplexity": "model", "embedding": "model",
                  "reward_model": "path", "head": "path", "python": "function"}


# ----------------------------------------------------------------------------- build


def _spec_from_string(spec: str) -> dict[str, Any]:
    if spec in EMBEDDED_OBJECTIVES:
        return {"name": spec, **EMBEDDED_OBJECTIVES[spec]}
    kind, sep, arg = spec.partition(":")
    if sep and kind in _SHORTHAND_ARG:
        return {"kind": kind, _SHORTHAND_ARG[kind]: arg}
    path = Path(spec).expanduser()
    if (path / META_FILE).is_file():
        meta = read_meta(path)
        return {"kind": meta.get("kind", "head"), "path": str(path), "name": path.name}
    raise ObjectiveError(
        f"unknown objective {spec!r}; known objectives: {sorted(EMBEDDED_OBJECTIVES)}. Or pass a "
        f"saved scorer folder (holding {META_FILE}), `kind:value` (e.g. `python:pkg.mod:func`, "
        f"`classifier:<model>`), or a dict with `kind` (one of {sorted(SCORER_KINDS)})")


def _cache_key(spec: dict[str, Any]) -> str:
    key = dict(spec)
    path = key.get("path")
    if path and (Path(path) / META_FILE).is_file():  # a retrained folder is reloaded
        key["_mtime"] = (Path(path) / META_FILE).stat().st_mtime
    return json.dumps(key, sort_keys=True, default=str)


@lru_cache(maxsize=64)
def _build_cached(key: str) -> BaseScorer:
    spec = json.loads(key)
    spec.pop("_mtime", None)
    kind = spec.pop("kind")
    cls = SCORER_KINDS[kind]
    valid = set(inspect.signature(cls.__init__).parameters) | set(
        inspect.signature(BaseScorer.__init__).parameters)
    unknown = sorted(set(spec) - valid)
    if unknown:
        raise ObjectiveError(f"unknown option(s) {unknown} for a {kind} scorer; valid: "
                             f"{sorted(valid - {'self', 'common'})}")
    return cls(**spec)


def build_scorer(spec: str | dict[str, Any] | Scorer | Callable[..., Any]) -> Scorer:
    """A scorer from an embedded objective name, a saved scorer folder, `kind:value`, or a dict.

    Scorers are cached: the same spec returns the same (already loaded) object, and scorers on
    the same model share its weights.
    """
    if not isinstance(spec, str | dict):
        if callable(spec) and not isinstance(spec, Scorer):  # a bare reward function (TRL)
            return PythonScorer(spec)
        return spec  # already a scorer object
    data = _spec_from_string(spec) if isinstance(spec, str) else dict(spec)
    kind = data.get("kind")
    if kind not in SCORER_KINDS:
        raise ObjectiveError(f"scorer spec {spec!r} needs `kind`, one of {sorted(SCORER_KINDS)}")
    fn = data.get("function")
    if callable(fn) or (isinstance(fn, list | tuple) and any(callable(f) for f in fn)):
        return PythonScorer(**{k: v for k, v in data.items() if k != "kind"})
    return _build_cached(_cache_key(data))


def build_scorers(
    specs: Sequence[str | dict[str, Any] | Scorer | Callable[..., Any]] | str,
) -> list[Scorer]:
    """Several scorers; a string is split on commas (`"reflection,empathy,fluency"`)."""
    if isinstance(specs, str):
        specs = [s.strip() for s in specs.split(",") if s.strip()]
    scorers = [build_scorer(s) for s in specs]
    names = [s.name for s in scorers]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ObjectiveError(f"objective name(s) {dupes} used twice; give each a distinct `name`")
    return scorers


def clear_scorer_cache() -> None:
    """Forget cached scorers and models (e.g. after retraining a head in place)."""
    for fn in (_build_cached, _classifier, _causal_lm, _reward_model, cached_encoder):
        fn.cache_clear()


# ----------------------------------------------------------------------------- score matrix


def _short(text: str, n: int = 80) -> str:
    text = str(text).replace("\n", " ")
    return text if len(text) <= n else text[: n - 3] + "..."


def _example_error(scorer: Scorer, idx: int, prompt: str, response: str,
                   what: str) -> ObjectiveError:
    return ObjectiveError(
        f"objective {scorer.name!r} {what} on example {idx} (prompt={_short(prompt)!r}, "
        f"response={_short(response)!r})")


def _score_chunk(scorer: Scorer, prompts: list[str], responses: list[str],
                 start: int) -> torch.Tensor:
    """Scores of one chunk; an exception is traced to the first example that fails alone."""
    try:
        out = torch.as_tensor(scorer.score(prompts, responses)).float().cpu().reshape(-1)
    except Exception as err:  # any scorer failure is re-raised with the example named
        for j in range(len(prompts)):
            try:
                scorer.score(prompts[j:j + 1], responses[j:j + 1])
            except Exception as e:
                raise _example_error(scorer, start + j, prompts[j], responses[j],
                                     f"failed ({type(e).__name__}: {e})") from e
        raise ObjectiveError(f"objective {scorer.name!r} failed on examples {start}.."
                             f"{start + len(prompts) - 1} ({type(err).__name__}: {err})") from err
    if out.shape != (len(prompts),):
        raise ObjectiveError(f"objective {scorer.name!r} returned shape {tuple(out.shape)} for "
                             f"{len(prompts)} examples; a scorer returns (B,)")
    return out


def score_matrix(scorers: Sequence[Scorer], prompts: Sequence[str], responses: Sequence[str],
                 batch_size: int | None = None) -> torch.Tensor:
    """Rewards as a (B, K) float32 CPU matrix, column k = scorers[k] (never flipped or combined).

    A NaN, a wrong shape or an exception raises ObjectiveError naming the objective and the
    offending example (index, truncated prompt and response).
    """
    prompts, responses = list(prompts), list(responses)
    if len(prompts) != len(responses):
        raise ObjectiveError(f"{len(prompts)} prompts but {len(responses)} responses")
    step = batch_size or max(len(prompts), 1)
    cols = []
    for scorer in scorers:
        parts = [torch.zeros(0)]
        for i in range(0, len(prompts), step):
            parts.append(_score_chunk(scorer, prompts[i:i + step], responses[i:i + step], i))
        col = torch.cat(parts)  # (B,)
        bad = torch.isnan(col).nonzero()
        if len(bad):
            idx = int(bad[0])
            raise _example_error(scorer, idx, prompts[idx], responses[idx], "returned NaN")
        cols.append(col)
    if not cols:
        return torch.zeros(len(prompts), 0)
    return torch.stack(cols, dim=1)  # (B, K)
