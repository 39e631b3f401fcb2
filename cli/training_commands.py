"""Commands that write model checkpoints: train and fine-tune models, calibrate trained ones."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from cli.options import CheckpointOption, console, current_settings
from models.errors import InvalidInputError
from models.joint.config import JointConfig, QueryBankConfig, ServingConfig, check_preset
from models.training.data import TrainingSet, training_sets

DataOption = Annotated[
    Path | None,
    typer.Option(help="Folder with captions.jsonl (train + val splits); default: PHOTOSEARCH_TRAIN_DATA."),
]
DataListOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--data",
        help="Folder with captions.jsonl (train + val splits); repeat for several data sets; "
        "default: PHOTOSEARCH_TRAIN_DATA.",
    ),
]
WeightOption = Annotated[
    list[float] | None,
    typer.Option(
        "--weight",
        help="Sampling weight of each --data folder, in order: 1 shows each of its photos once an epoch, "
        "0.5 a fresh half, 2 each twice (default: 1 each).",
    ),
]
DeviceChoice = Annotated[str, typer.Option(help="cpu, cuda or auto.")]
OutOption = Annotated[Path | None, typer.Option(help="Checkpoint to write (.safetensors).")]
ResumeOption = Annotated[
    Path | None, typer.Option(help="Carry on from the .resume.pt written beside --out after each epoch.")
]
InitOption = Annotated[
    Path | None, typer.Option(help="Start from this trained checkpoint of the same model config.")
]
InitTextOption = Annotated[
    Path | None,
    typer.Option(
        help="Start only the text side (tuned text layers, text head, temperature) from this trained "
        "checkpoint with the same text tower; the image side starts from its pretrained tower."
    ),
]
InitImageOption = Annotated[
    Path | None,
    typer.Option(
        help="Start only the image side (tuned image blocks, image head) from this trained checkpoint "
        "with the same image tower; the text side starts from its pretrained tower."
    ),
]
CropSeedOption = Annotated[
    int | None, typer.Option(help="Seed of the random-crop training views (another: unseen crops).")
]
BankDataOption = Annotated[
    Path | None,
    typer.Option(
        help="Captioned photos; the bank comes from the train split (default: PHOTOSEARCH_TRAIN_DATA)."
    ),
]
ServingSizeOption = Annotated[
    int | None, typer.Option(help="Resolution photos are embedded at (default: the checkpoint's).")
]
HflipOption = Annotated[
    bool | None, typer.Option("--hflip/--no-hflip", help="Average each photo with its mirror image.")
]
ExtraSizeOption = Annotated[
    list[int] | None,
    typer.Option(
        "--extra-size",
        help="A further resolution averaged in, made from the --image-size pixels (repeat for more; "
        "0: none; default: the checkpoint's).",
    ),
]
ClipModelOption = Annotated[
    str, typer.Option(help="clip model to start from (name, checkpoint or local-dir:).")
]
MaxTrainOption = Annotated[int | None, typer.Option(help="Use only the first N training photos.")]
MaxValOption = Annotated[int | None, typer.Option(help="Measure on only the first N val photos.")]
BankPhotosOption = Annotated[
    int, typer.Option(help="Photos in the query bank, at most the split's (0: no bank).")
]


def training_data(data: Path | None) -> Path:
    """--data, else the train_data setting; a captioned data set has no default location."""
    if data is not None:
        return data
    if (configured := current_settings().train_data) is not None:
        return configured
    raise InvalidInputError(
        "no training data: give --data FOLDER (a folder with captions.jsonl) or set PHOTOSEARCH_TRAIN_DATA"
    )


def training_data_sets(data: list[Path] | None, weights: list[float] | None = None) -> list[TrainingSet]:
    """The --data folders (else the train_data setting) with their --weight each."""
    return training_sets(data or [training_data(None)], weights)


def train(
    model: Annotated[str, typer.Option(help="Registered model config to train.")] = "joint-default",
    data: DataListOption = None,
    weight: WeightOption = None,
    out: OutOption = None,
    epochs: Annotated[int | None, typer.Option(help="Override the config's epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Override the config's batch size.")] = None,
    lr: Annotated[float | None, typer.Option(help="Override the learning rate.")] = None,
    loss: Annotated[str | None, typer.Option(help="infonce | vse_hardest | triplet_shifted | cosine")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    device: DeviceChoice = "auto",
    resume: ResumeOption = None,
    init: InitOption = None,
    init_text: InitTextOption = None,
    init_image: InitImageOption = None,
    image_size: Annotated[int | None, typer.Option(help="Override the training resolution.")] = None,
    crop_seed: CropSeedOption = None,
    hard_negatives: Annotated[
        float | None,
        typer.Option(help="How much more near-miss negatives weigh in InfoNCE, 0-10 (0: plain InfoNCE)."),
    ] = None,
    token_dropout: Annotated[
        float | None,
        typer.Option(help="Caption augmentation: chance each caption word is left out of a step, 0-0.5."),
    ] = None,
    view: Annotated[
        list[str] | None,
        typer.Option(
            help="A cached training view, repeat for several: original, hflip, crop1, crop2, crop3."
        ),
    ] = None,
    teacher: Annotated[
        list[Path] | None,
        typer.Option(
            help="A trained joint checkpoint whose rankings the model learns as well as the pairs; repeat "
            "for several (their mean similarity is the target). Needs --distill."
        ),
    ] = None,
    distill: Annotated[
        float, typer.Option(help="The teachers' share of the loss, 0 to under 1 (0: no teachers).")
    ] = 0.0,
) -> None:
    """Train a joint model on captioned photos (one or several data sets, each val set measured on its
    own); writes a checkpoint, its curves PNG and val figures."""
    from models.registry import load_joint_config
    from models.runtime import resolve_device
    from models.training.options import TrainOptions
    from models.training.train import train_joint

    settings = current_settings()
    sets = training_data_sets(data, weight)
    config = load_joint_config(model)
    if image_size is not None:
        config = config.replace(preprocess=config.preprocess.replace(image_size=image_size))
    config = with_train_settings(config, view, hard_negatives=hard_negatives, token_dropout=token_dropout)
    overrides = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "loss": loss, "crop_seed": crop_seed}
    opts = TrainOptions.from_config(
        config,
        seed=seed,
        device=str(resolve_device(device)),
        cache_dir=settings.data_dir / "cache",
        init=init,
        init_text=init_text,
        init_image=init_image,
        teachers=tuple(teacher or ()),
        distill=distill,
        **overrides,
    )
    result = train_joint(
        config, sets, out or settings.data_dir / "checkpoints" / f"{model}.safetensors", opts, resume=resume
    )
    console.print(result.report.markdown(f"{model} (epoch {result.best_epoch})"))
    print_written(result.checkpoint, result.seconds)


VIEW_NAMES = "original, hflip, crop1, crop2, crop3"


def with_train_settings(
    config: JointConfig, views: Sequence[str] | None = None, **settings: float | None
) -> JointConfig:
    """The config's "train" section with the given cached views and settings on top (None or empty: left
    as it is); a value out of range is an input error naming the option, an unknown view names the views
    there are."""
    from pydantic import ValidationError

    given: dict[str, object] = {name: value for name, value in settings.items() if value is not None}
    if views:
        given["views"] = tuple(views)
    if not given:
        return config
    try:
        train = config.train.model_validate({**config.train.model_dump(), **given})
    except ValidationError as exc:
        field = str(exc.errors()[0]["loc"][0])
        if field == "views":
            named = ", ".join(views or ())
            raise InvalidInputError(f"--view must be one of {VIEW_NAMES}; got {named}") from exc
        raise InvalidInputError(f"--{field.replace('_', '-')}: {exc.errors()[0]['msg']}") from exc
    return config.replace(train=train)


def print_written(checkpoint: Path, seconds: float, *, hint: bool = False) -> None:
    """Where a training command wrote its checkpoint and curves, and how long it took."""
    line = f"checkpoint: {checkpoint}  curves: {checkpoint.with_suffix('.png')}  time: {seconds:.0f} s"
    console.print(line + (f"\nuse it: photosearch index PATH --model {checkpoint}" if hint else ""))


@dataclass(frozen=True)
class DefaultWay:
    """How a checkpoint is served when the settings name no preset or precision (None: as stored)."""

    preset: str | None = None
    preset_int8: str | None = None
    int8_by_default: bool | None = None
    text_int8_by_default: bool | None = None

    def __post_init__(self) -> None:
        check_preset(self.preset, "--default-preset")
        check_preset(self.preset_int8, "--default-preset-int8")


def serving_settings(
    stored: ServingConfig | None,
    image_size: int | None,
    hflip: bool | None,
    extra_size: list[int] | None,
    default_way: DefaultWay | None = None,
) -> ServingConfig:
    """The checkpoint's test-time settings with the options given on top (--extra-size 0 alone: none)."""
    extras = [size for size in extra_size or [] if size]
    for option, sizes in (("--image-size", [image_size]), ("--extra-size", extras)):
        if bad := [size for size in sizes if size is not None and not 32 <= size <= 1024]:
            raise InvalidInputError(f"{option} must be 32..1024 pixels; got {bad[0]}")
    way = default_way or DefaultWay()
    changes: dict[str, object] = {
        "image_size": image_size,
        "hflip": hflip,
        "default_preset": way.preset,
        "default_preset_int8": way.preset_int8,
        "int8_by_default": way.int8_by_default,
        "text_int8_by_default": way.text_int8_by_default,
    }
    if extra_size is not None:  # replaces the checkpoint's
        changes["extra_sizes"] = tuple(extras)
    given = {key: value for key, value in changes.items() if value is not None}
    return (stored or ServingConfig()).replace(**given)


