"""Labelled counsellor responses for the reflection / empathy heads (used by make_embedded_data.py).

Three kinds of rows, each a (prompt, response, label, family) record:

* plain pairs: a positive template and a negative of one of the head's plain kinds (questions,
  advice, dismissals, ...), over the train client statements;
* hard negatives, also over the train statements: replies that look like a good answer to a
  shallow scorer but are not one (`hard_negatives.json`: off-topic, platitudes, parroting,
  repetition, truncation, advice or questions in place of a reflection, the wrong emotion), each
  paired with a good reply to the same statement;
* the adversarial held-out set: the same families built from *held-out* templates and fragments,
  over the val/test statements (situations no training row uses), with positives from held-out
  positive templates; no response text of it appears among the training rows.

Text helpers shared with the generator live here too. Only the standard library is used.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Collection, Sequence
from typing import Any, Protocol

Record = dict[str, object]
Slots = dict[str, str]
_SLOT = re.compile(r"{(\w+)}")
# slots that tie a response to its client's own content (an "other client" reply must use one)
CONTENT_SLOTS = {"sit2", "Sit2", "eff2", "Eff2", "noun", "want2", "fear2", "value", "Value"}


class Client(Protocol):
    """A client statement as the generator builds it (`make_embedded_data.Statement`)."""

    text: str

    @property
    def topic(self) -> Any: ...


SlotsFor = Callable[[Any, random.Random, Sequence[Any]], Slots]


# ---- text helpers --------------------------------------------------------------------------


def cap(text: str) -> str:
    """Upper-case the first character only."""
    return text[:1].upper() + text[1:]


def slot_names(template: str) -> set[str]:
    return set(_SLOT.findall(template))


def usable(templates: Sequence[str], slots: Slots) -> list[str]:
    return [t for t in templates if slot_names(t) <= slots.keys()]


def fill(rng: random.Random, templates: Sequence[str], slots: Slots) -> str:
    """Fill a random template among those whose slots are all available."""
    return rng.choice(usable(templates, slots)).format(**slots)


def word_count(text: str) -> int:
    return len(text.split())


def weighted_choice(rng: random.Random, weights: dict[str, int]) -> str:
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys], k=1)[0]


# ---- plain pairs ---------------------------------------------------------------------------


def add_pair(records: list[Record], seen: set[tuple[str, str]], prompt: str,
             pair: tuple[str, str], family: str) -> None:
    """Append a positive and a negative record for `prompt` unless either (prompt, response)
    was already produced."""
    good, bad = pair
    if (prompt, good) in seen or (prompt, bad) in seen:
        return
    seen.update({(prompt, good), (prompt, bad)})
    records.append({"prompt": prompt, "response": good, "label": 1, "family": "positive"})
    records.append({"prompt": prompt, "response": bad, "label": 0, "family": family})


def labelled_records(
    train: Sequence[Client],
    rng: random.Random,
    slots_for: SlotsFor,
    kinds: tuple[Sequence[str], dict[str, tuple[str, ...]], dict[str, int]],
    pairs: int,
) -> list[Record]:
    """`pairs` (positive, negative) pairs over the train statements, no duplicate records.

    `kinds` = (positive templates, negative templates by kind, kind weights)."""
    positive, negative, weights = kinds
    order = list(train)
    rng.shuffle(order)
    seen: set[tuple[str, str]] = set()
    records: list[Record] = []
    attempts = 0
    while len(records) < 2 * pairs:
        st = order[attempts % len(order)]
        attempts += 1
        if attempts > 20 * pairs:
            raise RuntimeError("could not produce enough distinct labelled responses")
        good = fill(rng, positive, slots_for(st, rng, train))
        kind = weighted_choice(rng, weights)
        bad = fill(rng, negative[kind], slots_for(st, rng, train))
        if good != bad:
            add_pair(records, seen, st.text, (good, bad), kind)
    rng.shuffle(records)
    return records


# ---- hard negatives ------------------------------------------------------------------------


def families_for(spec: dict[str, Any], head: str) -> list[str]:
    """The hard-negative families that are negatives for `head`, in file order."""
    return [name for name, per_head in spec["families"].items() if head in per_head]


def _repeat(rng: random.Random, good: str, short: str, mode: str) -> str:
    """A good reply made degenerate by repetition: whole reply, short reply, or a word loop."""
    how, times = mode.split(":")
    n = int(times)
    if how == "whole":
        return " ".join([good] * n)
    if how == "short":
        return " ".join([short] * n)
    words = good.rstrip(".!?").split()  # "loop": the last 2-3 words repeated, no end
    k = rng.choice((2, 3))
    return " ".join(words + words[-k:] * n)


def _truncate(rng: random.Random, good: str, cut_words: Sequence[str]) -> str | None:
    """The reply cut right after a word that cannot end a sentence (30-90 % of the way)."""
    words = good.split()
    spots = [i for i, w in enumerate(words)
             if w.lower() in cut_words and 0.3 * len(words) <= i + 1 <= 0.9 * len(words)]
    return " ".join(words[: rng.choice(spots) + 1]) if spots and len(words) >= 8 else None


def hard_negative(
    rng: random.Random, family: str, entry: Sequence[str], slots: Slots,
    positives: Sequence[str],
) -> str | None:
    """One negative of `family` for a statement's `slots` (None: none fits; try again)."""
    if family == "repetition":
        return _repeat(rng, slots["good"], slots["short"], rng.choice(entry))
    if family == "truncated":
        return _truncate(rng, slots["good"], entry)
    if family == "wrong_emotion":
        with_feel = [t for t in positives if "feel2" in slot_names(t)]
        return fill(rng, with_feel, {**slots, "feel2": slots["wrong2"]})
    return fill(rng, entry, slots) if usable(entry, slots) else None


