"""Query arithmetic in text: "golden retriever + beach - snow", each term optionally weighted ("2:beach").

Pure parsing, no model: terms are split on " + " and " - " (an operator with whitespace on both sides,
so "t-shirt" and "1+1" stay words), and a term may start with `weight:`."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from models.errors import InvalidInputError

OPERATOR = re.compile(r"\s([+-])(?=\s)")
# A prefix before ':' is a weight when it holds a digit ("2:", "0.5:"); "note: red" stays text, and so
# does a time of day ("10:30 meeting": a digit right after the colon).
WEIGHT = re.compile(r"^([^\s:]*\d[^\s:]*):(?!\d)(.*)$", re.DOTALL)


@dataclass(frozen=True)
class QueryTerm:
    text: str
    weight: float  # negative for a term after " - "


def query_terms(query: str) -> list[QueryTerm]:
    """The weighted terms of a query, in order; a query without operators or weight is one term of
    weight 1. InvalidInputError for operators without terms or a weight that is not a positive number.
    A leading operator applies to the first term; an empty term between operators is refused."""
    parts = OPERATOR.split(f" {query} ")
    signs = ["+", *parts[1::2]]
    texts = [part.strip() for part in parts[0::2]]
    if not any(texts):
        raise InvalidInputError("query has operators but no terms: write words around ' + ' and ' - '")
    if not texts[0] and len(texts) > 1:  # "- snow": the leading operator is the first term's sign
        signs, texts = signs[1:], texts[1:]
    if not texts[-1]:  # a trailing operator adds nothing
        signs, texts = signs[:-1], texts[:-1]
    terms = []
    for sign, text in zip(signs, texts, strict=True):
        if not text:
            raise InvalidInputError(f"query {query.strip()[:80]!r} has an empty term between two operators")
        weight, text = term_weight(text)
        terms.append(QueryTerm(text, -weight if sign == "-" else weight))
    return terms


def term_weight(term: str) -> tuple[float, str]:
    """(weight, text) of one term: "2:beach" → (2.0, "beach"), "beach" → (1.0, "beach")."""
    found = WEIGHT.match(term)
    if found is None:
        return 1.0, term
    prefix, text = found.group(1), found.group(2).strip()
    try:
        weight = float(prefix)
    except ValueError:
        raise InvalidInputError(f"weight {prefix!r} in term {term[:80]!r} is not a number") from None
    if not (math.isfinite(weight) and weight > 0):
        raise InvalidInputError(f"weight {prefix!r} in term {term[:80]!r} must be a positive number")
    if not text:
        raise InvalidInputError(f"term {term[:80]!r} has a weight but no text")
    return weight, text


def is_plain(terms: list[QueryTerm], query: str) -> bool:
    """The query is one term, without operator or weight: searched exactly as it always was."""
    return terms == [QueryTerm(query.strip(), 1.0)]