def calibrate_command(
    checkpoint: Annotated[Path, typer.Argument(help="A trained joint checkpoint (.safetensors), rewritten.")],
    data: BankDataOption = None,
    image_size: ServingSizeOption = None,
    hflip: HflipOption = None,
    extra_size: ExtraSizeOption = None,
    bank_photos: BankPhotosOption = 2000,
    bank_captions: Annotated[
        int, typer.Option(help="Captions in the query bank, at most the split's.")
    ] = 5000,
    k: Annotated[int, typer.Option(help="Nearest bank entries averaged into a hit's offset.")] = 50,
    beta: Annotated[float, typer.Option(help="Weight of the offset.")] = 0.5,
    keep_bank: Annotated[
        bool,
        typer.Option(
            "--keep-bank",
            help="Keep the checkpoint's query bank as it is (photos embedded as before; no --data needed).",
        ),
    ] = False,
    default_preset: Annotated[
        str | None,
        typer.Option(help="Preset served when none is asked for, fp32 towers (fast, balanced, best)."),
    ] = None,
    default_preset_int8: Annotated[
        str | None,
        typer.Option(help="Preset served when none is asked for, int8 image tower."),
    ] = None,
    int8_by_default: Annotated[
        bool | None,
        typer.Option(
            "--int8-by-default/--fp32-by-default",
            help="Whether quantize auto takes the calibrated int8 image tower on a CPU.",
        ),
    ] = None,
    text_int8_by_default: Annotated[
        bool | None,
        typer.Option(
            "--text-int8-by-default/--text-fp32-by-default",
            help="Whether quantize auto takes the int8 text tower too on a CPU with VNNI.",
        ),
    ] = None,
    device: DeviceChoice = "auto",
) -> None:
    """Set how a trained checkpoint embeds photos (resolution, mirror averaging, the way it is served by
    default) and give it a query bank against hubness; `photosearch train` does this itself when the
    model config asks for it."""
    from models.checkpoint import read_checkpoint_config
    from models.training.calibrate import calibrate_checkpoint

    stored = read_checkpoint_config(checkpoint)  # CheckpointError: one line and exit 2 in cli.main
    serving = serving_settings(
        stored.test_time if isinstance(stored, JointConfig) else None,
        image_size,
        hflip,
        extra_size,
        DefaultWay(default_preset, default_preset_int8, int8_by_default, text_int8_by_default),
    )
    wants_bank = bank_photos and not keep_bank
    bank = QueryBankConfig(photos=bank_photos, captions=bank_captions, k=k, beta=beta) if wants_bank else None
    folder = training_data(data) if bank is not None else Path()  # only a new bank needs data
    try:
        built = calibrate_checkpoint(
            checkpoint, folder, test_time=serving, bank_options=bank, keep_bank=keep_bank, device=device
        )
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from exc
    described = "no query bank" if built is None else f"query bank {built.settings().to_json()}"
    console.print(f"{checkpoint}: test time {serving.to_json()}, {described}")


