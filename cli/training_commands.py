"""Train, calibrate, evaluate and fine-tune models, and draw their embedding maps."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from cli.options import CheckpointOption, console
from models.encoder import Encoder
from models.errors import InvalidInputError
from models.joint.config import JointConfig, QueryBankConfig, ServingConfig


def train(
    model: Annotated[str, typer.Option(help="Registered model config to train.")] = "joint-default",
    data: Annotated[Path, typer.Option(help="Folder with captions.jsonl (train + val splits).")] = Path(
        "../shared/data/flickr8k"
    ),
    out: Annotated[Path | None, typer.Option(help="Checkpoint to write (.safetensors).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Override the config's epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Override the config's batch size.")] = None,
    lr: Annotated[float | None, typer.Option(help="Override the learning rate.")] = None,
    loss: Annotated[str | None, typer.Option(help="infonce | vse_hardest | triplet_shifted | cosine")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
    resume: Annotated[
        Path | None, typer.Option(help="Carry on from the .resume.pt written beside --out after each epoch.")
    ] = None,
    init: Annotated[
        Path | None, typer.Option(help="Start from this trained checkpoint of the same model config.")
    ] = None,
    image_size: Annotated[int | None, typer.Option(help="Override the training resolution.")] = None,
    crop_seed: Annotated[
        int | None, typer.Option(help="Seed of the random-crop training views (another: unseen crops).")
    ] = None,
) -> None:
    """Train a joint model on captioned photos; writes a checkpoint, its curves PNG and val figures."""
    from app.core.config import get_settings
    from models.registry import load_joint_config
    from models.runtime import resolve_device
    from models.training.train import TrainOptions, train_joint

    settings = get_settings()
    config = load_joint_config(model)
    if image_size is not None:
        config = config.replace(preprocess=config.preprocess.model_copy(update={"image_size": image_size}))
    opts = TrainOptions.from_config(
        config,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        loss=loss,
        seed=seed,
        device=str(resolve_device(device)),
        cache_dir=settings.data_dir / "cache",
        init=init,
        crop_seed=crop_seed,
    )
    target = out or settings.data_dir / "checkpoints" / f"{model}.safetensors"
    result = train_joint(config, data, target, opts, resume=resume)
    console.print(result.report.markdown(f"{model} (epoch {result.best_epoch})"))
    console.print(
        f"checkpoint: {result.checkpoint}  curves: {result.checkpoint.with_suffix('.png')}  "
        f"time: {result.seconds:.0f} s"
    )


def evaluate(
    model: Annotated[str, typer.Option(help="Model name or checkpoint path.")] = "joint-default",
    data: Annotated[Path, typer.Option(help="Folder with captions.jsonl.")] = Path("../shared/data/flickr8k"),
    split: Annotated[str, typer.Option(help="Split to measure (the whole split is the gallery).")] = "val",
    report: Annotated[Path | None, typer.Option(help="Write JSON here (and .md beside it).")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
) -> None:
    """R@1/5/10 and median rank, text→image and image→text, over a whole split."""
    from models.registry import create_encoder
    from models.training.evaluate import encoder_reports

    encoder = create_encoder(model, device=device)
    reports = encoder_reports(encoder, data, split)
    result = reports.get("normalised", reports["cosine"])  # ranked as the service ranks
    if "normalised" in reports:
        console.print(reports["cosine"].markdown(f"{encoder.key} plain cosine"))
        console.print(result.markdown(f"{encoder.key} with its query bank (as served)"))
        if report:
            reports["cosine"].write(report.with_name(f"{report.stem}-cosine.json"), f"{encoder.key} cosine")
    else:
        console.print(result.markdown(encoder.key))
    if report:
        result.write(report, encoder.key)
        console.print(f"report: {report} and {report.with_suffix('.md')}")

    print_reranked(encoder, data, split, report)


def print_reranked(encoder: Encoder, data: Path, split: str, report: Path | None) -> None:
    """When the served model re-ranks: text→image figures without and with the re-ranker."""
    if encoder.reranker is None:
        return
    from models.training.data import load_captioned_photos
    from models.training.reranker_train import image_grids, reranked_report

    model = encoder.model  # type: ignore[attr-defined]
    photos = load_captioned_photos(data, split)
    grids = image_grids(model, encoder.preprocess, [p.path for p in photos], encoder.device)
    texts = [c for p in photos for c in p.captions]
    owners = [i for i, p in enumerate(photos) for _ in p.captions]
    import numpy as np

    top_n = encoder.reranker.top_n
    plain, reranked = reranked_report(model, grids, texts, np.array(owners), top_n, encoder.device)
    console.print(plain.markdown(f"{encoder.key} dual encoder only"))
    console.print(reranked.markdown(f"{encoder.key} + re-ranker (top {top_n})"))
    if report:
        reranked.write(report.with_name(f"{report.stem}-reranked.json"), f"{encoder.key} + re-ranker")


def calibrate_command(
    checkpoint: Annotated[Path, typer.Argument(help="A trained joint checkpoint (.safetensors), rewritten.")],
    data: Annotated[Path, typer.Option(help="Captioned photos; the bank comes from the train split.")] = Path(
        "../shared/data/flickr8k"
    ),
    image_size: Annotated[
        int | None, typer.Option(help="Resolution photos are embedded at (default: the checkpoint's).")
    ] = None,
    hflip: Annotated[
        bool | None, typer.Option("--hflip/--no-hflip", help="Average each photo with its mirror image.")
    ] = None,
    extra_size: Annotated[
        list[int] | None,
        typer.Option(
            "--extra-size",
            help="A further resolution averaged in, made from the --image-size pixels (repeat for more; "
            "0: none; default: the checkpoint's).",
        ),
    ] = None,
    bank_photos: Annotated[
        int, typer.Option(help="Photos in the query bank, at most the split's (0: no bank).")
    ] = 2000,
    bank_captions: Annotated[
        int, typer.Option(help="Captions in the query bank, at most the split's.")
    ] = 5000,
    k: Annotated[int, typer.Option(help="Nearest bank entries averaged into a hit's offset.")] = 50,
    beta: Annotated[float, typer.Option(help="Weight of the offset.")] = 0.5,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
) -> None:
    """Set how a trained checkpoint embeds photos (resolution, mirror averaging) and give it a query bank
    against hubness; `photosearch train` does this itself when the model config asks for it."""
    from models.checkpoint import read_checkpoint_config
    from models.training.calibrate import calibrate_checkpoint

    stored = read_checkpoint_config(checkpoint)  # CheckpointError: one line and exit 2 in cli.main
    given = stored.test_time if isinstance(stored, JointConfig) else None
    test_time = given.to_json() if given is not None else {}
    extras = [size for size in extra_size or [] if size]
    for option, sizes in (("--image-size", [image_size]), ("--extra-size", extras)):
        if bad := [size for size in sizes if size is not None and not 32 <= size <= 1024]:
            raise InvalidInputError(f"{option} must be 32..1024 pixels; got {bad[0]}")
    if image_size is not None:
        test_time["image_size"] = image_size
    if extra_size is not None:  # replaces the checkpoint's; only 0s: none
        test_time.pop("extra_sizes", None)
        if extras:
            test_time["extra_sizes"] = extras
    if hflip is not None:
        test_time["hflip"] = hflip
    options = (
        QueryBankConfig(photos=bank_photos, captions=bank_captions, k=k, beta=beta) if bank_photos else None
    )
    try:
        serving = ServingConfig.model_validate(test_time)
        bank = calibrate_checkpoint(checkpoint, data, test_time=serving, bank_options=options, device=device)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from exc
    described = "no query bank" if bank is None else f"query bank {bank.settings().to_json()}"
    console.print(f"{checkpoint}: test time {test_time}, {described}")


def embedding_map_command(
    model: Annotated[
        str, typer.Option(help="Model name or checkpoint path (joint family).")
    ] = "joint-default",
    data: Annotated[Path, typer.Option(help="Folder with captions.jsonl.")] = Path("../shared/data/flickr8k"),
    split: Annotated[str, typer.Option(help="Split whose photos are drawn.")] = "val",
    out: Annotated[Path, typer.Option(help="PNG to write.")] = Path("embedding-map.png"),
    count: Annotated[int, typer.Option(help="How many photos (each with its first caption).")] = 150,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
) -> None:
    """t-SNE map of photos and captions, matched pairs joined: untrained beside trained, as a PNG."""
    from models.registry import create_encoder
    from models.training.embedding_map import embedding_map

    try:
        written = embedding_map(create_encoder(model, device=device), data, out, split=split, count=count)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from exc
    console.print(f"embedding map: {written}")


def finetune(
    model: Annotated[str, typer.Option(help="clip model to start from (name, checkpoint or local-dir:).")] = (
        "clip-vit-h-14"
    ),
    data: Annotated[Path, typer.Option(help="Folder with captions.jsonl (train + val splits).")] = Path(
        "../shared/data/flickr8k"
    ),
    checkpoint: CheckpointOption = None,
    out: Annotated[Path | None, typer.Option(help="Checkpoint to write (.safetensors).")] = None,
    epochs: Annotated[int, typer.Option(help="Passes over the training photos.")] = 5,
    batch_size: Annotated[int, typer.Option(help="Photos per micro-batch and process.")] = 64,
    accum_steps: Annotated[int, typer.Option(help="Micro-batches per optimiser step.")] = 1,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW).")] = 1e-5,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay.")] = 0.1,
    warmup_steps: Annotated[int, typer.Option(help="Linear warmup steps before the cosine decay.")] = 100,
    lock_image: Annotated[bool, typer.Option(help="Freeze the image tower.")] = False,
    lock_text: Annotated[bool, typer.Option(help="Freeze the text tower.")] = False,
    grad_checkpointing: Annotated[bool, typer.Option(help="Trade compute for memory.")] = False,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto (torchrun: one GPU per process).")] = "auto",
    workers: Annotated[int, typer.Option(help="Photo decoding workers per process.")] = 4,
    max_train_photos: Annotated[
        int | None, typer.Option(help="Use only the first N training photos.")
    ] = None,
    max_val_photos: Annotated[
        int | None, typer.Option(help="Measure on only the first N val photos.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Fine-tune a clip model with the CLIP contrastive loss; writes the best epoch's checkpoint.

    Several GPUs: torchrun --nproc_per_node=N -m cli.main finetune ...
    """
    from app.core.config import get_settings
    from models.training.finetune import FinetuneOptions
    from models.training.finetune import finetune as run_finetune

    options = FinetuneOptions(
        epochs=epochs,
        batch_size=batch_size,
        accum_steps=accum_steps,
        lr=lr,
        weight_decay=weight_decay,
        warmup_steps=warmup_steps,
        lock_image=lock_image,
        lock_text=lock_text,
        grad_checkpointing=grad_checkpointing,
        device=device,
        workers=workers,
        seed=seed,
        max_train_photos=max_train_photos,
        max_val_photos=max_val_photos,
    )
    stem = Path(model).stem if model.endswith(".safetensors") else model.replace("local-dir:", "").strip("/")
    target = out or get_settings().data_dir / "checkpoints" / f"{Path(stem).name}-finetuned.safetensors"
    result = run_finetune(model, data, target, options, weights=checkpoint)
    if os.environ.get("RANK", "0") != "0":
        return
    if result.report is not None:
        console.print(result.report.markdown(f"{target.stem} (epoch {result.best_epoch})"))
    console.print(
        f"checkpoint: {result.checkpoint}  curves: {target.with_suffix('.png')}  "
        f"time: {result.seconds:.0f} s\nuse it: photosearch index PATH --model {result.checkpoint}"
    )


def register(app: typer.Typer) -> None:
    app.command()(train)
    app.command()(evaluate)
    app.command("calibrate")(calibrate_command)
    app.command("embedding-map")(embedding_map_command)
    app.command()(finetune)
