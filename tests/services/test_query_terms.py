"""Parsing query arithmetic: terms, signs and weights (pure, no model)."""

from __future__ import annotations

import pytest

from app.services.query_terms import QueryTerm, is_plain, query_terms
from models.errors import InvalidInputError


def test_terms_are_split_on_operators_with_spaces_around_them() -> None:
    assert query_terms("golden retriever + beach - snow") == [
        QueryTerm("golden retriever", 1.0),
        QueryTerm("beach", 1.0),
        QueryTerm("snow", -1.0),
    ]
    # an operator inside a word, or without spaces on both sides, is part of the text
    for text in ("t-shirt", "1+1 = 2", "rock -n- roll", "sea +sky"):
        assert query_terms(text) == [QueryTerm(text, 1.0)]


def test_weights_are_numbers_before_a_colon() -> None:
    assert query_terms("2:golden retriever - 0.5:snow") == [
        QueryTerm("golden retriever", 2.0),
        QueryTerm("snow", -0.5),
    ]
    assert query_terms("note: red door") == [QueryTerm("note: red door", 1.0)]  # no digit: text
    assert query_terms("10:30 meeting") == [QueryTerm("10:30 meeting", 1.0)]  # a time of day: text


def test_a_leading_operator_signs_the_first_term_and_a_trailing_one_is_dropped() -> None:
    assert query_terms("- snow") == [QueryTerm("snow", -1.0)]
    assert query_terms("dog + ") == [QueryTerm("dog", 1.0)]


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("+ -", "no terms"),
        (" - ", "no terms"),
        ("dog +  - cat", "empty term"),
        ("x2:dog", "not a number"),
        ("1.2.3:dog", "not a number"),
        ("0:dog", "positive"),
        ("dog - 1e999:cat", "positive"),
        ("2:", "no text"),
    ],
)
def test_unusable_queries_say_why(query: str, reason: str) -> None:
    with pytest.raises(InvalidInputError, match=reason):
        query_terms(query)


def test_only_a_single_unweighted_term_is_plain() -> None:
    assert is_plain(query_terms(" a dog "), " a dog ")
    assert not is_plain(query_terms("1:a dog"), "1:a dog")  # embedded without its weight prefix
    assert not is_plain(query_terms("- a dog"), "- a dog")
    assert not is_plain(query_terms("dog + cat"), "dog + cat")