def train_reranker(
    model: Annotated[
        str,
        typer.Argument(help="A registered joint model or its checkpoint file (.safetensors), kept as is."),
    ],
    out: Annotated[Path, typer.Option(help="Checkpoint to write: the same model with the re-ranker.")],
    data: DataListOption = None,
    weight: WeightOption = None,
    photos: Annotated[int, typer.Option(min=2, help="Train photos, spread over the sets by weight.")] = 4000,
    captions: Annotated[int, typer.Option(min=1, help="Captions an epoch.")] = 8000,
    epochs: Annotated[int, typer.Option(min=1, help="Passes of --captions captions.")] = 3,
    top_n: Annotated[int, typer.Option(min=2, help="Candidates re-ranked per query.")] = 20,
    negatives: Annotated[int, typer.Option(min=1, help="Wrong candidates beside the true photo a step.")] = 7,
    residual: Annotated[
        bool, typer.Option("--residual/--no-residual", help="Learn a correction to the dual encoder's score.")
    ] = True,
    gate: Annotated[
        bool,
        typer.Option(
            "--gate/--no-gate",
            help="Scale a residual re-ranker's logit by a learned gate from zero (untrained: no change).",
        ),
    ] = True,
    holdout: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=0.9,
            help="Share of the train photos held out of training to choose the epoch by (0: keep the last).",
        ),
    ] = 0.1,
    lr: Annotated[float, typer.Option(min=0.0, help="Learning rate (AdamW).")] = 3e-4,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    device: DeviceChoice = "auto",
) -> None:
    """Give a trained joint model a cross-attention re-ranker (caption tokens over each photo's patch
    grid), trained over the model's own top candidates, their wrong photos the hard negatives; each val
    set is measured without and with it."""
    from models.joint.config import RerankerConfig
    from models.registry import checkpoint_file
    from models.runtime import resolve_device
    from models.training.options import TrainOptions
    from models.training.plots import plot_reranker_curves
    from models.training.reranker_train import rerank_checkpoint

    checkpoint = checkpoint_file(model, current_settings().checkpoint_dirs)
    if out.resolve() == checkpoint.resolve():
        raise InvalidInputError("--out must be another file: the checkpoint given stays as it is")
    sets = training_data_sets(data, weight)
    spec = RerankerConfig(
        top_n=top_n,
        negatives=min(negatives, top_n),
        train_photos=photos,
        captions_per_epoch=captions,
        epochs=epochs,
        lr=lr,
        residual=residual,
        gate=gate and residual,
        holdout=holdout,
    )
    opts = TrainOptions(seed=seed, device=str(resolve_device(device)), workers=min(os.cpu_count() or 1, 4))
    started = time.perf_counter()
    info = rerank_checkpoint(checkpoint, sets, out, spec, opts)
    plot_reranker_curves(info, out.with_suffix(".png"), title=f"re-ranker over {model}")
    for name, without in info["val_without"].items():
        with_ = info["val_with"][name]
        console.print(f"{name} val: text→photo R@1 {without['t2i_r1']:.1f} → {with_['t2i_r1']:.1f} re-ranked")
    if "held_out_r1" in info:
        curve = " → ".join(f"{r:.1f}" for r in info["held_out_r1"])
        held, dual, kept = info["held_out_photos"], info["held_out_dual_r1"], info["kept_epoch"]
        console.print(
            f"held-out train photos ({held}): text→photo R@1 {dual:.1f} without, {curve} re-ranked "
            f"before training and after each epoch; kept epoch {kept}"
        )
    print_written(out, time.perf_counter() - started, hint=True)


