"""Query-bank normalisation and test-time settings: offsets, ranking, the checkpoint round trip, the CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from typer.testing import CliRunner

from models.joint.config import QueryBankConfig, ServingConfig
from models.query_bank import QueryBank, attach_query_bank
from models.registry import create_encoder, find_checkpoint, load_joint_config
from models.training.calibrate import calibrate_checkpoint
from models.training.evaluate import encoder_reports, retrieval_report
from tests.builders.databases import run_migration
from tests.builders.photos import SHARED, captioned_subset, shared_rows


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_offset_is_beta_times_the_mean_of_the_k_nearest_bank_entries() -> None:
    rng = np.random.default_rng(0)
    images, texts = _unit(rng.normal(size=(40, 8))), _unit(rng.normal(size=(60, 8)))
    bank = QueryBank(images, texts, k=5, beta=0.5, photo_floor=-1.0, caption_floor=-1.0)  # no floor
    photos = _unit(rng.normal(size=(7, 8)))
    expected = 0.5 * np.sort(photos @ bank.texts.T, axis=1)[:, -5:].mean(axis=1)
    assert bank.photo_offsets(photos) == pytest.approx(expected, abs=1e-6)
    captions = _unit(rng.normal(size=(3, 8)))
    expected = 0.5 * np.sort(captions @ bank.images.T, axis=1)[:, -5:].mean(axis=1)
    assert bank.caption_offsets(captions) == pytest.approx(expected, abs=1e-6)
    assert bank.photo_offsets(np.zeros((0, 8), np.float32)).shape == (0,)
    small = QueryBank(images[:3], texts[:3], k=50, photo_floor=-1.0)  # k larger than the bank: all of it
    assert small.photo_offsets(photos) == pytest.approx(0.5 * (photos @ bank.texts[:3].T).mean(1), abs=1e-6)


def test_an_outlier_is_not_promoted_below_the_floor() -> None:
    """Offsets never fall below beta × the 10th percentile of the bank's own hubness, so a photo unlike
    anything typical (far from every bank caption) is not lifted above photos that match the query."""
    rng = np.random.default_rng(2)
    texts = _unit(np.abs(rng.normal(size=(300, 6))) * np.array([1, 1, 1, 1, 0.05, 0.05]))
    images = _unit(np.abs(rng.normal(size=(200, 6))) * np.array([1, 1, 1, 1, 0.05, 0.05]))
    bank = QueryBank(images, texts, k=10, beta=0.5)
    own = np.sort(images @ texts.T, axis=1)[:, -10:].mean(axis=1)
    assert bank.photo_floor == pytest.approx(float(np.percentile(own, 10)), abs=1e-5)
    outlier = _unit(np.array([[0, 0, 0, 0, 1, 0.2]], np.float32))  # a microscope slide among holidays
    assert bank.photo_offsets(outlier)[0] == pytest.approx(0.5 * bank.photo_floor, abs=1e-6)
    typical = images[:20]
    assert np.all(bank.photo_offsets(typical) >= 0.5 * bank.photo_floor - 1e-6)
    restored = QueryBank(images, texts, bank.settings().k, bank.settings().beta)
    assert restored.settings() == bank.settings()  # floors are a function of the bank, and travel with it


def test_a_hub_photo_loses_the_first_place_it_had_not_earned() -> None:
    """Photo 2 sits near every caption: by cosine it beats photo 0 for caption 0; with offsets from a
    bank of typical captions it no longer does, and the other captions keep their photos."""
    photos = _unit(np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0.6, 0.6, 0.6, 0.2]], np.float32))
    captions = _unit(np.array([[0.8, 0.05, 0.58, 0], [0.1, 1, 0, 0], [0.5, 0.5, 0.7, 0.1]], np.float32))
    owners = np.array([0, 1, 2])
    assert (captions @ photos.T)[0].argmax() == 2  # the hub wins caption 0 by cosine
    rng = np.random.default_rng(1)
    bank_texts = _unit(np.abs(rng.normal(size=(200, 4))) * np.array([1, 1, 1, 0.3]))  # typical queries
    bank = QueryBank(photos, bank_texts, k=20, beta=1.0)
    offsets = bank.photo_offsets(photos)
    assert offsets[2] > offsets[0] and offsets[2] > offsets[1]
    plain = retrieval_report(photos, captions, owners)
    normalised = retrieval_report(photos, captions, owners, image_offsets=offsets)
    assert plain.t2i_r1 == pytest.approx(200 / 3) and normalised.t2i_r1 == 100.0


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A copy of the shipped joint-frozen checkpoint, calibrated on a small captioned set."""
    base = tmp_path_factory.mktemp("calibrate")
    data = captioned_subset(base / "data", train=20, val=8)
    original = find_checkpoint("joint-frozen", load_joint_config("joint-frozen"))
    path = base / "frozen.safetensors"
    shutil.copy(original, path)
    calibrate_checkpoint(
        path,
        data,
        test_time=ServingConfig(image_size=256, hflip=True),
        bank_options=QueryBankConfig(photos=16, captions=40, k=5, beta=0.5),
        device="cpu",
    )
    return path, original, data


