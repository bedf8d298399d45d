"""nltk-style word tokens for the EMORL authors' edit rate (EMORL §5.3), without nltk.

The authors compute the edit rate on ``nltk.word_tokenize`` tokens with case kept. That function
splits the text into sentences (Punkt, which needs a downloaded model) and then applies the Penn
Treebank conventions to each sentence. `word_tokenize` here reproduces those conventions with a
few regular expressions and replaces Punkt by a small rule (a sentence ends at ``.``, ``!`` or
``?`` followed by whitespace and a capital letter, a digit or an opening quote, unless the word
before is a common abbreviation), so it needs no data and no network. What the approximation
changes: only where Punkt would place a sentence boundary differently, which decides whether a
sentence-internal period becomes its own token.

Treebank conventions kept: punctuation ``, ; : ! ? ( ) [ ] { } < > -- ...`` and ``$ % & # @ *``
are tokens; a sentence-final period is split off; double quotes become ````` and ``''``;
clitics split as ``do n't``, ``it 's``, ``we 're``, ``I 'm``, ``they 've``, ``you 'll``,
``ca n't``; ``cannot``, ``gonna``, ``gotta``, ``wanna``, ``gimme``, ``lemme`` split in two;
commas and colons inside numbers (``1,000``, ``3:30``) stay; hyphenated words stay whole.
"""

from __future__ import annotations

import re

Rule = tuple[re.Pattern[str], str]


def _rules(*pairs: tuple[str, str]) -> list[Rule]:
    return [(re.compile(p), r) for p, r in pairs]


_OPENING_QUOTES = _rules(
    (r"([«“‘„]|`+)", r" \1 "),
    (r'^"', r"``"),
    (r"(``)", r" \1 "),
    (r'([ (\[{<])("|\'{2})', r"\1 `` "),
    (r"(?i)(?<!\w)(')(?!(?:re|ve|ll|m|t|s|d|n)\b)(?=\w)", r"\1 "),  # 'quoted, not 's
)
_PUNCTUATION = _rules(
    (r"([^.])(\.)([\]\)}>\"'»”’]*)\s*$", r"\1 \2 \3 "),  # the sentence-final period
    (r"([:,])([^\d])", r" \1 \2"),  # , and : except inside numbers
    (r"([:,])$", r" \1 "),
    (r"\.{2,}", r" \g<0> "),
    (r"[;@#$%&*]", r" \g<0> "),
    (r"[?!]", r" \g<0> "),
    (r"([^'])' ", r"\1 ' "),
    (r"[\u2012-\u2015]", r" \g<0> "),  # figure dash, en dash, em dash, horizontal bar
    (r"[\]\[(){}<>]", r" \g<0> "),
    (r"--", r" -- "),
)
_CLOSING_QUOTES = _rules(
    (r"([»”’])", r" \1 "),
    (r"''", r" '' "),
    (r'"', r" '' "),
    (r"([^' ])('[sSmMdD]|') ", r"\1 \2 "),
    (r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", r"\1 \2 "),
)
_SPLIT_WORDS = _rules(
    (r"(?i)\b(can)(not)\b", r" \1 \2 "),
    (r"(?i)\b(d)('ye)\b", r" \1 \2 "),
    (r"(?i)\b(gim|lem)(me)\b", r" \1 \2 "),
    (r"(?i)\b(gon|wan)(na)\b", r" \1 \2 "),
    (r"(?i)\b(got)(ta)\b", r" \1 \2 "),
    (r"(?i)\b(more)('n)\b", r" \1 \2 "),
    (r"(?i) ('t)(is|was)\b", r" \1 \2 "),
)

_ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g",
                            "i.e", "u.s", "a.m", "p.m", "no", "fig", "approx", "dept"})
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]’”]*\s+(?=[\"'(\[‘“]?[A-Z0-9])")


def _apply(rules: list[Rule], text: str) -> str:
    for pattern, replacement in rules:
        text = pattern.sub(replacement, text)
    return text


def split_sentences(text: str) -> list[str]:
    """Sentences of `text` by the boundary rule in the module docstring (Punkt's stand-in)."""
    out, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        words = text[start:m.start()].split()
        last = words[-1].lower().rstrip(".") if words else ""
        if text[m.start()] == "." and last in _ABBREVIATIONS:
            continue
        out.append(text[start:m.end()].strip())
        start = m.end()
    tail = text[start:].strip()
    return [s for s in [*out, tail] if s]


def treebank_tokens(sentence: str) -> list[str]:
    """Penn Treebank tokens of ONE sentence (the conventions of nltk's NLTKWordTokenizer)."""
    text = _apply(_OPENING_QUOTES, sentence)
    text = _apply(_PUNCTUATION, text)
    text = _apply(_CLOSING_QUOTES, " " + text + " ")
    return _apply(_SPLIT_WORDS, text).split()


def word_tokenize(text: str) -> list[str]:
    """nltk-style word tokens of `text` (case kept): sentences, then Treebank tokens of each."""
    return [tok for sentence in split_sentences(text) for tok in treebank_tokens(sentence)]