def extra_slots(
    rng: random.Random, slots: Slots, other: Slots, positives: Sequence[str],
    fragments: dict[str, Sequence[str]],
) -> Slots:
    """The slots hard negatives add: a good reply, another client's good reply, fragments."""
    short = [t for t in usable(positives, slots) if word_count(t) <= 6] or list(positives)
    platitude = rng.choice(fragments["platitudes"])
    topical = [t for t in usable(positives, other) if slot_names(t) & CONTENT_SLOTS]
    return {
        **slots,
        "good": fill(rng, positives, slots),
        "short": fill(rng, short, slots),
        "other_good": fill(rng, topical, other),
        "chat": rng.choice(fragments["chat"]),
        "platitude": platitude,
        "Platitude": cap(platitude),
        "wrong2": rng.choice(fragments["wrong_feelings"]),
    }


def hard_records(
    statements: Sequence[Client],
    rng: random.Random,
    slots_for: SlotsFor,
    head: str,
    spec: dict[str, Any],
    setup: tuple[str, int, Sequence[str]],
    avoid: Collection[str] = (),
    seen: set[tuple[str, str]] | None = None,
) -> list[Record]:
    """`pairs` (good reply, hard negative) pairs, families dealt in turn, for one head.

    `setup` = (part: "train" or "adversarial", pairs, positive templates). Responses in `avoid`
    (the training rows' responses, for the adversarial part) and (prompt, response) pairs in
    `seen` (rows already written) are never produced."""
    part, pairs, positives = setup
    families = families_for(spec, head)
    fragments = {key: spec[key][part] for key in ("platitudes", "chat", "wrong_feelings")}
    order = list(statements)
    rng.shuffle(order)
    seen = set(seen or ())
    records: list[Record] = []
    attempts = 0
    while len(records) < 2 * pairs:
        if attempts > 50 * pairs:
            raise RuntimeError(f"could not produce enough {part} hard negatives for {head}")
        st = order[attempts % len(order)]
        family = families[(len(records) // 2) % len(families)]
        attempts += 1
        other = rng.choice([o for o in statements if o.topic.key != st.topic.key])
        slots = extra_slots(rng, slots_for(st, rng, statements),
                            slots_for(other, rng, statements), positives, fragments)
        bad = hard_negative(rng, family, spec["families"][family][head][part], slots, positives)
        good = slots["good"]
        if bad is not None and bad != good and good not in avoid and bad not in avoid:
            add_pair(records, seen, st.text, (good, bad), family)
    rng.shuffle(records)
    return records