@pytest.mark.slow
def test_calibrated_checkpoint_carries_its_bank_and_test_time(calibrated: tuple[Path, Path, Path]) -> None:
    path, original, data = calibrated
    encoder = create_encoder(str(path), device="cpu")
    plain = create_encoder(str(original), device="cpu")
    assert encoder.preprocess.image_size == 256 and plain.preprocess.image_size == 224
    assert encoder.key != plain.key  # other photo vectors: indexes of the old file are not reused
    bank = encoder.query_bank
    assert bank is not None and plain.query_bank is None
    assert bank.images.shape == (16, encoder.dim) and bank.texts.shape == (40, encoder.dim)
    assert (bank.k, bank.beta) == (5, 0.5)
    from models.checkpoint import read_checkpoint_config

    stored = read_checkpoint_config(path).query_bank  # floors are written with the bank, not recomputed
    assert stored is not None and stored.caption_floor is not None
    assert stored.photo_floor == pytest.approx(bank.photo_floor) and -1 < stored.caption_floor < 1
    assert np.linalg.norm(bank.images, axis=1) == pytest.approx(np.ones(16), abs=2e-3)  # float16 in the file
    photo = Image.open(SHARED / shared_rows("val", 1)[0]["image"]).convert("RGB")
    both = encoder.encode_images([photo, ImageOps.mirror(photo)])
    assert float(both[0] @ both[1]) == pytest.approx(1.0, abs=1e-4)  # the photo and its mirror, averaged
    unflipped = plain.encode_images([photo, ImageOps.mirror(photo)])
    assert float(unflipped[0] @ unflipped[1]) < 0.999  # which the plain model does not do
    reports = encoder_reports(encoder, data, "val")
    assert set(reports) == {"cosine", "normalised"} and reports["normalised"].images == 8
    assert set(encoder_reports(plain, data, "val")) == {"cosine"}


