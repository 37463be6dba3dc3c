"""The sections besides the jobs: the official mIoU against a per-class NumPy loop, t-SNE
implementations, and the graded scripts' wall time at hidden-test scale."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from dlcv.bench.measure import summary
from dlcv.bench.results import fmt_ratio
from dlcv.bench.specs import REPO, graded_scale
from dlcv.bench.workers import BenchError


def synthetic_masks(n: int, size: int, seed: int = 0):
    """(pred, truth) uint8 class-id masks (N, size, size) with region structure (blocks of
    classes, with unknown pixels), truth ~80% equal to pred."""
    import numpy as np

    rng = np.random.default_rng(seed)
    cells = max(1, size // 32)
    truth = rng.integers(0, 7, (n, cells, cells), dtype=np.uint8).repeat(32, 1).repeat(32, 2)[:, :size, :size]
    noise = rng.integers(0, 7, truth.shape, dtype=np.uint8)
    keep = rng.random(truth.shape) < 0.8
    pred = np.where(keep, truth, noise).astype(np.uint8)
    return np.ascontiguousarray(pred), np.ascontiguousarray(truth)


def per_class_loop_miou(pred, labels) -> float:
    """The official formula as a straightforward per-class loop (mean_iou_evaluate.py's shape)."""
    import numpy as np

    mean_iou = 0
    for i in range(6):
        tp_fp = np.sum(pred == i)
        tp_fn = np.sum(labels == i)
        tp = np.sum((pred == i) * (labels == i))
        iou = tp / (tp_fp + tp_fn - tp)
        mean_iou += iou / 6
    return float(mean_iou)


def bench_miou(settings: dict, log) -> dict:
    """The product's confusion-matrix path (`dlcv.seg_metrics.ConfusionMatrix.update` per
    validation batch of int64 predictions/labels, as in SegmentationTask.validation_step, then
    `iou_from_confusion`) and `confusion_numpy` (the NumPy side of the same kernel,
    `dlcv.seg_iou.pair_histogram_*`, which score-masks counts with) against the per-class loop on the
    same 257 (or --quick: 16) masks of 512x512; results must be equal. Whole-process `dlcv
    score-masks` against the official script: the cli section (`dlcv.bench.startup`)."""
    import numpy as np
    import torch

    from dlcv.seg_iou import confusion_numpy, iou_from_confusion
    from dlcv.seg_metrics import ConfusionMatrix

    n = 16 if settings["scale"] == "quick" else 257
    size = 512
    batch = 8
    log(f"\n== miou: official mIoU over {n} masks of {size}x{size}")
    pred, truth = synthetic_masks(n, size)
    pred_t, truth_t = torch.from_numpy(pred), torch.from_numpy(truth)

    def ours_task():
        metric = ConfusionMatrix()
        for i in range(0, n, batch):  # as validation_step: argmax (int64) vs y.long()
            metric.update(pred_t[i:i + batch].long(), truth_t[i:i + batch].long())
        return iou_from_confusion(metric.compute())["miou_official"]

    def ours_task_uint8():
        metric = ConfusionMatrix()
        for i in range(0, n, batch):
            metric.update(pred_t[i:i + batch], truth_t[i:i + batch])
        return iou_from_confusion(metric.compute())["miou_official"]

    def ours_numpy():
        cm = np.zeros((7, 7), dtype=np.int64)
        for i in range(0, n, batch):
            cm += confusion_numpy(pred[i:i + batch], truth[i:i + batch])
        return iou_from_confusion(cm)["miou_official"]

    def reference():
        return per_class_loop_miou(pred, truth)

    variants = {"ours_task_int64": ours_task, "ours_task_uint8": ours_task_uint8, "ours_numpy": ours_numpy,
                "reference": reference}
    values = {k: f() for k, f in variants.items()}  # warm-up + the equality check
    ref_value = values["reference"]
    equal = {k: abs(v - ref_value) <= 1e-12 for k, v in values.items()}
    if not all(equal.values()):
        raise BenchError(f"mIoU differs between the product and the per-class loop: {values}")
    times = _time_interleaved(variants, max(3, settings["repeats"]))
    out = {"masks": n, "size": size, "batch": batch, "miou": ref_value, "equal": equal,
           "seconds": {k: summary(v) for k, v in times.items()},
           "ratio": {k: summary(r / o for r, o in zip(times["reference"], v)) for k, v in times.items()
                     if k != "reference"}}
    log("  " + ", ".join(f"{k} {s['median'] * 1e3:.0f} ms" for k, s in out["seconds"].items())
        + "; speed-up over the loop: " + ", ".join(f"{k} {fmt_ratio(s, 1)}" for k, s in out["ratio"].items()))
    return out


def _time_interleaved(variants: dict, repeats: int) -> dict[str, list]:
    """Seconds of each call in `variants`, `repeats` times; the order rotates every repeat so that
    no path always runs first (or last)."""
    times: dict[str, list] = {k: [] for k in variants}
    for r in range(repeats):
        names = list(variants)
        names = names[r % len(names):] + names[:r % len(names)]
        for k in names:
            t0 = time.perf_counter()
            variants[k]()
            times[k].append(time.perf_counter() - t0)
    return times


def bench_tsne(settings: dict, log) -> dict:
    """The P1 report's projections of cached penultimate features (2,500 x 128, like seed A on the
    validation set; --quick: 300): PCA, scikit-learn t-SNE (the product's `tsne_2d`) and openTSNE
    (if installed), same perplexity and PCA initialisation."""
    import numpy as np

    from dlcv.analysis.features import pca_2d, tsne_2d

    n = 300 if settings["scale"] == "quick" else 2500
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (50, 128))
    labels = np.arange(n) % 50
    feats = np.maximum(0, centres[labels] + rng.normal(0, 1.2, (n, 128))).astype(np.float32)
    log(f"\n== tsne: PCA and t-SNE of {n} x 128 cached features")
    out: dict[str, Any] = {"points": n, "dim": 128, "seconds": {}}
    t0 = time.perf_counter()
    pca_2d(feats)
    out["seconds"]["pca_sklearn"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tsne_2d(feats, 30.0, 0)
    out["seconds"]["tsne_sklearn"] = time.perf_counter() - t0
    try:
        import openTSNE

        t0 = time.perf_counter()
        openTSNE.TSNE(perplexity=30.0, initialization="pca", n_jobs=settings["threads"],
                      random_state=0).fit(feats)
        out["seconds"]["tsne_opentsne"] = time.perf_counter() - t0
        out["opentsne_version"] = openTSNE.__version__
    except ImportError:
        out["opentsne_version"] = None
    if "tsne_opentsne" in out["seconds"]:
        out["opentsne_speedup"] = out["seconds"]["tsne_sklearn"] / out["seconds"]["tsne_opentsne"]
    log("  " + ", ".join(f"{k} {v:.1f} s" for k, v in out["seconds"].items()))
    return out


def export_graded_models(root: Path, out: Path, device: str) -> dict[str, Path]:
    """model.pt files in the product's format (dlcv.engine.export_model) of tasks built from the real
    recipes, random init: P1 strong ResNet-18, P2 ResNet-50 fine-tune, P3 FCN32s and DeepLabv3."""
    from dlcv.config import load_config, to_dict
    from dlcv.io import export_model
    from dlcv.tasks.classification import ClassificationTask
    from dlcv.tasks.segmentation import SegmentationTask

    recipes = {"p1": ("configs/p1/strong_a.yaml", ClassificationTask),
               "p2": ("configs/p2/finetune.yaml", ClassificationTask),
               "p3_fcn32s": ("configs/p3/a_fcn32s_strong.yaml", SegmentationTask),
               "p3_deeplabv3": ("configs/p3/b_deeplabv3_strong.yaml", SegmentationTask)}
    paths = {}
    for name, (config, task_cls) in recipes.items():
        folder = out / name
        path = folder / "model.pt"
        if not path.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            cfg = load_config(REPO / config, [f"data.root={root}", "model.pretrained=none"])
            task = task_cls(to_dict(cfg))
            export_model(folder, to_dict(cfg), task.state_dict())
        paths[name] = path
    return paths


def _run_script(args: list[str], env: dict, log) -> dict:
    import subprocess

    t0 = time.perf_counter()
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    tail = (proc.stderr or "").strip().splitlines()[-3:]
    log(f"  {' '.join(Path(a).name if a.startswith('/') else a for a in args)}: {seconds:.1f} s "
        f"(exit {proc.returncode}) {' | '.join(tail)}")
    return {"seconds": seconds, "returncode": proc.returncode, "stderr_tail": tail}


def profile_hw1_3(model: Path, image_dir: Path, out_dir: Path, images: int, device: str) -> dict:
    """Where hw1_3.sh's time goes: JPEG decoding, the model, PNG encoding + writing, each alone on
    the first `images` inputs (batch 4, channels_last as the checkpoint says, as predict does)."""
    import numpy as np
    import torch

    from dlcv.data.masks import write_mask
    from dlcv.data.satellite import iter_image_batches, list_sat_images, mask_name
    from dlcv.graded.models import load_segmenter
    from dlcv.graded.p3 import classify_batch
    from dlcv.io import load_model_file

    paths = list_sat_images(image_dir)[:images]
    dev = torch.device(device)
    t0 = time.perf_counter()
    batches = [b for _, b, _ in iter_image_batches(paths, 4)]
    decode = time.perf_counter() - t0
    config, state = load_model_file(model)
    t0 = time.perf_counter()
    segmenter, cl = load_segmenter(config, state, dev)
    load = time.perf_counter() - t0
    classify_batch(segmenter, batches[0][:1], dev, cl, False)  # warm-up
    t0 = time.perf_counter()
    masks = [classify_batch(segmenter, b, dev, cl, False) for b in batches]
    compute = time.perf_counter() - t0
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for p, m in zip(paths, np.concatenate(masks)):
        write_mask(out_dir / mask_name(p.name), m)
    write = time.perf_counter() - t0
    n = len(paths)
    return {"images": n, "decode_s_per_image": decode / n, "model_s_per_image": compute / n,
            "write_s_per_image": write / n, "load_model_s": load, "threads": torch.get_num_threads(),
            "channels_last": cl}


def bench_graded(settings: dict, log) -> dict:
    """hw1_1/2/3.sh wall time on hidden-test-sized inputs with the real architectures."""
    from dlcv.demo import ensure_demo_data

    root = Path(settings["data"]).parent / "bench_graded"
    log(f"\n== graded: hw1_1/2/3.sh at hidden-test scale (data in {root})")
    t0 = time.perf_counter()
    ensure_demo_data(root, graded_scale(), seed=0)
    log(f"  data ready in {time.perf_counter() - t0:.0f} s")
    work = Path(settings["work"]) / "graded"
    models = export_graded_models(root, work / "models", settings["device"])
    # python3 = this environment's python, as for a grader who runs the scripts in the env they set up
    env = {**os.environ, "PYTHONPATH": str(REPO),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    bash = "bash"
    out: dict[str, Any] = {"inputs": {"hw1_1": "5,000 PNG 32x32", "hw1_2": "406 Office JPG (CSV)",
                                      "hw1_3": "313 JPG 512x512"}, "runs": {}}
    out["runs"]["hw1_1"] = _run_script(
        [bash, "hw1_1.sh", str(root / "p1_data" / "test"), str(work / "p1.csv")],
        {**env, "DLCV_P1_CKPT": str(models["p1"])}, log)
    office = root / "p2_data" / "office"
    out["runs"]["hw1_2"] = _run_script(
        [bash, "hw1_2.sh", str(office / "test.csv"), str(office / "test"), str(work / "p2.csv")],
        {**env, "DLCV_P2_CKPT": str(models["p2"])}, log)
    for name in ("p3_fcn32s", "p3_deeplabv3"):
        out["runs"][f"hw1_3 ({name.split('_')[1]})"] = _run_script(
            [bash, "hw1_3.sh", str(root / "p3_data" / "test"), str(work / f"{name}_masks")],
            {**env, "DLCV_P3_CKPT": str(models[name])}, log)
    out["hw1_3_profile"] = {}
    for name in ("p3_fcn32s", "p3_deeplabv3"):
        prof = profile_hw1_3(models[name], root / "p3_data" / "test", work / f"{name}_profile", 16, settings["device"])
        out["hw1_3_profile"][name] = prof
        log(f"  {name} per image: decode {prof['decode_s_per_image'] * 1e3:.0f} ms, model "
            f"{prof['model_s_per_image']:.2f} s, PNG write {prof['write_s_per_image'] * 1e3:.0f} ms")
    return out
