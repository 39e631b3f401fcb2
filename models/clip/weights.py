"""Where CLIP weights come from. Nothing is ever downloaded: only files already on this machine.

How a user points at weights, first match wins:

1. An explicit location: `--checkpoint LOCATION` on the CLI, `PHOTOSEARCH_CHECKPOINT=LOCATION` for the
   service and indexer, or `--model local-dir:/folder` / `PHOTOSEARCH_MODEL=local-dir:/folder`
   (no registered config needed then). LOCATION is one of
   - an open_clip weights file (`.safetensors`, `.bin`, `.pt`, `.pth`) for the model's architecture,
   - a photosearch checkpoint (what `photosearch finetune` writes), or
   - `local-dir:/folder` (or a plain folder) holding `open_clip_config.json` and the weights, the layout
     open_clip's `create_model("local-dir:...")` reads and `hf download <repo> --local-dir` writes.
2. In each checkpoint folder the caller passes (the `checkpoint_dir` setting, `$PHOTOSEARCH_CHECKPOINT_DIR`),
   then `models/checkpoints/`:
   `<model name>/` as a local-dir folder, or a file `<model name>.safetensors|.bin|.pt|.pth`.
3. The Hugging Face cache, read from disk only (whatever `HF_HUB_OFFLINE` says):
   `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`, holding
   `models--<org>--<repo>/snapshots/<revision>/open_clip_model.safetensors` (or
   `open_clip_pytorch_model.bin`) for the repo of the config's pretrained tag.

Models whose text tower is a Hugging Face transformer (the multilingual xlm-roberta one) also need
that transformer's `config.json` and tokenizer files: a folder `<checkpoint folder>/<hf name>/`, the
local-dir folder itself, or the Hugging Face cache of that repo.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.checkpoint import checkpoint_digest
from models.clip.config import ClipConfig
from models.errors import ModelNotFoundError

LOCAL_DIR_PREFIX = "local-dir:"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
# open_clip's own preference inside a local-dir folder (factory._find_checkpoint_in_dir)
LOCAL_DIR_WEIGHTS = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
    "model.safetensors",
    "pytorch_model.bin",
    "pytorch_model.pth",
    "model.pth",
)
# In a Hub repo, model.safetensors / pytorch_model.bin are the transformers-format copy: not ours.
HUB_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
HF_TEXT_FILES = ("config.json",)


class ClipWeightsNotFoundError(ModelNotFoundError):
    """No weights on this machine; the message lists where we looked and how to put them there."""


@dataclass(frozen=True)
class ClipWeights:
    source: str  # "file" | "local-dir" | "hf-cache"
    path: Path  # the weights file itself
    digest: str  # sha256 of the weights file
    model_cfg: dict[str, Any] | None = None  # from open_clip_config.json, when the source has one
    preprocess_cfg: dict[str, Any] = field(default_factory=dict)
    folder: Path | None = None  # local-dir folder (may hold the HF text tower's files)


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment at call time (tests may change it)."""
    if explicit := os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(explicit).expanduser()
    if home := os.environ.get("HF_HOME"):
        return Path(home).expanduser() / "hub"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return base / "huggingface" / "hub"


def hub_repo_folder(repo_id: str) -> Path:
    return hub_cache_dir() / ("models--" + repo_id.replace("/", "--"))


def find_in_hub_cache(repo_id: str, filenames: tuple[str, ...]) -> Path | None:
    """The first of `filenames` in the cached snapshot of `refs/main`, else in the newest snapshot."""
    folder = hub_repo_folder(repo_id)
    snapshots = folder / "snapshots"
    if not snapshots.is_dir():
        return None
    revisions = []
    ref = folder / "refs" / "main"
    if ref.is_file():
        revisions.append(ref.read_text().strip())
    others = sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    revisions.extend(p.name for p in others if p.name not in revisions)
    for revision in revisions:
        for name in filenames:
            candidate = snapshots / revision / name
            if candidate.is_file():
                return candidate
    return None


def weights_digest(path: Path) -> str:
    """sha256 of a weights file; a Hub cache blob is already named by it, so no re-hashing."""
    resolved = path.resolve()
    if resolved.parent.name == "blobs" and re.fullmatch(r"[0-9a-f]{64}", resolved.name):
        return resolved.name
    return checkpoint_digest(resolved)


