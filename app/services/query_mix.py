"""One query vector from weighted text terms and indexed photos: Σ w·v over the + terms and photos,
minus Σ w·v over the - ones, normalised (rclip-style query arithmetic)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from app.services.query_terms import QueryTerm
from app.services.query_vectors import ImageQuery, QueryVectors
from models.errors import InvalidInputError


def mixed_vector(
    vectors: QueryVectors,
    terms: Sequence[QueryTerm],
    photo_ids: tuple[Sequence[int], Sequence[int]],
    within: frozenset[int] | None,
) -> np.ndarray:
    """(dim,) unit vector. photo_ids: (positive, negative) indexed photos, each weight 1; one outside
    `within` (the request key's collections) is answered as an unknown id."""
    texts = [vectors.checked_text(term.text, "a query term") for term in terms]
    parts: list[tuple[float, np.ndarray]] = []
    if texts:
        encoded = vectors.texts_vectors(texts)
        parts += [(term.weight, encoded[i]) for i, term in enumerate(terms)]
    positive, negative = photo_ids
    for sign, ids in ((1.0, positive), (-1.0, negative)):
        parts += [(sign, vectors.image_vector(ImageQuery(photo_id=pid), within)) for pid in ids]
    if not parts:
        raise InvalidInputError("query is empty: describe the photo in a few words or give photo ids")
    total = np.zeros_like(parts[0][1], dtype=np.float32)
    for weight, vector in parts:
        total += weight * vector / max(float(np.linalg.norm(vector)), 1e-12)
    norm = float(np.linalg.norm(total))
    if norm < 1e-6:
        raise InvalidInputError("the query's terms and photos cancel out: nothing is left to search for")
    result: np.ndarray = total / norm
    return result
