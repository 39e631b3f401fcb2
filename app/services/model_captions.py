"""The served model's caption bank (models/caption_bank.py): captions for photos nobody captioned.

Loaded at start-up when its vectors are already cached (`photosearch index` and `photosearch
caption-bank` prepare them); otherwise embedded on first use, once, holding a heavy-work slot, and
cached for every later start. That takes minutes on a CPU: joint-default's 45,432 captions take about
10 on a 2-core machine with VNNI through its int8 MPNet text tower (73 captions a second)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from app.services.limits import HeavyWorkGate
from models.caption_bank import (
    CaptionBank,
    CaptionBankError,
    cached_caption_bank,
    encoder_sidecar,
    prepare_caption_bank,
)
from models.encoder import Encoder
from models.errors import TooBusyError

log = logging.getLogger(__name__)


class ModelCaptions:
    def __init__(self, encoder: Encoder, cache_dir: Path, gate: HeavyWorkGate, wait_s: float) -> None:
        self.encoder = encoder
        self.cache_dir = cache_dir
        self.gate = gate
        self.wait_s = wait_s  # how long a request waits for another one preparing the bank
        self.sidecar = encoder_sidecar(encoder)
        self._bank: CaptionBank | None = None
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        """Whether the model ships a caption bank (a sidecar beside its checkpoint)."""
        return self.sidecar is not None

    @property
    def loaded(self) -> bool:
        return self._bank is not None

    def preload(self) -> None:
        """Load the bank if its vectors are cached (start-up: fast, no embedding)."""
        if self.sidecar is None:
            return
        try:
            self._bank = cached_caption_bank(self.encoder, self.cache_dir)
        except CaptionBankError as exc:
            self._unusable(exc)

    def bank(self) -> CaptionBank | None:
        """The bank, embedded now if it is not cached yet; None when the model has none. A request that
        finds another one embedding it waits up to wait_s, then is told to retry (429)."""
        if self._bank is not None or self.sidecar is None:
            return self._bank
        if not self._lock.acquire(timeout=self.wait_s):
            raise TooBusyError(
                "the model's caption bank is being prepared (once, some minutes on a CPU; "
                "`photosearch caption-bank` does it ahead); retry shortly"
            )
        try:
            if self._bank is None:
                with self.gate.slot():
                    self._bank = prepare_caption_bank(self.encoder, self.cache_dir)
        except CaptionBankError as exc:
            self._unusable(exc)
        finally:
            self._lock.release()
        return self._bank

    def _unusable(self, error: CaptionBankError) -> None:
        log.warning("annotating without the model's caption bank: %s", error)
        self.sidecar = None
