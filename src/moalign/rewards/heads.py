"""Scorer heads: MiniLM pair heads (`moalign train-scorer`) and the scalar-head reward model format.

Two saved formats, both a folder holding `moalign_scorer.json` (`{"kind": ..., "backbone": ...}`)
plus weights, loadable with `moalign.rewards.scorers.build_scorer(folder)`:

* `kind: head` — a small classifier on *frozen* sentence-encoder embeddings of a (prompt,
  response) pair: features `[u, v, |u - v|, u * v]` (u = prompt, v = response embedding, mean
  pooled, L2-normalised), plus, when the metadata lists `surface`, a few surface features of the
  text that mean pooling cannot see (repetition, an unfinished last sentence, copying the prompt,
  first person, a final question mark: `surface_features`) -> logistic regression or a
  one-hidden-layer MLP. Labels are integer
  classes (0/1, or ordinal 0..C-1); the score is the expected label rescaled to [0, 1]
  (binary: P(label = 1)). Weights: `head.safetensors`.
* `kind: reward_model` — `ScalarHeadModel`: a backbone (encoder or causal LM) + a linear head on
  the mean-pooled (encoders) or last-token (causal LMs) state. Weights: `head.safetensors` plus
  either `backbone/` (a full copy), `adapter/` (LoRA on the named base model), or nothing (the
  frozen base model named in `backbone`). The Bradley-Terry trainer (§5) saves with `save()`.

The embedded `reflection` and `empathy` objectives are pair heads trained on first use from the
labelled data the project ships (plain pairs and hard negatives), cached under
`cache_dir()/heads/<name>` and retrained when that data changes; each also reports its accuracy
on the shipped adversarial held-out set (`<name>_adversarial`), which it never trains on.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoTokenizer,
    BatchEncoding,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from moalign.core.config import require
from moalign.core.errors import DataError, ModelNotFoundError
from moalign.core.io import atomic_dir, atomic_write_json
from moalign.data import deterministic_split, embedded_path, load_table, resolve_data
from moalign.models import MINILM, cache_dir, chat_text, pick_device, resolve_model, to_device

META_FILE = "moalign_scorer.json"
HEAD_WEIGHTS = "head.safetensors"
EMBEDDED_HEADS = {"reflection": "reflection_labels", "empathy": "empathy_labels"}
EMBEDDED_ADVERSARIAL = {"reflection": "reflection_adversarial", "empathy": "empathy_adversarial"}
SURFACE = ("repeated_bigrams", "unfinished", "prompt_trigrams", "first_person", "question")
_WORDS = re.compile(r"[a-z']+")
_FIRST_PERSON = frozenset({"i", "i'm", "i've", "i'd", "i'll", "me", "my", "myself", "mine"})
FORMAT_VERSION = 1


# ----------------------------------------------------------------------------- encoders


@lru_cache(maxsize=8)
def cached_encoder(name_or_path: str = MINILM,
                   device: str = "cpu") -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A sentence encoder (model in eval mode, tokenizer), loaded once per (model, device)."""
    path = resolve_model(name_or_path)
    model = to_device(AutoModel.from_pretrained(path), pick_device(device)).eval()
    return model, AutoTokenizer.from_pretrained(path)


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the unmasked token states: (B, T, H), (B, T) -> (B, H)."""
    m = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def last_token_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """State at the last unmasked position of each row (left or right padding): -> (B, H)."""
    pos = torch.arange(mask.shape[1], device=mask.device)  # (T,)
    last = (mask.long() * pos).argmax(dim=1)  # (B,)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


@torch.no_grad()
def embed_texts(
    texts: list[str], encoder: str = MINILM, device: str = "cpu", batch_size: int = 64,
    max_length: int = 256,
) -> torch.Tensor:
    """L2-normalised mean-pooled sentence embeddings (N, H) on the CPU."""
    model, tok = cached_encoder(encoder, device)
    dev = next(model.parameters()).device
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # batch similar lengths
    out = torch.zeros(len(texts), model.config.hidden_size)  # (N, H)
    for i in range(0, len(texts), batch_size):
        idx = order[i:i + batch_size]
        enc = tok([texts[j] for j in idx], padding=True, truncation=True,
                  max_length=max_length, return_tensors="pt").to(dev)
        hidden = model(**enc).last_hidden_state  # (b, T, H)
        out[idx] = nn.functional.normalize(mean_pool(hidden, enc["attention_mask"]), dim=-1).cpu()
    return out


def pair_features(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """[u, v, |u - v|, u * v]: (N, H), (N, H) -> (N, 4H)."""
    return torch.cat([u, v, (u - v).abs(), u * v], dim=-1)


def _ngrams(words: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


def _surface(prompt: str, response: str) -> list[float]:
    """The `SURFACE` features of one reply, each in [0, 1]."""
    words = _WORDS.findall(response.lower().replace("\u2019", "'"))
    bigrams, trigrams = _ngrams(words, 2), _ngrams(words, 3)
    prompt_trigrams = set(_ngrams(_WORDS.findall(prompt.lower().replace("\u2019", "'")), 3))
    end = response.rstrip()
    return [
        1.0 - len(set(bigrams)) / len(bigrams) if bigrams else 0.0,  # share of repeated bigrams
        0.0 if end.endswith((".", "!", "?", '"', "'", ")", "\u2026")) else 1.0,  # cut off
        sum(t in prompt_trigrams for t in trigrams) / len(trigrams) if trigrams else 0.0,
        sum(w in _FIRST_PERSON for w in words) / len(words) if words else 0.0,
        1.0 if end.endswith("?") else 0.0,
    ]


def surface_features(prompts: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
    """Surface features of (prompt, response) pairs that a mean-pooled embedding misses -> (N, S).

    S = len(SURFACE): repeated-bigram share, no final punctuation, share of the reply's word
    trigrams found in the prompt, first-person word share, ends with a question mark."""
    rows = [_surface(p, r) for p, r in zip(prompts, responses, strict=True)]
    return torch.tensor(rows, dtype=torch.float32).reshape(len(rows), len(SURFACE))


# ----------------------------------------------------------------------------- pair heads


class PairHead(nn.Module):
    """Logistic regression (hidden=0) or one-hidden-layer MLP on pair features -> class logits."""

    def __init__(self, dim: int, n_classes: int = 2, hidden: int = 0, dropout: float = 0.1,
                 extra: int = 0):
        super().__init__()
        self.dim, self.n_classes, self.hidden, self.extra = dim, n_classes, hidden, extra
        width = 4 * dim + extra  # pair features + `extra` surface features
        if hidden > 0:
            self.net: nn.Module = nn.Sequential(
                nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout),
                nn.Linear(hidden, n_classes))
        else:
            self.net = nn.Linear(width, n_classes)

    def forward(self, u: torch.Tensor, v: torch.Tensor,
                s: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits (N, C) from embeddings (N, H) x 2 and, for a surface head, s (N, extra)."""
        if not self.extra:
            return self.net(pair_features(u, v))
        if s is None:
            raise ValueError("this head also needs the surface features `s` (surface_features)")
        return self.net(torch.cat([pair_features(u, v), s.to(u)], dim=-1))

    def expected_score(self, u: torch.Tensor, v: torch.Tensor,
                       s: torch.Tensor | None = None) -> torch.Tensor:
        """Expected class index / (C - 1): in [0, 1]; for two classes P(class 1). -> (N,)"""
        probs = self(u, v, s).softmax(-1)  # (N, C)
        levels = torch.arange(self.n_classes, dtype=probs.dtype, device=probs.device)
        return (probs * levels).sum(-1) / max(self.n_classes - 1, 1)


