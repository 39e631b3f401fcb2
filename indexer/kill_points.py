"""Test-only crash points: the kill test (tests/indexer/test_killed_runs.py) runs a real
`photosearch index` that SIGKILLs itself at a chosen point, as a power cut would.

PHOTOSEARCH_TEST_KILL_AT="<point>:<n>" kills the process the n-th time `<point>` is reached.
Points: "batch" (a batch of vectors committed), "faiss-written" (a base FAISS file written, its build
not yet recorded), "merge-written" (the same, when the base replaces one with deltas),
"delta-written" (a delta segment written, its build not yet recorded; tests/indexer/
test_incremental_kills.py). Unset (always, outside those tests): nothing happens.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENVIRONMENT_VARIABLE = "PHOTOSEARCH_TEST_KILL_AT"
_reached: Counter[str] = Counter()


def reached(point: str) -> None:
    wanted = os.environ.get(ENVIRONMENT_VARIABLE)
    if not wanted:
        return
    name, _, count = wanted.partition(":")
    if name != point:
        return
    _reached[point] += 1
    if _reached[point] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
