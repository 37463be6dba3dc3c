"""What `dlcv bench` measures: the jobs (each the product's own recipe), their sizes per scale
(cpu, quick, gpu) and the data each scale needs."""
from __future__ import annotations

import dataclasses
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO / "benchmarks"
DEFAULT_DATA = REPO / ".cache" / "bench_data"


@dataclasses.dataclass(frozen=True)
class JobSpec:
    name: str
    title: str
    config: str  # the job's own recipe under configs/
    batch: int  # training batch (same for ours and the reference)
    steps: int  # timed training steps per repeat
    infer_batch: int
    infer_images: int  # images predicted per repeat (the validation set, cycled)
    warmup: int = 1  # untimed training steps when the pipeline is built
    overrides: tuple[str, ...] = ()
    variant_repeats: int = 99  # repeats that also run ours' variant (channels_last toggled); fewer for slow jobs


JOBS: dict[str, JobSpec] = {j.name: j for j in (
    JobSpec("p1_seed_a", "P1 A seed CNN, 32 px", "configs/p1/seed_a.yaml", 64, 20, 250, 2000, 3),
    JobSpec("p1_strong_a", "P1 A strong ResNet-18 (CIFAR), 32 px", "configs/p1/strong_a.yaml", 64, 2, 128, 256, 1),
    JobSpec("p1_b_convnext", "P1 B ConvNeXt-T (seed freeze), 32->232->224 px", "configs/p1/b_convnext.yaml",
            8, 2, 8, 16),
    JobSpec("p2_byol", "P2 BYOL ResNet-50, 2 views of 128 px", "configs/p2/byol.yaml", 8, 2, 16, 32),
    JobSpec("p2_finetune", "P2 fine-tune ResNet-50, 128 px (Office)", "configs/p2/finetune.yaml", 8, 3, 16, 48),
    JobSpec("p3_fcn32s", "P3 A VGG16-FCN32s, 512 px", "configs/p3/a_fcn32s_seed.yaml", 2, 1, 2, 2,
            variant_repeats=1),
    JobSpec("p3_deeplabv3", "P3 B DeepLabv3-ResNet50, 512 px", "configs/p3/b_deeplabv3_seed.yaml", 2, 1, 2, 2,
            variant_repeats=1),
)}


# --quick (the test): tiny sizes, same code paths
QUICK: dict[str, dict] = {
    "p1_seed_a": dict(batch=16, steps=3, infer_batch=32, infer_images=64, warmup=1),
    "p1_strong_a": dict(batch=8, steps=2, infer_batch=16, infer_images=16, warmup=1),
    "p1_b_convnext": dict(batch=2, steps=1, infer_batch=2, infer_images=2, warmup=1),
    "p2_byol": dict(batch=4, steps=1, infer_batch=4, infer_images=4, warmup=1),
    "p2_finetune": dict(batch=4, steps=1, infer_batch=4, infer_images=4, warmup=1),
    "p3_fcn32s": dict(batch=2, steps=1, infer_batch=2, infer_images=2, warmup=1, overrides=("data.crop=64",)),
    "p3_deeplabv3": dict(batch=2, steps=1, infer_batch=2, infer_images=2, warmup=1, overrides=("data.crop=64",)),
}


# --scale gpu (benchmarks/gpu.sh): the recipes' real batch sizes, real image sizes, AMP
GPU: dict[str, dict] = {
    "p1_seed_a": dict(batch=32, steps=40, infer_batch=1000, infer_images=2500, warmup=5),
    "p1_strong_a": dict(batch=128, steps=20, infer_batch=500, infer_images=2500, warmup=5),
    "p1_b_convnext": dict(batch=128, steps=10, infer_batch=256, infer_images=1024, warmup=3),
    "p2_byol": dict(batch=256, steps=8, infer_batch=256, infer_images=512, warmup=2),
    "p2_finetune": dict(batch=64, steps=10, infer_batch=128, infer_images=512, warmup=3),
    "p3_fcn32s": dict(batch=8, steps=5, infer_batch=8, infer_images=32, warmup=2),
    "p3_deeplabv3": dict(batch=8, steps=5, infer_batch=8, infer_images=32, warmup=2),
}

# besides the jobs; graded, p1_fast (the fast P1 A recipe's time to accuracy, torch.compile, the
# TrivialAugment / RandAugment cost) and byol_learns (BYOL against random init) are not part of "all"
# (they are long)
SECTIONS = ("miou", "cli", "tsne", "graded", "p1_fast", "byol_learns")


def data_scale(scale: str):
    """The DemoScale each bench scale needs: enough files for (warmup and) the timed steps."""
    from dlcv.demo import DemoScale

    if scale == "quick":
        return DemoScale(p1_train_per_class=1, p1_val_per_class=2, p1_test=0, p2_mini=16,
                         p2_office_train_per_class=1, p2_office_val_per_class=1, p2_office_test=0,
                         p3_train=4, p3_val=2, p3_test=0, p3_size=64)
    if scale == "gpu":
        return DemoScale(p1_train_per_class=60, p1_val_per_class=50, p1_test=0, p2_mini=2304,
                         p2_office_train_per_class=12, p2_office_val_per_class=8, p2_office_test=0,
                         p3_train=48, p3_val=32, p3_test=0, p3_size=512)
    return DemoScale(p1_train_per_class=28, p1_val_per_class=10, p1_test=0, p2_mini=48,
                     p2_office_train_per_class=1, p2_office_val_per_class=1, p2_office_test=0,
                     p3_train=4, p3_val=2, p3_test=0, p3_size=512)


def graded_scale():
    """The hidden test sets' sizes: P1 5,000 32x32, P2 406 Office images, P3 313 of 512x512."""
    from dlcv.demo import DemoScale

    return DemoScale(p1_train_per_class=1, p1_val_per_class=1, p1_test=5000, p2_mini=1,
                     p2_office_train_per_class=1, p2_office_val_per_class=1, p2_office_test=406,
                     p3_train=1, p3_val=1, p3_test=313, p3_size=512)


def job_for(name: str, scale: str) -> JobSpec:
    spec = JOBS[name]
    if scale == "quick":
        return dataclasses.replace(spec, **QUICK[name])
    if scale == "gpu":
        return dataclasses.replace(spec, **GPU[name])
    return spec


def resolved_config(spec: JobSpec, root: Path, run_dir: Path, device: str, extra: tuple[str, ...] = ()) -> dict:
    """The job's own YAML with the bench's sizes, random init (no weights offline; same speed) and
    no side outputs (features, masks, kNN monitor, progress bar)."""
    from dlcv.config import load_config, to_dict

    base = load_config(REPO / spec.config)
    overrides = [f"data.root={root}", f"data.batch_size={spec.batch}", f"data.eval_batch_size={spec.infer_batch}",
                 "data.num_workers=0", f"run.dir={run_dir}", f"run.name={spec.name}", "run.seed=0",
                 "trainer.epochs=1", "trainer.progress=false", "trainer.devices=1",
                 f"trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}"]
    if base.task == "classify":
        overrides += ["model.pretrained=none", "features.enabled=false"]
    elif base.task == "byol":
        overrides += ["byol.knn_every=0"]
    elif base.task == "segment":
        overrides += ["model.pretrained=none", "masks.enabled=false"]
    cfg = load_config(REPO / spec.config, overrides + list(spec.overrides) + list(extra))
    return to_dict(cfg)