def _seeded_head(dim: int, n_classes: int, hidden: int, seed: int, extra: int = 0) -> PairHead:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return PairHead(dim, n_classes, hidden, extra=extra)


def fit_pair_head(
    u: torch.Tensor, v: torch.Tensor, y: torch.Tensor, n_classes: int, hidden: int = 0,
    epochs: int = 300, lr: float = 1e-2, weight_decay: float = 1e-3, seed: int = 0,
    s: torch.Tensor | None = None,
) -> PairHead:
    """Full-batch AdamW on frozen features (deterministic for a seed). y: (N,) class indices;
    s: (N, S) surface features, or None for a head on the embeddings alone."""
    head = _seeded_head(u.shape[1], n_classes, hidden, seed, 0 if s is None else s.shape[1])
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    counts = torch.bincount(y, minlength=n_classes).clamp(min=1).float()  # (C,)
    weight = counts.sum() / (n_classes * counts)  # balance the classes
    head.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matmuls: threading only adds overhead (severe when busy)
    try:
        _fit_loop(head, opt, (u, v, s), y, weight, epochs, seed)
    finally:
        torch.set_num_threads(threads)
    return head.eval()


Features = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]  # u (N, H), v (N, H), s


def _fit_loop(head: PairHead, opt: torch.optim.Optimizer, x: Features,
              y: torch.Tensor, weight: torch.Tensor, epochs: int, seed: int) -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(epochs):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(head(*x), y, weight=weight)
            loss.backward()
            opt.step()