def parse_local_dir(location: str | Path) -> Path | None:
    """`local-dir:/x` or an existing folder → the folder; anything else → None."""
    text = str(location)
    if text.startswith(LOCAL_DIR_PREFIX):
        return Path(text[len(LOCAL_DIR_PREFIX) :]).expanduser()
    path = Path(text).expanduser()
    return path if path.is_dir() else None


def read_local_dir(folder: Path) -> ClipWeights:
    """A folder with open_clip_config.json (model_cfg + preprocess_cfg) and a weights file."""
    config_path = folder / "open_clip_config.json"
    if not folder.is_dir() or not config_path.is_file():
        raise ClipWeightsNotFoundError(
            f"local-dir folder {folder} needs open_clip_config.json and a weights file "
            f"(one of {', '.join(LOCAL_DIR_WEIGHTS[:3])}); found "
            f"{'no folder' if not folder.is_dir() else sorted(p.name for p in folder.iterdir())}. "
            f"{download_hint_for_folder(folder)}"
        )
    try:
        data = json.loads(config_path.read_text())
        model_cfg = dict(data["model_cfg"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ClipWeightsNotFoundError(
            f"{config_path} is not an open_clip config: it needs a 'model_cfg' object ({exc})"
        ) from exc
    weights = next((folder / n for n in LOCAL_DIR_WEIGHTS if (folder / n).is_file()), None)
    if weights is None:
        weights = next((p for p in sorted(folder.iterdir()) if p.suffix in WEIGHT_SUFFIXES), None)
    if weights is None:
        raise ClipWeightsNotFoundError(
            f"local-dir folder {folder} has open_clip_config.json but no weights file "
            f"(expected {LOCAL_DIR_WEIGHTS[0]} or {LOCAL_DIR_WEIGHTS[2]})"
        )
    return ClipWeights(
        "local-dir", weights, weights_digest(weights), model_cfg, dict(data.get("preprocess_cfg", {})), folder
    )


def read_weights_file(path: Path) -> ClipWeights:
    if not path.is_file():
        raise ClipWeightsNotFoundError(
            f"CLIP weights file not found: {path} (expected an open_clip .safetensors/.bin/.pt file, "
            f"a photosearch checkpoint, or local-dir:/folder)"
        )
    return ClipWeights("file", path, weights_digest(path))


def hub_source_for(config: ClipConfig) -> tuple[str, tuple[str, ...]] | None:
    """(Hub repo, weight file names) of the config's pretrained tag: explicit `hf_repo`, else open_clip's
    table of tags (whose `hf_hub` is 'org/repo/' or 'org/repo/file')."""
    if repo := config.hf_repo:
        return repo, HUB_WEIGHTS
    arch, tag = config.architecture, config.pretrained
    if not arch or not tag:
        return None
    import open_clip

    hub = str(open_clip.get_pretrained_cfg(arch, tag).get("hf_hub", ""))
    if not hub:
        return None
    repo, filename = os.path.split(hub)
    return repo, (filename,) if filename else HUB_WEIGHTS


def candidate_files(name: str, search_dirs: Sequence[Path]) -> list[Path]:
    """Folders and files looked at for a registered model, in order."""
    looked: list[Path] = []
    for folder in search_dirs:
        looked.append(folder / name)
        looked.extend(folder / f"{name}{suffix}" for suffix in WEIGHT_SUFFIXES)
    return looked


def locate_weights(config: ClipConfig, search_dirs: Sequence[Path]) -> ClipWeights:
    """Search checkpoint folders, then the Hub cache, for a registered config's weights."""
    name = str(config.name)
    for candidate in candidate_files(name, search_dirs):
        if candidate.is_dir():
            return read_local_dir(candidate)
        if candidate.is_file():
            return read_weights_file(candidate)
    hub = hub_source_for(config)
    if hub and (found := find_in_hub_cache(*hub)):
        return ClipWeights("hf-cache", found, weights_digest(found))
    raise ClipWeightsNotFoundError(missing_weights_message(config, hub, search_dirs))


def missing_weights_message(
    config: ClipConfig, hub: tuple[str, tuple[str, ...]] | None, dirs: Sequence[Path]
) -> str:
    name = str(config.name)
    repo, files = hub if hub else (None, HUB_WEIGHTS)
    what = f"open_clip {config.architecture or '?'}, pretrained {config.pretrained or '?'!r}"
    lines = [f"No weights on this machine for clip model {name!r} ({what}). Looked for:"]
    for folder in dirs:
        lines.append(f"  - {folder / name}/  (open_clip_config.json + {HUB_WEIGHTS[0]}, a local-dir folder)")
        lines.append(f"  - {folder / name}{{{','.join(WEIGHT_SUFFIXES)}}}  (a weights file)")
    if repo:
        lines.append(
            f"  - {hub_repo_folder(repo)}/snapshots/<revision>/{' or '.join(files)}"
            "  (the Hugging Face cache: HF_HUB_CACHE, else HF_HOME/hub)"
        )
    lines.append("Nothing is downloaded at run time. On a machine with internet run")
    if repo:
        lines.append(f"  hf download {repo} --include 'open_clip_*' --local-dir {name}")
    lines.append(
        f"then copy the folder to {_first_folder(dirs) / name}/ or point at it with "
        f"PHOTOSEARCH_CHECKPOINT=local-dir:/path/to/{name} (CLI: --checkpoint local-dir:/path/to/{name}); "
        "or copy that machine's Hugging Face cache folder for the repo into this machine's cache."
    )
    if text_model := _hf_text_model_of(config):
        lines.append(
            f"Its text tower also needs {text_model}'s config.json and tokenizer: "
            f"hf download {text_model} --include '*.json' 'sentencepiece.bpe.model' "
            f"--local-dir {text_model}, "
            f"copied to {_first_folder(dirs) / text_model}/."
        )
    return "\n".join(lines)


def _hf_text_model_of(config: ClipConfig) -> str | None:
    from models.clip.factory import architecture_config, hf_text_name

    try:
        return hf_text_name(architecture_config(config))
    except ModelNotFoundError:
        return None


def _first_folder(search_dirs: Sequence[Path]) -> Path:
    """Where a user should put files: the first checkpoint folder searched."""
    return search_dirs[0] if search_dirs else Path("<checkpoint folder>")


def download_hint_for_folder(folder: Path) -> str:
    return (
        "Create it on a machine with internet with "
        f"`hf download <org>/<repo> --include 'open_clip_*' --local-dir {folder.name}` and copy it here."
    )


def locate_hf_text_dir(hf_name: str, local_dir: Path | None, search_dirs: Sequence[Path]) -> Path:
    """The folder with a Hugging Face text tower's config.json + tokenizer files (never downloaded)."""
    short = hf_name.rsplit("/", 1)[-1]
    looked: list[Path] = []
    candidates = [folder / short for folder in search_dirs]
    if local_dir is not None:
        candidates = [local_dir / short, local_dir, *candidates]
    for candidate in candidates:
        looked.append(candidate / "config.json")
        if (candidate / "config.json").is_file() and _has_tokenizer(candidate):
            return candidate
    repos = [hf_name] if "/" in hf_name else [hf_name, f"FacebookAI/{hf_name}", f"google-bert/{hf_name}"]
    for repo in repos:
        found = find_in_hub_cache(repo, HF_TEXT_FILES)
        looked.append(hub_repo_folder(repo) / "snapshots/<revision>/config.json")
        if found is not None and _has_tokenizer(found.parent):
            return found.parent
    raise ClipWeightsNotFoundError(
        f"The text tower {hf_name!r} (a Hugging Face transformer) needs its config.json and tokenizer "
        f"files on this machine; looked for: {[str(p) for p in looked]}. On a machine with internet run "
        f"`hf download {hf_name} --include '*.json' 'sentencepiece.bpe.model' --local-dir {short}` "
        "and copy the folder to "
        f"{_first_folder(search_dirs) / short}/, or copy that repo's Hugging Face cache folder here."
    )


def _has_tokenizer(folder: Path) -> bool:
    names = ("tokenizer.json", "tokenizer_config.json", "sentencepiece.bpe.model", "vocab.txt")
    return any((folder / n).is_file() for n in names)
