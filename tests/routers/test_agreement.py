"""The agreement rule shared by the second-opinion router and its offline evaluation."""

from __future__ import annotations

import pytest

from switchyard.routers.agreement import agree, first_word


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("B", "b"),
        ("  b. Because the river floods", "b"),
        ("['C']", "c"),
        ('"A"', "a"),
        ("42 apples", "42"),
        ("def f(x):\n    return x", "def"),
        ('{"answer": 1}', '{"answer": 1}'),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_first_word_is_the_lower_cased_opening_word(text: str | None, word: str | None) -> None:
    assert first_word(text) == word


def test_answers_opening_with_the_same_word_agree_whatever_follows() -> None:
    assert agree("B. The second option", "b")
    assert agree("['A']", "A) because")
    assert not agree("A", "B")
    assert not agree("yes", "yesterday")


def test_an_answer_without_text_agrees_with_nothing() -> None:
    assert not agree(None, None)
    assert not agree(None, "A")
    assert not agree("A", None)
    assert not agree("", "")