@torch.no_grad()
def accuracy(head: PairHead, u: torch.Tensor, v: torch.Tensor, y: torch.Tensor,
             s: torch.Tensor | None = None) -> float:
    if len(y) == 0:
        return float("nan")
    return float((head(u, v, s).argmax(-1) == y).float().mean())


def save_head(path: str | Path, head: PairHead, meta: Mapping[str, object]) -> Path:
    """Write a `kind: head` scorer folder atomically."""
    path = Path(path)
    full = {"kind": "head", "format_version": FORMAT_VERSION, "dim": head.dim,
            "n_classes": head.n_classes, "hidden": head.hidden, **meta}
    if head.extra:
        full["surface"] = list(SURFACE)
    with atomic_dir(path) as tmp:
        save_file({k: t.contiguous() for k, t in head.state_dict().items()}, tmp / HEAD_WEIGHTS)
        atomic_write_json(tmp / META_FILE, full)
    return path


def read_meta(path: str | Path) -> dict[str, Any]:
    """The `moalign_scorer.json` of a saved scorer folder."""
    meta_path = Path(path) / META_FILE
    if not meta_path.is_file():
        raise ModelNotFoundError(f"{path} is not a saved moalign scorer ({META_FILE} missing)")
    return json.loads(meta_path.read_text(encoding="utf-8"))


def load_head(path: str | Path) -> tuple[PairHead, dict[str, Any]]:
    """Load a `kind: head` folder -> (PairHead in eval mode, metadata)."""
    meta = read_meta(path)
    head = PairHead(int(meta["dim"]), int(meta["n_classes"]), int(meta["hidden"]),
                    extra=len(meta.get("surface", [])))
    head.load_state_dict(load_file(Path(path) / HEAD_WEIGHTS))
    return head.eval(), meta


# ----------------------------------------------------------------------------- train-scorer


@dataclass
class TrainScorerConfig:
    """`moalign train-scorer`: a pair head on frozen sentence embeddings of labelled pairs."""

    data: str = "reflection_labels"  # embedded dataset name or a table path
    prompt_column: str = "prompt"
    response_column: str = "response"
    label_column: str = "label"
    backbone: str = MINILM
    out: str = "runs/scorer"
    hidden: int = 0  # 0 = logistic regression, > 0 = MLP width
    epochs: int = 300
    lr: float = 0.01
    weight_decay: float = 0.001
    seed: int = 0
    val_fraction: float = 0.2
    device: str = "cpu"
    embed_batch_size: int = 64
    surface: bool = True  # also feed the head the SURFACE features of each pair
    adversarial: str = ""  # labelled data only evaluated on, never trained on ("" = none)

    def validate(self) -> None:
        require(0.0 < self.val_fraction < 1.0, "val_fraction must be in (0, 1), e.g. 0.2")
        require(self.epochs > 0, "epochs must be > 0")
        require(self.lr > 0, "lr must be > 0")
        require(self.hidden >= 0, "hidden must be >= 0 (0 = logistic regression)")


@dataclass
class Labelled:
    """Labelled (prompt, response) rows; `families` is the optional `family` column ("")."""

    prompts: list[str]
    responses: list[str]
    labels: list[int]
    families: list[str]
    source: str