@pytest.mark.slow
def test_a_bank_can_be_dropped_and_a_bad_checkpoint_is_refused(
    calibrated: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    path, _, data = calibrated
    copy = tmp_path / "copy.safetensors"
    shutil.copy(path, copy)
    assert calibrate_checkpoint(copy, data, bank_options=None, device="cpu") is None
    encoder = create_encoder(str(copy), device="cpu")
    assert encoder.query_bank is None and encoder.preprocess.image_size == 256  # test time kept
    broken = tmp_path / "broken.safetensors"
    shutil.copy(path, broken)
    attach_query_bank(broken, None)
    from models.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(broken)
    named = ckpt.config.replace(query_bank=QueryBankConfig(k=5))
    save_checkpoint(broken, config=named, state_dict=ckpt.state_dict)
    with pytest.raises(ValueError, match="lacks tensors query_bank"):
        create_encoder(str(broken), device="cpu")


@pytest.mark.slow
def test_the_default_way_changes_and_the_bank_is_kept(
    calibrated: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """calibrate --keep-bank with the default-way options: the checkpoint says how it is served by default
    (preset in fp32 and int8, whether the int8 image and text towers are taken on a CPU), its bank
    unchanged and no data needed; a
    change of how photos are embedded, which the bank's photos would no longer match, is refused."""
    from cli.main import app
    from models.checkpoint import read_checkpoint_config
    from models.inference import ServingOptions, load_encoder

    path, _, _ = calibrated
    copy = tmp_path / "copy.safetensors"
    shutil.copy(path, copy)
    before = create_encoder(str(copy), device="cpu")
    runner = CliRunner()
    way = ["--default-preset", "fast", "--default-preset-int8", "balanced", "--fp32-by-default"]
    way += ["--text-int8-by-default"]
    result = runner.invoke(app, ["calibrate", str(copy), "--keep-bank", *way])
    assert result.exit_code == 0, result.output
    stored = read_checkpoint_config(copy).test_time
    assert stored is not None and (stored.image_size, stored.hflip) == (256, True)  # embedding kept
    assert (
        stored.default_preset,
        stored.default_preset_int8,
        stored.int8_by_default,
        stored.text_int8_by_default,
    ) == ("fast", "balanced", False, True)
    after = create_encoder(str(copy), device="cpu")
    assert after.query_bank is not None and before.query_bank is not None
    assert np.array_equal(after.query_bank.images, before.query_bank.images)
    assert np.array_equal(after.query_bank.texts, before.query_bank.texts)
    assert after.weights_key != before.weights_key  # another file: indexes of the old one are not reused
    monkeypatch.setattr("models.onnx_runtime.int8_saturates", lambda: False)  # as on a CPU with VNNI
    served = load_encoder(str(copy), device="cpu", options=ServingOptions(cache_dir=tmp_path / "onnx"))
    assert served.quantize == "text" and served.preset == "fast"  # type: ignore[attr-defined]

    written = copy.read_bytes()
    moved = runner.invoke(app, ["calibrate", str(copy), "--keep-bank", "--image-size", "288"])
    assert moved.exit_code == 2 and "embedded with the checkpoint's image_size" in moved.output
    unknown = runner.invoke(app, ["calibrate", str(copy), "--keep-bank", "--default-preset", "quick"])
    assert unknown.exit_code == 2
    assert (
        "--default-preset: unknown preset 'quick': use one of ['fast', 'balanced', 'best']" in unknown.output
    )
    assert copy.read_bytes() == written  # refused before anything was written


def test_calibrate_command_says_what_is_wrong(tmp_path: Path) -> None:
    from cli.main import app

    runner = CliRunner()
    not_a_checkpoint = tmp_path / "x.safetensors"
    not_a_checkpoint.write_bytes(b"not safetensors")
    result = runner.invoke(app, ["calibrate", str(not_a_checkpoint)])
    assert result.exit_code == 2 and "not a safetensors file" in result.output
    result = runner.invoke(app, ["calibrate", str(tmp_path / "missing.safetensors")])
    assert result.exit_code == 2 and "not found" in result.output
    original = find_checkpoint("joint-frozen", load_joint_config("joint-frozen"))
    copy = tmp_path / "frozen.safetensors"
    shutil.copy(original, copy)
    result = runner.invoke(app, ["calibrate", str(copy), "--image-size", "5"])
    assert result.exit_code == 2 and "--image-size must be 32..1024" in result.output
    assert copy.read_bytes() == original.read_bytes()  # refused before anything was written
    result = runner.invoke(app, ["calibrate", str(copy), "--extra-size", "224", "--extra-size", "4000"])
    assert result.exit_code == 2 and "--extra-size must be 32..1024 pixels; got 4000" in result.output
    assert copy.read_bytes() == original.read_bytes()
    result = runner.invoke(app, ["calibrate", str(copy), "--data", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "captions" in result.output


@pytest.mark.slow
def test_further_resolutions_are_averaged_in_from_the_same_pixels(tmp_path: Path) -> None:
    """calibrate --extra-size: each photo is embedded at the test-time size and at each extra size (made
    from the same pixels), with their mirror images, and the unit vectors averaged; 0 takes them out."""
    import torch

    from cli.main import app

    copy = tmp_path / "frozen.safetensors"
    shutil.copy(find_checkpoint("joint-frozen", load_joint_config("joint-frozen")), copy)
    runner = CliRunner()
    args = ["calibrate", str(copy), "--image-size", "256", "--hflip", "--bank-photos", "0"]
    result = runner.invoke(app, [*args, "--extra-size", "224"])
    assert result.exit_code == 0, result.output
    encoder = create_encoder(str(copy), device="cpu")
    assert encoder.extra_sizes == [224] and encoder.preprocess.image_size == 256  # type: ignore[attr-defined]
    photos = [Image.open(SHARED / row["image"]).convert("RGB") for row in shared_rows("val", 2)]
    got = encoder.encode_images(photos)
    pixels = torch.stack([encoder.preprocess(photo) for photo in photos])
    small = torch.nn.functional.interpolate(pixels, size=(224, 224), mode="bicubic", antialias=True)
    model = encoder.model  # type: ignore[attr-defined]
    with torch.inference_mode():
        views = [pixels, small, pixels.flip(-1), small.flip(-1)]
        want = sum(torch.nn.functional.normalize(model.encode_image(v), dim=-1) for v in views)
    want = torch.nn.functional.normalize(want, dim=-1).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    mirrored = encoder.encode_images([ImageOps.mirror(photos[0])])
    assert float(mirrored[0] @ got[0]) == pytest.approx(1.0, abs=1e-4)
    single = runner.invoke(app, [*args, "--extra-size", "0"])
    assert single.exit_code == 0 and create_encoder(str(copy), device="cpu").extra_sizes == []  # type: ignore[attr-defined]


def test_hub_offsets_migration_upgrades_and_downgrades_keeping_vectors(db_url: str) -> None:
    """0003 adds a nullable hub_offset beside each vector: rows written before it keep their vectors
    and get NULL; a downgrade drops the column and nothing else."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import inspect, text

    from app.storage.db import make_engine
    from app.storage.tables import Base

    def run(action: str, revision: str) -> None:
        run_migration(db_url, action, revision)

    def columns(table: str) -> set[str]:
        engine = make_engine(db_url)
        names = {c["name"] for c in inspect(engine).get_columns(table)}
        engine.dispose()
        return names

    run("upgrade", "0002")
    engine = make_engine(db_url)
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO collections (id, name, root, created_at) VALUES (1, 'c', '/p', '2026-01-01')")
        )
        connection.execute(
            text(
                "INSERT INTO photos (id, collection_id, path, folder, size, mtime_ns, sha256, status,"
                " created_at, updated_at)"
                " VALUES (1, 1, '/p/a.jpg', '', 1, 1, :sha, 'ok', '2026-01-01', '2026-01-01')"
            ),
            {"sha": "a" * 64},
        )
        connection.execute(
            text("INSERT INTO photo_embeddings (photo_id, model_key, vector) VALUES (1, 'm', :v)"),
            {"v": b"\x00" * 16},
        )
    engine.dispose()
    assert "hub_offset" not in columns("photo_embeddings")
    run("upgrade", "head")
    assert "hub_offset" in columns("photo_embeddings") and "hub_offset" in columns("caption_embeddings")
    engine = make_engine(db_url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT vector, hub_offset FROM photo_embeddings")).one() == (
            b"\x00" * 16,
            None,
        )
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert [d for d in differences if "hub_offset" in repr(d)] == []
    run("downgrade", "0002")
    assert "hub_offset" not in columns("photo_embeddings") and "hub_offset" not in columns(
        "caption_embeddings"
    )
    engine = make_engine(db_url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM photo_embeddings")).scalar() == 1
    engine.dispose()


@pytest.mark.slow
def test_indexer_stores_each_vectors_offset_and_search_falls_back_without_one(
    sqlite_settings, encoder, photo_folder: Path
) -> None:
    from sqlalchemy import select, update

    from app.services.search import SearchService
    from app.storage.db import make_engine, session_factory
    from app.storage.repository import from_blobs
    from app.storage.tables import CaptionEmbedding, PhotoEmbedding
    from tests.builders.indexing import run_index

    run_index(sqlite_settings, encoder, photo_folder, captions=photo_folder / "captions.jsonl")
    bank = encoder.query_bank
    assert bank is not None
    sessions = session_factory(make_engine(sqlite_settings.db_url))
    with sessions() as session:
        photos = session.execute(select(PhotoEmbedding.vector, PhotoEmbedding.hub_offset)).all()
        captions = session.execute(select(CaptionEmbedding.vector, CaptionEmbedding.hub_offset)).all()
    assert len(photos) == 12 and len(captions) == 60
    vectors = from_blobs([r[0] for r in photos], encoder.dim)
    assert [r[1] for r in photos] == pytest.approx(bank.photo_offsets(vectors).tolist(), abs=1e-5)
    vectors = from_blobs([r[0] for r in captions], encoder.dim)
    assert [r[1] for r in captions] == pytest.approx(bank.caption_offsets(vectors).tolist(), abs=1e-5)

    service = SearchService(sqlite_settings, encoder, sessions)
    before = [(h.photo.id, h.rank_score) for h in service.search_text("a dog runs", k=12)]
    with sessions.begin() as session:  # rows without a stored offset: computed from their vectors
        session.execute(update(PhotoEmbedding).values(hub_offset=None))
    after = [(h.photo.id, h.rank_score) for h in service.search_text("a dog runs", k=12)]
    assert [i for i, _ in after] == [i for i, _ in before]
    assert [r for _, r in after] == pytest.approx([r for _, r in before], abs=1e-5)
