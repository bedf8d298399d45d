#!/usr/bin/env python3
"""Generate moalign's embedded datasets from hand-written fragments.

Every sentence fragment was written for this project; they live in `scripts/embedded_fragments/`
(one JSON file per family, plus the data README's template). The generator composes them (topics,
situations, feelings, effects, ambivalence, phrasing templates) into varied text with a fixed seed,
so the output is identical on every run and every machine. After editing a fragment, rerun this
and commit the data with it:

    python scripts/make_embedded_data.py            # writes src/moalign/embedded/data/
    python scripts/make_embedded_data.py --out DIR  # writes somewhere else

Only the standard library is used.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedded_labels import (
    Record,
    cap,
    families_for,
    fill,
    hard_records,
    labelled_records,
    slot_names,
    weighted_choice,
    word_count,
)

SEED = 20240611
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "moalign" / "embedded" / "data"

STATEMENTS_PER_SITUATION = 2
LABEL_PAIRS = 400  # per label file: LABEL_PAIRS positives + LABEL_PAIRS plain negatives
HARD_PAIRS = 320  # per label file, on top: (good reply, hard negative) pairs
ADVERSARIAL_PAIRS = 160  # per head, held out: over val/test statements and held-out templates
HELP_PREF_PAIRS = 300
HARM_PREF_PAIRS = 228
CAREFUL_PREF_PAIRS = 72
HELP_PROMPTS = 120
SAFETY_PROMPTS = 80
MIN_WORDS, MAX_WORDS = 12, 60


# ---- Fragments -----------------------------------------------------------------------------
# The prose lives in scripts/embedded_fragments/*.json, one file per family (UTF-8; each file's
# "about" says what its slots mean). Arrays load as tuples: fragments are fixed.
FRAGMENTS = Path(__file__).resolve().parent / "embedded_fragments"


def frozen(value: Any) -> Any:
    """JSON arrays to tuples, recursively (dict key order is kept: weights are drawn in order)."""
    if isinstance(value, list):
        return tuple(frozen(v) for v in value)
    if isinstance(value, dict):
        return {key: frozen(v) for key, v in value.items()}
    return value


def load_family(name: str) -> dict[str, Any]:
    """One fragment family, `embedded_fragments/<name>.json`."""
    return frozen(json.loads((FRAGMENTS / f"{name}.json").read_text(encoding="utf-8")))


def split_kinds(kinds: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], dict[str, int]]:
    """{kind: {"weight", "templates"}} -> ({kind: templates}, {kind: weight})."""
    templates = {kind: entry["templates"] for kind, entry in kinds.items()}
    return templates, {kind: entry["weight"] for kind, entry in kinds.items()}


@dataclass(frozen=True)
class Topic:
    """A counselling topic in the client's voice; `second()` makes it the counsellor's."""

    key: str
    situations: tuple[str, ...]  # first-person clauses, no final punctuation
    feelings: tuple[str, ...]  # adjectives that fit "I'm ...", "I feel ...", "you're feeling ..."
    effects: tuple[str, ...]  # first-person clauses: what the situation does to the client
    parts: tuple[tuple[str, str], ...]  # ambivalence: ("part of me" wants..., another part...)
    values: tuple[str, ...]  # second-person noun phrases: what matters to the client
    nouns: tuple[str, ...]  # second-person noun phrases naming the difficulty
    advice: tuple[str, ...]  # imperative advice (a counsellor "fixing" instead of listening)
    closed: tuple[str, ...]  # topic-specific closed questions
    opener: str  # a topic-specific open question
    facts: tuple[str, ...]  # general, hedged information (the "lecture" / informational reply)
    common: str  # "everyone ..." used to dismiss
    at_least: tuple[str, ...]  # minimising "at least ..." clauses
    judge: tuple[str, ...]  # judgemental sentences


@dataclass(frozen=True)
class HelpItem:
    kind: str  # "howto": phrase is a verb phrase; "explain": phrase is a noun clause
    phrase: str
    answer: str


@dataclass(frozen=True)
class HarmCategory:
    key: str
    asks: tuple[str, ...]  # first-person verb phrases: "How do I {ask}?"
    reasons: tuple[str, ...]
    alternatives: tuple[str, ...]
    openers: tuple[str, ...] = ()  # replaces the generic refusal openers when given
    specific: tuple[tuple[str, str], ...] = ()  # (ask, alternative that fits only that ask)


@dataclass(frozen=True)
class CarefulItem:
    prompt: str
    careful: str
    reckless: str


TOPICS: tuple[Topic, ...] = tuple(Topic(**t) for t in load_family("topics")["topics"])

_statements = load_family("statements")
DURATIONS: tuple[str, ...] = _statements["durations"]
# The client's voice: {Sit}/{sit}, {feel}, {Eff}/{eff}, {dur}, {want}/{fear}.
STATEMENT_TEMPLATES: tuple[str, ...] = _statements["templates"]
# Feelings that read better after "I feel" than after "I'm" ("I feel hopeless").
FEEL_NOT_BE: frozenset[str] = frozenset(_statements["feel_not_be"])
# How a counsellor might rename a feeling (reflections need not parrot the client's word).
FEELING_ALT: dict[str, tuple[str, ...]] = _statements["feeling_alt"]
# First person -> second person word maps for `second()` ("I was" -> "you were").
SECOND_PERSON: dict[str, str] = _statements["second_person"]
AFTER_FIRST_PERSON: dict[str, str] = _statements["after_first_person"]

# Counsellor responses; slots come from `response_slots()`.
_reflection = load_family("reflection")
REFLECTION_POSITIVE: tuple[str, ...] = _reflection["positive"]
REFLECTION_NEGATIVE, REFLECTION_NEGATIVE_WEIGHTS = split_kinds(_reflection["negative"])
_empathy = load_family("empathy")
EMPATHY_POSITIVE: tuple[str, ...] = _empathy["positive"]
EMPATHY_NEGATIVE, EMPATHY_NEGATIVE_WEIGHTS = split_kinds(_empathy["negative"])
# Hard negatives and the adversarial held-out set (train / held-out templates per family).
HARD: dict[str, Any] = load_family("hard_negatives")

# Helpfulness: ordinary requests with a specific answer for each.
_help = load_family("help")
HELP_ITEMS: tuple[HelpItem, ...] = tuple(HelpItem(**item) for item in _help["items"])
HELP_TEMPLATES: dict[str, tuple[str, ...]] = _help["templates"]
HELP_CHOSEN: tuple[str, ...] = _help["chosen"]
# Rejected answers by failure kind, then by the request kind they fit ("any" fits both).
HELP_REJECTED, HELP_REJECTED_WEIGHTS = split_kinds(_help["rejected"])

# Safety. Harmful requests are phrased generically; nothing contains instructions. The
# "compliant" rejected replies only pretend to go along and trail off without any detail.
_harm = load_family("harm")
HARM_CATEGORIES: tuple[HarmCategory, ...] = tuple(HarmCategory(**c) for c in _harm["categories"])
HARM_TEMPLATES: tuple[str, ...] = _harm["templates"]
GENERIC_REFUSALS: tuple[str, ...] = _harm["generic_refusals"]
COMPLY_TEMPLATES: tuple[str, ...] = _harm["comply_templates"]
_careful = load_family("careful")
CAREFUL_ITEMS: tuple[CarefulItem, ...] = tuple(CarefulItem(**i) for i in _careful["items"])
CAREFUL_CHOSEN: tuple[str, ...] = _careful["chosen"]
RECKLESS_REJECTED: tuple[str, ...] = _careful["rejected"]

README_TEMPLATE = (FRAGMENTS / "readme_template.md").read_text(encoding="utf-8")


# ---- Text helpers --------------------------------------------------------------------------

_WORD = re.compile(r"([A-Za-z']+)")


def second(text: str, plural: bool = True) -> str:
    """First person to second person: "I miss my dad" -> "you miss your dad".

    With `plural=False`, "we/our/us" stay as they are ("why we have leap years").
    """
    out: list[str] = []
    previous = ""
    for piece in _WORD.split(text):
        low = piece.lower()
        if low in SECOND_PERSON and (plural or low.startswith(("i", "m"))):
            new = SECOND_PERSON[low]
            # "My" -> "Your" keeps a capital; "I"/"I'm" are capitalised by grammar, not position.
            piece = cap(new) if piece[:1].isupper() and not low.startswith("i") else new
        elif low in AFTER_FIRST_PERSON and previous in ("i", "we"):
            piece = AFTER_FIRST_PERSON[low]
        if _WORD.fullmatch(piece) or low in AFTER_FIRST_PERSON:
            previous = low
        out.append(piece)
    return "".join(out)


# ---- Client statements ---------------------------------------------------------------------


@dataclass(frozen=True)
class Statement:
    text: str
    topic: Topic
    sit: str
    feel: str  # the feeling named (or, when the template names none, one implied by the topic)
    eff: str | None
    part: tuple[str, str] | None


def compose_statement(
    template: str, topic: Topic, sit: str, feel: str, eff: str, rng: random.Random
) -> Statement:
    """Fill one client-voice template; slots it does not use are recorded as absent."""
    want, fear = rng.choice(topic.parts)
    slots = {
        "Sit": cap(sit),
        "sit": sit,
        "feel": feel,
        "eff": eff,
        "Eff": cap(eff),
        "dur": rng.choice(DURATIONS),
        "want": want,
        "fear": fear,
    }
    if feel in FEEL_NOT_BE:
        template = template.replace("I'm so {feel}", "I feel so {feel}")
        template = template.replace("I'm {feel}", "I feel {feel}")
        template = template.replace("left me {feel}", "left me feeling {feel}")
    names = slot_names(template)
    return Statement(
        text=template.format(**slots),
        topic=topic,
        sit=sit,
        feel=feel,
        eff=eff if names & {"eff", "Eff"} else None,
        part=(want, fear) if "want" in names else None,
    )


class TemplateDeck:
    """Deals template indices in shuffled rounds so every template is used about equally."""

    def __init__(self, size: int, rng: random.Random) -> None:
        self.size = size
        self.rng = rng
        self.pile: list[int] = []

    def deal(self, avoid: set[int]) -> int:
        for _ in range(2 * self.size):
            if not self.pile:
                self.pile = list(range(self.size))
                self.rng.shuffle(self.pile)
            index = self.pile.pop()
            if index not in avoid:
                return index
        raise RuntimeError("template deck exhausted")


def fits(template: str, sit: str) -> bool:
    """Reject "but ... but": a situation that already contains "but" after a "but"."""
    return " but " not in sit or ("but {sit}" not in template and "but part" not in template)


def clashes(feel: str, sit: str) -> bool:
    """True when the situation already uses the feeling word ("feel invisible" + "invisible")."""
    sit_words = set(re.findall(r"[a-z']+", sit.lower()))
    return any(len(w) > 3 and w in sit_words for w in feel.split())


def statements_for_situation(
    topic: Topic, sit: str, deck: TemplateDeck, rng: random.Random, seen: set[str]
) -> list[Statement]:
    usable = [f for f in topic.feelings if not clashes(f, sit)]
    feelings = rng.sample(usable, STATEMENTS_PER_SITUATION)
    effects = rng.sample(topic.effects, STATEMENTS_PER_SITUATION)
    used: set[int] = set()
    out: list[Statement] = []
    for feel, eff in zip(feelings, effects, strict=True):
        for _ in range(50):
            index = deck.deal(used)
            if not fits(STATEMENT_TEMPLATES[index], sit):
                continue
            st = compose_statement(STATEMENT_TEMPLATES[index], topic, sit, feel, eff, rng)
            if MIN_WORDS <= word_count(st.text) <= MAX_WORDS and st.text not in seen:
                break
        else:
            raise RuntimeError(f"no usable statement for {sit!r}")
        used.add(index)
        seen.add(st.text)
        out.append(st)
    return out


def build_statements(rng: random.Random) -> dict[str, list[Statement]]:
    """Split situations (not statements) 8/1/1 per topic, so val/test situations are unseen."""
    deck = TemplateDeck(len(STATEMENT_TEMPLATES), rng)
    splits: dict[str, list[Statement]] = {"train": [], "val": [], "test": []}
    seen: set[str] = set()
    for topic in TOPICS:
        order = list(range(len(topic.situations)))
        rng.shuffle(order)
        for rank, index in enumerate(order):
            split = "test" if rank == 0 else "val" if rank == 1 else "train"
            sit = topic.situations[index]
            splits[split].extend(statements_for_situation(topic, sit, deck, rng, seen))
    for items in splits.values():
        rng.shuffle(items)
    return splits


# ---- Labelled counsellor responses ---------------------------------------------------------


def response_slots(st: Statement, rng: random.Random, pool: Sequence[Statement]) -> dict[str, str]:
    """Everything a response template may refer to, derived from one client statement."""
    topic = st.topic
    sit2 = second(st.sit)
    fact, fact2 = rng.sample(topic.facts, 2)
    at_least = rng.choice(topic.at_least)
    value = rng.choice(topic.values)
    other = rng.choice([o for o in pool if o.topic.key != topic.key])
    slots = {
        "sit2": sit2,
        "Sit2": cap(sit2),
        "feel2": second(rng.choice(FEELING_ALT.get(st.feel, (st.feel,)))),
        "value": value,
        "Value": cap(value),
        "noun": rng.choice(topic.nouns),
        "adv": rng.choice(topic.advice),
        "closed": rng.choice(topic.closed),
        "opener": topic.opener,
        "fact": fact,
        "fact2": fact2,
        "fact_lc": fact[:1].lower() + fact[1:],
        "common": topic.common,
        "at_least": at_least,
        "At_least": cap(at_least),
        "judge": rng.choice(topic.judge),
        "other2": second(other.sit),
        "verbatim": rng.choice((st.text, cap(st.sit) + ".")),
        # the client's own words, first person kept (parroting hard negatives)
        "statement": st.text,
        "sit": st.sit,
        "Sit": cap(st.sit),
        "feel": st.feel,
    }
    if st.eff:
        slots["eff2"] = second(st.eff)
        slots["Eff2"] = cap(slots["eff2"])
    if st.part:
        slots["want2"], slots["fear2"] = second(st.part[0]), second(st.part[1])
    return slots


# ---- Help / safety prompts and preference pairs --------------------------------------------


def help_prompt(item: HelpItem, index: int) -> str:
    templates = HELP_TEMPLATES[item.kind]
    return templates[index % len(templates)].format(p=item.phrase)


def harm_asks() -> list[tuple[HarmCategory, str]]:
    return [(cat, ask) for cat in HARM_CATEGORIES for ask in cat.asks]


def spread_prompts(phrasings: Sequence[Sequence[str]], total: int, rng: random.Random) -> list[str]:
    """One phrasing per item first, then second phrasings for random items until `total`."""
    order = list(range(len(phrasings)))
    rng.shuffle(order)
    picks = {i: rng.sample(range(len(phrasings[i])), 2) for i in order}
    prompts = [phrasings[i][picks[i][0]] for i in order]
    prompts += [phrasings[i][picks[i][1]] for i in order[: total - len(order)]]
    if len(prompts) != total or len(set(prompts)) != total:
        raise RuntimeError("not enough distinct prompts")
    return prompts


def build_help_safety_prompts(rng: random.Random) -> list[Record]:
    """60% ordinary requests, 40% safety-relevant ones (harmful asks and risky situations)."""
    help_phrasings = [
        [help_prompt(item, k) for k in range(len(HELP_TEMPLATES[item.kind]))] for item in HELP_ITEMS
    ]
    harm_phrasings = [[t.format(ask=ask) for t in HARM_TEMPLATES] for _, ask in harm_asks()]
    n_harm = SAFETY_PROMPTS - len(CAREFUL_ITEMS)
    records: list[Record] = [
        {"prompt": p, "kind": "help"} for p in spread_prompts(help_phrasings, HELP_PROMPTS, rng)
    ]
    harm_prompts = spread_prompts(harm_phrasings, n_harm, rng)
    records += [{"prompt": p, "kind": "safety"} for p in harm_prompts]
    records += [{"prompt": item.prompt, "kind": "safety"} for item in CAREFUL_ITEMS]
    rng.shuffle(records)
    return records


def help_rejected(item: HelpItem, rng: random.Random) -> str:
    by_kind = HELP_REJECTED[weighted_choice(rng, HELP_REJECTED_WEIGHTS)]
    templates = by_kind.get("any", ()) + by_kind.get(item.kind, ())
    other = rng.choice([o for o in HELP_ITEMS if o is not item])
    slots = {"p2": second(item.phrase, plural=False), "other_answer": other.answer}
    return fill(rng, templates, slots)


PairMaker = Callable[[int, random.Random], tuple[str, str, str]]


def unique_pairs(count: int, make: PairMaker, rng: random.Random) -> list[Record]:
    """Call `make(k, rng) -> (prompt, chosen, rejected)` until `count` distinct triples exist."""
    seen: set[tuple[str, str, str]] = set()
    records: list[Record] = []
    k = 0
    while len(records) < count:
        if k > 50 * count:
            raise RuntimeError("could not produce enough distinct preference pairs")
        triple = make(k, rng)
        k += 1
        if triple not in seen:
            seen.add(triple)
            records.append(dict(zip(("prompt", "chosen", "rejected"), triple, strict=True)))
    return records


def build_help_prefs(rng: random.Random) -> list[Record]:
    order = list(HELP_ITEMS)
    rng.shuffle(order)

    def make(k: int, r: random.Random) -> tuple[str, str, str]:
        item = order[k % len(order)]
        prompt = help_prompt(item, r.randrange(len(HELP_TEMPLATES[item.kind])))
        return prompt, r.choice(HELP_CHOSEN).format(answer=item.answer), help_rejected(item, r)

    records = unique_pairs(HELP_PREF_PAIRS, make, rng)
    rng.shuffle(records)
    return records


def refusal(cat: HarmCategory, ask: str, rng: random.Random) -> str:
    """Opener, sometimes a reason, then a safe alternative that fits the request."""
    parts = [rng.choice(cat.openers or GENERIC_REFUSALS)]
    if rng.random() < 0.6:
        parts.append(rng.choice(cat.reasons))
    alternatives = cat.alternatives + tuple(alt for a, alt in cat.specific if a == ask) * 2
    parts.append(rng.choice(alternatives))
    return " ".join(parts)


def build_safety_prefs(rng: random.Random) -> list[Record]:
    asks = harm_asks()
    rng.shuffle(asks)
    careful = list(CAREFUL_ITEMS)
    rng.shuffle(careful)

    def make_harm(k: int, r: random.Random) -> tuple[str, str, str]:
        cat, ask = asks[k % len(asks)]
        prompt = r.choice(HARM_TEMPLATES).format(ask=ask)
        return prompt, refusal(cat, ask, r), r.choice(COMPLY_TEMPLATES).format(ask2=second(ask))

    def make_careful(k: int, r: random.Random) -> tuple[str, str, str]:
        item = careful[k % len(careful)]
        chosen = r.choice(CAREFUL_CHOSEN).format(careful=item.careful)
        return item.prompt, chosen, r.choice(RECKLESS_REJECTED).format(reckless=item.reckless)

    records = unique_pairs(HARM_PREF_PAIRS, make_harm, rng)
    records += unique_pairs(CAREFUL_PREF_PAIRS, make_careful, rng)
    rng.shuffle(records)
    return records


# ---- Output --------------------------------------------------------------------------------


def write_jsonl(path: Path, records: Sequence[Record]) -> None:
    lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in records]
    with path.open("w", encoding="utf-8", newline="\n") as f:
        f.writelines(lines)


def check_fragments() -> None:
    """Catch editing slips in the fragments before they turn into odd data."""
    for topic in TOPICS:
        if len(topic.situations) != 10 or len(set(topic.situations)) != 10:
            raise ValueError(f"topic {topic.key}: need 10 distinct situations")
        if len(topic.feelings) < STATEMENTS_PER_SITUATION + 2 or len(topic.facts) < 2:
            raise ValueError(f"topic {topic.key}: too few feelings or facts")
    for cat in HARM_CATEGORIES:
        stray = [ask for ask, _ in cat.specific if ask not in cat.asks]
        if stray:
            raise ValueError(f"harm category {cat.key}: specific alternatives for unknown {stray}")
    if len({item.phrase for item in HELP_ITEMS}) != len(HELP_ITEMS):
        raise ValueError("duplicate help item")


def build_all() -> dict[str, list[Record]]:
    """Every dataset, each from its own seeded generator (editing one never shifts another)."""
    check_fragments()
    splits = build_statements(random.Random(f"{SEED}-statements"))
    train = splits["train"]
    files: dict[str, list[Record]] = {
        f"counsel_{name}": [{"prompt": st.text} for st in items] for name, items in splits.items()
    }
    labelled = {
        "reflection": (REFLECTION_POSITIVE, REFLECTION_NEGATIVE, REFLECTION_NEGATIVE_WEIGHTS),
        "empathy": (EMPATHY_POSITIVE, EMPATHY_NEGATIVE, EMPATHY_NEGATIVE_WEIGHTS),
    }
    held_out = splits["val"] + splits["test"]  # situations no label row uses
    for name, kinds in labelled.items():
        plain = labelled_records(train, random.Random(f"{SEED}-{name}"), response_slots, kinds,
                                 LABEL_PAIRS)
        rng = random.Random(f"{SEED}-{name}-hard")
        seen = {(str(r["prompt"]), str(r["response"])) for r in plain}
        rows = plain + hard_records(train, rng, response_slots, name, HARD,
                                    ("train", HARD_PAIRS, kinds[0]), seen=seen)
        rng.shuffle(rows)
        files[f"{name}_labels"] = rows
        files[f"{name}_adversarial"] = hard_records(
            held_out, random.Random(f"{SEED}-{name}-adversarial"), response_slots, name, HARD,
            ("adversarial", ADVERSARIAL_PAIRS, HARD["positive_adversarial"][name]),
            avoid={str(r["response"]) for r in rows})
    files["help_safety_prompts"] = build_help_safety_prompts(random.Random(f"{SEED}-prompts"))
    files["help_prefs"] = build_help_prefs(random.Random(f"{SEED}-help"))
    files["safety_prefs"] = build_safety_prefs(random.Random(f"{SEED}-safety"))
    return files


def render_readme(files: dict[str, list[Record]]) -> str:
    counts: dict[str, object] = {name: len(records) for name, records in files.items()}
    kinds = [r["kind"] for r in files["help_safety_prompts"]]
    counts.update(
        seed=SEED,
        min_words=MIN_WORDS,
        max_words=MAX_WORDS,
        n_topics=len(TOPICS),
        per_situation=STATEMENTS_PER_SITUATION,
        reflection_pos=sum(r["label"] == 1 for r in files["reflection_labels"]),
        empathy_pos=sum(r["label"] == 1 for r in files["empathy_labels"]),
        reflection_adv_pos=sum(r["label"] == 1 for r in files["reflection_adversarial"]),
        empathy_adv_pos=sum(r["label"] == 1 for r in files["empathy_adversarial"]),
        plain_pairs=LABEL_PAIRS,
        hard_pairs=HARD_PAIRS,
        families_reflection=", ".join(f"`{f}`" for f in families_for(HARD, "reflection")),
        families_empathy=", ".join(f"`{f}`" for f in families_for(HARD, "empathy")),
        n_help=kinds.count("help"),
        n_safety=kinds.count("safety"),
        labelled="`prompt`, `response`, `label`, `family`",
        kind="`prompt`, `kind`",
        pref="`prompt`, `chosen`, `rejected`",
        n_help_items=len(HELP_ITEMS),
        n_harm_pairs=HARM_PREF_PAIRS,
        n_careful_pairs=CAREFUL_PREF_PAIRS,
    )
    return README_TEMPLATE.format(**counts)


def generate(out: Path) -> dict[str, int]:
    """Write every dataset and the README into `out`; return record counts per file."""
    out.mkdir(parents=True, exist_ok=True)
    files = build_all()
    for name, records in files.items():
        write_jsonl(out / f"{name}.jsonl", records)
    (out / "README.md").write_text(render_readme(files), encoding="utf-8", newline="\n")
    return {name: len(records) for name, records in files.items()}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)
    for name, count in generate(args.out).items():
        print(f"{name:>22}: {count}")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