def _labelled_rows(cfg: TrainScorerConfig, data: str) -> Labelled:
    path = resolve_data(data)
    rows = load_table(path, columns={"prompt": cfg.prompt_column,
                                     "response": cfg.response_column,
                                     "label": cfg.label_column})
    try:
        labels = [int(r["label"]) for r in rows]
    except (TypeError, ValueError):
        raise DataError(f"{path}: labels in column {cfg.label_column!r} must be integers "
                        "(0/1 or ordinal 0..C-1)") from None
    return Labelled([str(r["prompt"]) for r in rows], [str(r["response"]) for r in rows], labels,
                    [str(r.get("family", "")) for r in rows], str(path))


def _group_split(prompts: list[str], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Hold out whole prompts (no prompt appears in both parts) -> (train idx, val idx)."""
    unique = sorted(set(prompts))
    train_p, val_p = deterministic_split(unique, (1 - val_fraction, val_fraction), seed)
    if not val_p and len(unique) > 1:
        val_p = [train_p.pop()]
    held = set(val_p)
    train = [i for i, p in enumerate(prompts) if p not in held]
    val = [i for i, p in enumerate(prompts) if p in held]
    if not train or not val:
        raise DataError("need labelled rows for at least two different prompts to hold some out")
    return train, val


def _embed_pairs(prompts: list[str], responses: list[str],
                 cfg: TrainScorerConfig) -> tuple[torch.Tensor, torch.Tensor]:
    uniq = sorted(set(prompts))
    pu = embed_texts(uniq, cfg.backbone, cfg.device, cfg.embed_batch_size)  # (P, H)
    where = {p: i for i, p in enumerate(uniq)}
    u = pu[[where[p] for p in prompts]]  # (N, H)
    v = embed_texts(responses, cfg.backbone, cfg.device, cfg.embed_batch_size)  # (N, H)
    return u, v


def _features(rows: Labelled, cfg: TrainScorerConfig) -> Features:
    """Embeddings u, v (N, H) and, for a surface head, the surface features (N, S)."""
    u, v = _embed_pairs(rows.prompts, rows.responses, cfg)
    return u, v, surface_features(rows.prompts, rows.responses) if cfg.surface else None


def _rows(x: Features, idx: list[int]) -> Features:
    return x[0][idx], x[1][idx], None if x[2] is None else x[2][idx]


def evaluate_head(head: PairHead, x: Features, y: torch.Tensor,
                  families: Sequence[str]) -> tuple[float, dict[str, float]]:
    """Accuracy on (x, y), overall and per `family` value (empty when no row names one)."""
    with torch.no_grad():
        right = (head(*x).argmax(-1) == y).tolist()  # (N,)
    groups: dict[str, list[bool]] = {}
    for family, ok in zip(families, right, strict=True):
        groups.setdefault(family, []).append(ok)
    by_family = {f: round(sum(g) / len(g), 4) for f, g in sorted(groups.items()) if f}
    return round(accuracy(head, *x[:2], y, x[2]), 4), by_family


def _class_indices(rows: Labelled, classes: list[int]) -> torch.Tensor:
    stray = sorted(set(rows.labels) - set(classes))
    if stray:
        raise DataError(f"{rows.source}: labels {stray} never occur in the training data "
                        f"(classes {classes}); use the same label set in both files")
    return torch.tensor([classes.index(lab) for lab in rows.labels])  # (N,)


def _adversarial_metrics(head: PairHead, cfg: TrainScorerConfig,
                         classes: list[int]) -> dict[str, Any]:
    """Accuracy on `cfg.adversarial` (never trained on), overall and per family."""
    rows = _labelled_rows(cfg, cfg.adversarial)
    acc, by_family = evaluate_head(head, _features(rows, cfg), _class_indices(rows, classes),
                                   rows.families)
    return {"adversarial_accuracy": acc, "n_adversarial": len(rows.labels),
            "adversarial_by_family": by_family, "adversarial_data": rows.source,
            "adversarial_sha256": _file_sha256(rows.source)}


def train_scorer(cfg: TrainScorerConfig) -> dict[str, Any]:
    """Train a pair head, save it to `cfg.out` (a `build_scorer` folder) and return its metrics.

    Returns `{"val_accuracy", "train_accuracy", "n_train", "n_val", "classes", "out"}` (plus
    `val_by_family` when the data has a `family` column, and `adversarial_accuracy`,
    `n_adversarial`, `adversarial_by_family` with `cfg.adversarial`); the held-out split holds
    out whole prompts.
    """
    rows = _labelled_rows(cfg, cfg.data)
    classes = sorted(set(rows.labels))
    if len(classes) < 2:
        raise DataError(f"{rows.source}: every label is {classes}; a scorer needs two or more "
                        "classes")
    y = _class_indices(rows, classes)  # (N,)
    x = _features(rows, cfg)
    tr, va = _group_split(rows.prompts, cfg.val_fraction, cfg.seed)
    xt = _rows(x, tr)
    head = fit_pair_head(xt[0], xt[1], y[tr], len(classes), cfg.hidden, cfg.epochs, cfg.lr,
                         cfg.weight_decay, cfg.seed, s=xt[2])
    val_acc, val_by_family = evaluate_head(head, _rows(x, va), y[va],
                                           [rows.families[i] for i in va])
    metrics: dict[str, Any] = {
        "val_accuracy": val_acc, "train_accuracy": round(accuracy(head, *xt[:2], y[tr], xt[2]), 4),
        "n_train": len(tr), "n_val": len(va), "classes": classes, "val_by_family": val_by_family}
    if cfg.adversarial:
        metrics.update(_adversarial_metrics(head, cfg, classes))
    meta = {"backbone": cfg.backbone, "features": "u,v,|u-v|,u*v", "data": rows.source,
            "data_sha256": _file_sha256(rows.source), "train_config": asdict(cfg), **metrics}
    save_head(cfg.out, head, meta)
    return {**metrics, "out": str(cfg.out)}


def _file_sha256(path: str | Path) -> str:
    p = Path(path)
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""


# ----------------------------------------------------------------------------- embedded heads


def embedded_head_dir(name: str) -> Path:
    """Cache folder of an embedded objective's head: `cache_dir()/heads/<name>`."""
    return cache_dir() / "heads" / name


def embedded_head_config(name: str, out: Path | None = None) -> TrainScorerConfig:
    """The training config of an embedded head (`reflection`, `empathy`)."""
    return TrainScorerConfig(data=EMBEDDED_HEADS[name], out=str(out or embedded_head_dir(name)),
                             hidden=0, epochs=300, lr=0.01, seed=0, val_fraction=0.2,
                             surface=True, adversarial=EMBEDDED_ADVERSARIAL[name])


def ensure_embedded_head(name: str) -> Path:
    """The head folder of an embedded objective, trained (seeded, about a minute on 2 CPU
    cores) if absent or if the shipped label or adversarial data or the recipe changed since."""
    if name not in EMBEDDED_HEADS:
        raise KeyError(f"no embedded head {name!r}; known: {sorted(EMBEDDED_HEADS)}")
    out = embedded_head_dir(name)
    data_sha = _file_sha256(embedded_path(EMBEDDED_HEADS[name]))
    adversarial_sha = _file_sha256(embedded_path(EMBEDDED_ADVERSARIAL[name]))
    cfg = embedded_head_config(name, out)
    if (out / META_FILE).is_file():
        meta = read_meta(out)
        if (meta.get("data_sha256") == data_sha and meta.get("train_config") == asdict(cfg)
                and meta.get("adversarial_sha256") == adversarial_sha):
            return out
    train_scorer(cfg)
    return out


# ----------------------------------------------------------------------------- reward models


def _is_causal(config: PretrainedConfig) -> bool:
    archs = getattr(config, "architectures", None) or []
    return any(a.endswith("ForCausalLM") for a in archs) or bool(getattr(config, "is_decoder",
                                                                         False))


class ScalarHeadModel(nn.Module):
    """A backbone (encoder or causal LM body) + linear head on a pooled state -> a scalar (B,).

    Encoders: (prompt, response) as a sentence pair, mean pooling. Causal LMs: the chat template
    (or `prompt\\n\\nresponse` + EOS without one), last-token pooling.
    """

    def __init__(self, backbone: PreTrainedModel | PeftModel, tokenizer: PreTrainedTokenizerBase,
                 base_model: str, pooling: str, input_format: str,
                 output: str = "sigmoid") -> None:
        super().__init__()
        self.backbone, self.tokenizer, self.base_model = backbone, tokenizer, base_model
        self.pooling, self.input_format, self.output = pooling, input_format, output
        self.head = nn.Linear(backbone.config.hidden_size, 1)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "right"

    @classmethod
    def from_backbone(cls, name_or_path: str, device: str = "cpu", seed: int = 0,
                      output: str = "sigmoid") -> ScalarHeadModel:
        """A fresh scalar head (seeded init) on a pretrained backbone (bundled id, path, HF id)."""
        path = resolve_model(name_or_path)
        causal = _is_causal(AutoConfig.from_pretrained(path))
        tok = AutoTokenizer.from_pretrained(path)
        fmt = ("chat" if getattr(tok, "chat_template", None) else "concat") if causal else "pair"
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = cls(AutoModel.from_pretrained(path), tok, name_or_path,
                        "last" if causal else "mean", fmt, output)
        return model.to(pick_device(device))

    def encode(self, prompts: list[str], responses: list[str],
               max_length: int = 512) -> BatchEncoding:
        """Tokenise (prompt, response) pairs for this model's input format."""
        tok = self.tokenizer
        if self.input_format == "pair":
            return tok(prompts, responses, padding=True, truncation=True, max_length=max_length,
                       return_tensors="pt")
        if self.input_format == "chat":
            texts = [chat_text(tok, [{"role": "user", "content": p},
                                     {"role": "assistant", "content": r}],
                               add_generation_prompt=False)
                     for p, r in zip(prompts, responses, strict=True)]
        else:
            texts = [f"{p}\n\n{r}{tok.eos_token or ''}" for p, r in zip(prompts, responses,
                                                                        strict=True)]
        return tok(texts, padding=True, truncation=True, max_length=max_length,
                   return_tensors="pt", add_special_tokens=self.input_format != "chat")

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        pool = last_token_pool if self.pooling == "last" else mean_pool
        return self.head(pool(hidden, attention_mask)).squeeze(-1)  # (B,)

    def reward(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        """Raw scalar rewards (B,) for one batch (gradients flow; call under no_grad to score)."""
        enc = self.encode(prompts, responses).to(next(self.parameters()).device)
        return self(enc["input_ids"], enc["attention_mask"])

    def save(self, path: str | Path, copy_backbone: bool = True, **extra: object) -> Path:
        """Save a `kind: reward_model` folder: head + backbone copy / LoRA adapter / reference."""
        path = Path(path)
        meta = {"kind": "reward_model", "format_version": FORMAT_VERSION,
                "backbone": self.base_model, "pooling": self.pooling,
                "input_format": self.input_format, "output": self.output,
                "hidden_size": self.head.in_features, **extra}
        with atomic_dir(path) as tmp:
            if hasattr(self.backbone, "peft_config"):
                self.backbone.save_pretrained(str(tmp / "adapter"))
                meta["weights"] = "adapter"
            elif copy_backbone:
                self.backbone.save_pretrained(str(tmp / "backbone"))
                self.tokenizer.save_pretrained(str(tmp / "backbone"))
                meta["weights"] = "backbone"
            else:
                meta["weights"] = "base"
            head = {k: t.detach().cpu().contiguous() for k, t in self.head.state_dict().items()}
            save_file(head, tmp / HEAD_WEIGHTS)
            atomic_write_json(tmp / META_FILE, meta)
        return path

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> ScalarHeadModel:
        """Load a folder written by `save()` (eval mode)."""
        path, meta = Path(path), read_meta(path)
        if meta.get("kind") != "reward_model":
            raise ModelNotFoundError(f"{path} holds a {meta.get('kind')!r} scorer, not a reward "
                                     "model")
        src = path / "backbone" if meta.get("weights") == "backbone" else \
            Path(resolve_model(meta["backbone"]))
        backbone: PreTrainedModel | PeftModel = AutoModel.from_pretrained(str(src))
        if meta.get("weights") == "adapter":
            backbone = PeftModel.from_pretrained(backbone, str(path / "adapter"))
        model = cls(backbone, AutoTokenizer.from_pretrained(str(src)), meta["backbone"],
                    meta["pooling"], meta["input_format"], meta.get("output", "sigmoid"))
        model.head.load_state_dict(load_file(path / HEAD_WEIGHTS))
        return to_device(model, pick_device(device)).eval()
