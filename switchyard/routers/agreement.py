"""Whether two models' answers to one prompt agree: the rule of the second-opinion router
(``second_opinion:`` on a router, served by ``switchyard.gateway.second_opinion``) and of its
offline evaluation (``bench/cascade_agreement.py``), so both measure the same thing.

Two answers agree when their first words, lower-cased, are equal: the choice letter of a
multiple-choice answer ("B", "b. because…", "['B']"), the number that opens a short numeric
one, the first token of code. An answer without text (None: no answer, a tool call; or an
empty or blank one) agrees with nothing; a text with no leading word is compared on its
first 20 characters."""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9]+")
_WRAPPING = "[]'\" "


def first_word(text: str | None) -> str | None:
    """What two answers are compared on: the first word, lower-cased (None: no answer)."""
    if text is None:
        return None
    text = text.strip().strip(_WRAPPING).lower()
    found = _WORD.match(text)
    return found.group(0) if found else (text[:20] or None)


def agree(answer: str | None, other: str | None) -> bool:
    """True when both answers have text and open with the same word."""
    word = first_word(answer)
    return word is not None and word == first_word(other)


__all__ = ["agree", "first_word"]
