"""hw1_3.sh: P3 masks for a folder of satellite images, one `xxxx_mask.png` per `xxxx_sat.jpg`.

Each output is an 8-bit RGB PNG of the input's size in the 7 legal colours only (written through
:func:`dlcv.data.masks.write_mask`, atomically). Speed, for the 10-minute limit on one GPU (313
images of 512x512): JPEG decoding runs in background threads ahead of the model
(:func:`dlcv.data.satellite.iter_image_batches`), batches go to the GPU in channels_last with bf16
autocast, and PNG encoding runs in other threads while the next batch computes.

Options: flip test-time augmentation (`tta=True`, the `--tta` flag of `dlcv predict`, or
`DLCV_P3_TTA=1`): mean softmax of the image and its horizontal and vertical mirrors, 3x the
compute. Unreadable images: every readable image still gets its mask, the bad ones are listed on
stderr and the exit status is non-zero.
"""
from __future__ import annotations

import os
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from dlcv.data.masks import write_mask
from dlcv.data.satellite import iter_image_batches, list_sat_images, mask_name
from dlcv.graded.common import check_output_writable, report_unreadable
from dlcv.graded.models import load_segmenter, pick_device, predict_logits
from dlcv.io import load_model_file

TRUE_WORDS = ("1", "true", "yes", "on")
EXIT_USAGE = 2


def predict(checkpoint: str | Path, image_dir: str | Path, out_dir: str | Path, tta: bool = False,
            batch_size: int = 0, device: str = "auto") -> int:
    """Write `<out_dir>/xxxx_mask.png` for every `<image_dir>/xxxx_sat.jpg`; returns the exit code."""
    if not str(image_dir).strip() or not str(out_dir).strip():  # `bash hw1_3.sh` without arguments
        print("usage: bash hw1_3.sh <image_dir> <out_dir>", file=sys.stderr)
        return EXIT_USAGE
    t0 = time.perf_counter()
    tta = tta or os.environ.get("DLCV_P3_TTA", "").strip().lower() in TRUE_WORDS
    paths = list_sat_images(image_dir)  # bad inputs fail before anything is created
    check_output_writable(Path(out_dir), is_folder=True)  # before minutes of model loading
    dev = pick_device(device)
    config, state = load_model_file(checkpoint)
    segmenter, channels_last = load_segmenter(config, state, dev, str(checkpoint))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)  # the graded scripts may not mkdir: Python does
    batch_size = batch_size or (8 if dev.type == "cuda" else 4)

    errors: list[str] = []
    pending: list[Future] = []
    written = 0
    with ThreadPoolExecutor(2) as writer:  # PNG encoding overlaps the next batch's compute
        for batch_paths, batch, errs in iter_image_batches(paths, batch_size):
            errors += errs
            if batch is None:
                continue
            classes = classify_batch(segmenter, batch, dev, channels_last, tta)
            for path, mask in zip(batch_paths, classes):
                pending.append(writer.submit(write_mask, out_dir / mask_name(path.name), mask))
            written += len(batch_paths)
        for f in pending:
            f.result()  # re-raises a failed write
    elapsed = time.perf_counter() - t0
    print(f"wrote {written} mask(s) to {out_dir} in {elapsed:.1f} s ({written / max(elapsed, 1e-9):.2f} img/s, "
          f"{dev.type}{', flip TTA' if tta else ''})", file=sys.stderr)
    return report_unreadable(errors)


def classify_batch(segmenter, batch: np.ndarray, dev: torch.device, channels_last: bool, tta: bool) -> np.ndarray:
    """(B,H,W) uint8 class ids of a uint8 (B,3,H,W) batch; bf16 autocast on GPU, fp32 on CPU (where
    bf16 is slower without AMX)."""
    x = torch.from_numpy(batch)
    if dev.type == "cuda":
        x = x.pin_memory().to(dev, non_blocking=True)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
        scores = predict_logits(segmenter, x, tta)
    return scores.argmax(1).to(torch.uint8).cpu().numpy()
