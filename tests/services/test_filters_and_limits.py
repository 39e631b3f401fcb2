"""Search filters and pages check themselves when made; the heavy-work gate bounds work in flight."""

from __future__ import annotations

import math
import threading
import time

import pytest

from app.core.config import ApiSettings
from app.services.filters import Page, SearchFilters, page_of, plain_text
from app.services.limits import HeavyWorkGate
from models.errors import InvalidInputError, TooBusyError


@pytest.mark.parametrize(
    ("filters", "fragment"),
    [
        ({"min_score": math.nan}, "min_score is a cosine between -1 and 1; got nan"),
        ({"min_score": 1.5}, "got 1.5"),
        ({"collections": ["ok", "bad\x00"]}, "a collection name contains a NUL character"),
        ({"tags": ["\ud800"]}, "a tag contains a lone surrogate (\\ud800)"),
    ],
)
def test_filters_refuse_what_cannot_be_searched(filters: dict, fragment: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        SearchFilters.of(**filters)
    assert fragment in str(caught.value)


def test_filters_are_frozen_and_keep_their_values() -> None:
    filters = SearchFilters.of(collections=["family"], tags=["dog"], min_score=-0.5)
    assert filters == SearchFilters(("family",), ("dog",), -0.5)
    with pytest.raises(AttributeError):
        filters.min_score = 0.9  # type: ignore[misc]
    assert plain_text("a dog 🐕", "query") == "a dog 🐕"  # astral characters are fine


def test_pages_take_their_default_and_bounds_from_settings() -> None:
    api = ApiSettings(default_k=7, max_k=50, max_offset=100)
    assert page_of(api) == Page(7, 0) and page_of(api, 50, 100) == Page(50, 100)
    for k, offset, message in ((51, 0, "k must be between 1 and 50; got 51"), (5, 101, "got 101")):
        with pytest.raises(InvalidInputError, match=message):
            page_of(api, k, offset)


def test_the_gate_lets_slots_through_and_refuses_after_its_wait() -> None:
    gate = HeavyWorkGate(slots=2, wait_s=0.1)
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with gate.slot():
            held.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    with gate.slot():  # the second slot is free
        started = time.perf_counter()
        with pytest.raises(TooBusyError, match="retry shortly"), gate.slot():
            pass
        assert 0.09 <= time.perf_counter() - started < 2
    release.set()
    holder.join()
    with gate.slot(release_memory=True):  # free again once the work is done
        pass
