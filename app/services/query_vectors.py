"""Query vectors: a text or an image (uploaded, or an indexed photo) checked and embedded."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings
from app.services.filters import checked_photo_id, plain_text
from app.services.limits import HeavyWorkGate
from app.storage import repository as repo
from models.encoder import Encoder
from models.errors import InvalidInputError, NotFoundError, PayloadTooLargeError
from models.images import ImageDecodeError, decode_photo


@dataclass(frozen=True)
class ImageQuery:
    """Exactly one of the two: uploaded bytes or an indexed photo's id."""

    upload: bytes | None = None
    photo_id: int | None = None


class QueryVectors:
    def __init__(
        self, settings: Settings, encoder: Encoder, sessions: sessionmaker[Session], gate: HeavyWorkGate
    ) -> None:
        self.settings = settings
        self.encoder = encoder
        self.sessions = sessions
        self.gate = gate

    def checked_text(self, query: str, what: str = "query") -> str:
        """The query with its whitespace collapsed, or InvalidInputError saying what is wrong."""
        text = " ".join(plain_text(query, what).split())
        if not text:
            raise InvalidInputError(f"{what} is empty: describe the photo in a few words")
        limit = self.settings.api.max_query_chars
        if len(text) > limit:
            raise InvalidInputError(f"{what} is {len(text):,} characters long; the limit is {limit:,}")
        return text

    def text_vector(self, query: str) -> np.ndarray:
        """(dim,) unit vector of a checked text query."""
        text = self.checked_text(query)
        with self.gate.slot():
            vector: np.ndarray = self.encoder.encode_texts([text])[0]
        return vector

    def texts_vectors(self, texts: list[str]) -> np.ndarray:
        """(n, dim) unit vectors of texts already checked by the caller."""
        with self.gate.slot():
            vectors: np.ndarray = self.encoder.encode_texts(texts)
        return vectors

    def image_vector(self, query: ImageQuery, within: frozenset[int] | None = None) -> np.ndarray:
        """(dim,) unit vector of an upload, or the stored vector of an indexed photo; one outside the
        collections `within` (the request key's; None: all) is answered as an unknown id."""
        if (query.upload is None) == (query.photo_id is None):
            raise InvalidInputError("give either an image upload or a photo_id, not both or neither")
        if query.photo_id is not None:
            return self._stored_vector(checked_photo_id(query.photo_id), within)
        assert query.upload is not None
        limit = self.settings.api.max_upload_bytes
        if len(query.upload) > limit:
            raise PayloadTooLargeError(f"upload is {len(query.upload):,} bytes; the limit is {limit:,}")
        with self.gate.slot(release_memory=True):
            image = self.decode_upload(query.upload)
            vector: np.ndarray = self.encoder.encode_images([image])[0]
            del image
        return vector

    def decode_upload(self, data: bytes) -> Image.Image:
        """An upload as the RGB image the model needs. Its pixel count is checked from the header
        before decoding (api.max_upload_pixels), and a JPEG is decoded at reduced scale down to twice
        the model's input size, so that the model's own resize still smooths over finer pixels."""
        max_pixels = min(self.settings.api.max_upload_pixels, self.settings.indexer.max_image_pixels)
        try:
            return decode_photo(data, max_pixels, min_side=2 * self.encoder.preprocess.image_size).image
        except ImageDecodeError as exc:
            raise InvalidInputError(f"upload is not a usable image: {exc}") from exc

    def _stored_vector(self, photo_id: int, within: frozenset[int] | None) -> np.ndarray:
        with self.sessions() as session:
            photo = repo.get_photo(session, photo_id=photo_id)
            if photo is None or (within is not None and photo.collection_id not in within):
                raise NotFoundError(f"no photo with id {photo_id}")
            vector = repo.get_photo_vector(
                session, photo_id=photo_id, model_key=self.encoder.key, dim=self.encoder.dim
            )
        if vector is None:
            raise NotFoundError(
                f"photo {photo_id} has no vector for model {self.encoder.key} "
                f"(status: {photo.status}); run `photosearch index` on its folder"
            )
        return vector
