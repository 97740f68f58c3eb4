"""Words for the deterministic measurements: tokens, stop words and a light stemmer."""

import re

WORD = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)*")
NUMBER = re.compile(r"^[0-9]+(?:[.,][0-9]+)*$")
STOP_WORDS = frozenset(
    """a an and are as at be been by can could do does for from had has have he her his how i
    if in into is it its me my no not of on or our per please she so than that the their them
    then there these they this those to up us was we were what when where which who why will
    with would you your also just about any all each every only very more most some such own
    same other may might must shall should here""".split()
)


def stem(word: str) -> str:
    """A light suffix stemmer: plural and verb endings, so `refunds` matches `refund`."""
    if NUMBER.match(word) or len(word) <= 3:
        return word
    for suffix, keep in (
        ("ies", "y"),
        ("sses", "ss"),
        ("ing", ""),
        ("ed", ""),
        ("es", ""),
        ("s", ""),
    ):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + keep
    return word


def words(text: str) -> list[str]:
    """Lower-cased word and number tokens, in order."""
    return WORD.findall(text.lower())


def content_terms(text: str) -> list[str]:
    """Stemmed tokens without stop words: what a statement claims."""
    return [stem(w) for w in words(text) if w not in STOP_WORDS]


def is_number(term: str) -> bool:
    """Whether a term is a number (numbers must be matched exactly)."""
    return bool(NUMBER.match(term))
