"""The clip family on the CPU: eager PyTorch against ONNX Runtime (fp32, and the image tower in static
int8), for one architecture, in one process.

No CLIP weights exist on this machine, so the model has random weights, saved as a photosearch
checkpoint and loaded back through the real loading code (as a fine-tuned model would be): speed only,
the arithmetic is the trained model's. Its int8 ranges are measured on real photos with the project's
calibration code, as `photosearch calibrate-int8` does.

    python benchmarks/clip_runtime.py [--model clip-vit-b-32] [--photos 32] [--rounds 3] [--texts 64]

Photos: shared Flickr8k val photos, preprocessed once (decoding excluded); each runtime embeds them in
batches of 32, median over rounds. Text: one caption at a time, p50.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data" / "flickr8k"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="clip-vit-b-32")
    parser.add_argument("--photos", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--texts", type=int, default=64)
    args = parser.parse_args()

    import torch
    from PIL import Image

    from models.clip.encoder import random_clip_encoder
    from models.clip.export import save_clip_checkpoint
    from models.inference import ServingOptions, load_encoder
    from models.int8_calibration import calibrate
    from models.onnx_export import export_folder, tower_graphs
    from models.onnx_runtime import exported
    from models.registry import load_model_config
    from models.training.data import load_captioned_photos

    val = load_captioned_photos(SHARED, "val")
    images = [Image.open(p.path).convert("RGB") for p in val[: args.photos]]
    texts = [p.captions[0] for p in val[: args.texts]]
    train = [p.path for p in load_captioned_photos(SHARED, "train")[:64]]
    print(
        f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; {args.model}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        random = random_clip_encoder(load_model_config(args.model), torch.device("cpu"), seed=0)
        saved = save_clip_checkpoint(random, Path(tmp) / f"{args.model}.safetensors")
        cache = Path(tmp) / "onnx"
        torch_encoder = load_encoder(str(saved), device="cpu", options=ServingOptions(runtime="torch"))
        (graph,) = [g for g in tower_graphs(torch_encoder) if g.name == "image"]
        started = time.perf_counter()
        calibrate(torch_encoder, train, exported(graph, export_folder(cache, torch_encoder)))
        print(f"export + int8 calibration on {len(train)} photos: {time.perf_counter() - started:.0f} s")
        runtimes = {
            "torch": torch_encoder,
            "onnx": load_encoder(
                str(saved), device="cpu", options=ServingOptions("onnx", None, "none", cache)
            ),
            "onnx-int8image": load_encoder(
                str(saved), device="cpu", options=ServingOptions("onnx", None, "image", cache)
            ),
        }
        pixels = torch.stack([torch_encoder.preprocess(image) for image in images])
        base_photos = base_text = None
        print("| runtime | photos/s | vs torch | text p50 (ms) | vs torch |\n|---|---|---|---|---|")
        for label, encoder in runtimes.items():
            encoder.encode_image_batch(pixels[:2])  # warm-up
            rounds = []
            for _ in range(args.rounds):
                started = time.perf_counter()
                for i in range(0, len(pixels), 32):
                    encoder.encode_image_batch(pixels[i : i + 32])
                rounds.append(time.perf_counter() - started)
            rate = len(pixels) / statistics.median(rounds)
            encoder.encode_texts(texts[:2])
            latencies = []
            for text in texts:
                started = time.perf_counter()
                encoder.encode_texts([text])
                latencies.append(1000 * (time.perf_counter() - started))
            p50 = statistics.median(latencies)
            base_photos, base_text = base_photos or rate, base_text or p50
            print(
                f"| {label} | {rate:.1f} | {rate / base_photos:.2f}× | {p50:.1f} | {base_text / p50:.2f}× |"
            )
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