def finetune(
    model: ClipModelOption = "clip-vit-h-14",
    data: DataOption = None,
    checkpoint: CheckpointOption = None,
    out: OutOption = None,
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
    max_train_photos: MaxTrainOption = None,
    max_val_photos: MaxValOption = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Fine-tune a clip model with the CLIP contrastive loss; writes the best epoch's checkpoint.

    Several GPUs: torchrun --nproc_per_node=N -m cli.main finetune ...
    """
    from models.training.finetune import finetune as run_finetune
    from models.training.finetune_steps import FinetuneOptions

    options = FinetuneOptions(
        epochs=epochs, batch_size=batch_size, accum_steps=accum_steps, lr=lr, weight_decay=weight_decay,
        warmup_steps=warmup_steps, lock_image=lock_image, lock_text=lock_text,
        grad_checkpointing=grad_checkpointing, device=device, workers=workers, seed=seed,
        max_train_photos=max_train_photos, max_val_photos=max_val_photos,
    )  # fmt: skip
    settings = current_settings()
    target = out or finetuned_path(model, settings.data_dir)
    result = run_finetune(model, training_data(data), target, options, checkpoint, settings.checkpoint_dirs)
    if os.environ.get("RANK", "0") == "0":  # torchrun: the first process speaks for all
        if result.report is not None:
            console.print(result.report.markdown(f"{target.stem} (epoch {result.best_epoch})"))
        print_written(result.checkpoint, result.seconds, hint=True)


def finetuned_path(model: str, data_dir: Path) -> Path:
    """Where a fine-tuned model goes by default: data/checkpoints/<what it started from>-finetuned."""
    stem = Path(model).stem if model.endswith(".safetensors") else model.replace("local-dir:", "").strip("/")
    return data_dir / "checkpoints" / f"{Path(stem).name}-finetuned.safetensors"


def average(
    checkpoints: Annotated[
        list[Path],
        typer.Argument(
            help="Two or more checkpoints of one joint model config, fine-tuned from a common start."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Checkpoint to write: the averaged weights.")],
    data: DataListOption = None,
    share: Annotated[
        list[float] | None,
        typer.Option("--share", help="Each checkpoint's share of the average, in order (default: equal)."),
    ] = None,
    device: DeviceChoice = "auto",
) -> None:
    """Average checkpoints tensor by tensor into one model (weight averaging): the first one's
    test-time settings, a query bank built again from the data's train splits and its caption bank."""
    from models.training.average import average_checkpoints

    for path in checkpoints:
        if not path.is_file():
            raise InvalidInputError(f"checkpoint file not found: {path}")
    average_checkpoints(checkpoints, out, training_data_sets(data), share, device)
    console.print(f"{out}: the average of {len(checkpoints)} checkpoints", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(average)
    app.command()(train)
    app.command("calibrate")(calibrate_command)
    app.command()(finetune)
    app.command("train-reranker")(train_reranker)
