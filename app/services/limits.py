"""A bound on heavy work (decoding uploads, embedding) running at once, and giving memory back after it.

Each decode or embedding takes a slot; a request that finds none free waits a little, then is told
to retry (TooBusyError, HTTP 429) instead of piling up work and memory."""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from models.errors import TooBusyError


class HeavyWorkGate:
    def __init__(self, slots: int, wait_s: float) -> None:
        self._slots = threading.BoundedSemaphore(max(1, slots))
        self._wait_s = wait_s
        self._lock = threading.Lock()
        self._busy = 0

    @contextmanager
    def slot(self, *, release_memory: bool = False) -> Iterator[None]:
        """Hold one slot for the block. release_memory (work that allocates a lot, such as decoding an
        upload): return freed heap to the system once no other heavy work is running."""
        if not self._slots.acquire(timeout=self._wait_s):
            raise TooBusyError(
                f"the server is busy with other image and text work (waited {self._wait_s:g} s); "
                "retry shortly"
            )
        with self._lock:
            self._busy += 1
        try:
            yield
        finally:
            with self._lock:
                self._busy -= 1
                idle = self._busy == 0
            self._slots.release()
            if idle and release_memory:
                trim_heap()


def _load_libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


_LIBC = _load_libc()


def trim_heap() -> None:
    """Give freed heap memory back to the system (glibc). The process tunes malloc to keep freed
    memory for the model's speed (models/runtime.py), so without this the pixels of a burst of big
    uploads would stay resident after the burst."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
