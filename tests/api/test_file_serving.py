"""Original files and thumbnails are served only while they are what was indexed, inside the collection."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from app.storage.tables import Photo
from models.encoder import Encoder
from tests.builders import photos
from tests.builders.indexing import run_index, table


def served(client: TestClient, photo_id: int) -> tuple[int, int]:
    return (
        client.get(f"/v1/photos/{photo_id}/file").status_code,
        client.get(f"/v1/photos/{photo_id}/thumbnail").status_code,
    )


def test_links_out_of_the_folder_and_changed_files_are_not_served(
    settings: Settings, encoder: Encoder, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    photos.copy_shared_photos(folder, "val", 4)
    outside = tmp_path / "private"
    outside.mkdir()
    secret_photo = outside / "secret.jpg"  # a real photo, so the indexer embeds what the link points to
    shutil.copy(photos.SHARED / photos.shared_rows("val", 1, skip=10)[0]["image"], secret_photo)
    secret_text = outside / "passwd"
    secret_text.write_text("root:x:0:0:root:/root:/bin/bash\n")
    (folder / "linked.jpg").symlink_to(secret_photo)
    (folder / "passwd.jpg").symlink_to(secret_text)
    run_index(settings, encoder, folder)
    rows = {Path(p.path).name: p for p in table(settings, Photo)}
    kept, swapped, grown = sorted(folder.glob("[0-9]*.jpg"))[:3]
    swapped.unlink()
    swapped.symlink_to(secret_text)  # replaced by a link after indexing
    with open(grown, "ab") as handle:  # changed since indexing: size and mtime differ
        handle.write(b"\0" * 16)
    with TestClient(create_app(settings, encoder=encoder)) as client:
        assert served(client, rows[kept.name].id) == (200, 200)
        assert client.get(f"/v1/photos/{rows[kept.name].id}/file").content == kept.read_bytes()
        for name in ("linked.jpg", "passwd.jpg", swapped.name, grown.name):
            if name not in rows:  # the indexer may leave links out altogether
                continue
            photo_id = rows[name].id
            assert served(client, photo_id) == (404, 404), name
            answer = client.get(f"/v1/photos/{photo_id}/file").json()
            assert answer == {"detail": f"no photo with id {photo_id}"}  # exactly as an unknown id
        bodies = [client.get(f"/v1/photos/{p.id}/file").content for p in rows.values()]
    assert secret_text.read_bytes() not in bodies and secret_photo.read_bytes() not in bodies


def test_a_file_is_served_from_any_folder_of_its_collection(
    settings: Settings, encoder: Encoder, tmp_path: Path
) -> None:
    """The check takes the collection's folders, not only the first one it was made from."""
    first, second = tmp_path / "first", tmp_path / "second"
    photos.copy_shared_photos(first, "val", 2)
    photos.copy_shared_photos(second, "val", 2, skip=2)
    run_index(settings, encoder, first)
    run_index(settings, encoder, second)
    rows = table(settings, Photo)
    assert len(rows) == 4 and os.path.commonpath([r.path for r in rows]) == str(tmp_path)
    with TestClient(create_app(settings, encoder=encoder)) as client:
        assert all(served(client, r.id) == (200, 200) for r in rows)
