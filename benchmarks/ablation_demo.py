"""Ablation of the recipe ingredients on DEMO data: one ingredient changed at a time, everything else
as the recipe's demo config has it, each run trained by `dlcv train` in its own process.

    python benchmarks/ablation_demo.py [--data DIR] [--out benchmarks/ABLATION_demo.md] [--seeds 2]

The demo data (generated, 50 classes of shapes; `dlcv demo-data`) is not the assignment's: these
numbers say what each ingredient does to a few epochs on those images, on this CPU, not what it does
on the real data over a full schedule (that is what the recipes in configs/p1 are for). Two seeds
per row by default; the table shows both validation accuracies (best epoch) and their mean.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# (recipe, ingredient, overrides): the first row of each recipe is its demo config unchanged
ROWS = [
    ("p1_fast_a", "the demo config (crop, label smoothing 0.2)", []),
    ("p1_fast_a", "+ flip (augment crop_flip)", ["augment=crop_flip"]),
    ("p1_fast_a", "+ flip + TrivialAugmentWide (crop_flip_ta)", ["augment=crop_flip_ta"]),
    ("p1_fast_a", "+ MixUp 0.2", ["mix.mixup_alpha=0.2"]),
    ("p1_fast_a", "+ CutMix 1.0", ["mix.cutmix_alpha=1.0"]),
    ("p1_fast_a", "+ weight EMA 0.99", ["trainer.ema_decay=0.99"]),
    ("p1_fast_a", "- label smoothing (0)", ["label_smoothing=0.0"]),
    ("p1_b_ft", "the demo config (full fine-tuning, layer-wise LR decay 0.75)", []),
    ("p1_b_ft", "- layer-wise LR decay (1.0)", ["optim.layer_decay=1.0"]),
    ("p1_b_ft", "- TrivialAugmentWide (crop_flip)", ["augment=crop_flip"]),
]


def train(config: str, overrides: list[str], data: Path, runs: Path, name: str, seed: int) -> dict:
    cmd = [sys.executable, "-m", "dlcv", "train", f"configs/demo/{config}.yaml", f"data.root={data}",
           f"run.dir={runs}", f"run.name={name}", f"run.seed={seed}", "trainer.progress=false", "features.enabled=false",
           *overrides, "--overwrite"]
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    summary = json.loads((runs / name / "summary.json").read_text())
    return {"val_acc": summary["val_acc"], "best_epoch": summary.get("best_epoch")}


def main(argv: list[str]) -> int:
    from dlcv.bench.measure import machine_info
    from dlcv.demo import DemoScale, ensure_demo_data
    from dlcv.runfolder import markdown_table

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=REPO / ".cache" / "ablation_data")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "ABLATION_demo.md")
    ap.add_argument("--seeds", type=int, default=2)
    args = ap.parse_args(argv)
    ensure_demo_data(args.data, DemoScale(), seed=0, problems=("p1",))
    t_start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="dlcv-ablation-") as tmp:
        for i, (config, ingredient, overrides) in enumerate(ROWS):
            runs = [train(config, overrides, args.data, Path(tmp), f"ablate_{i}_{s}", s) for s in range(args.seeds)]
            accs = [r["val_acc"] for r in runs]
            print(f"{config}: {ingredient}: {', '.join(f'{a:.2%}' for a in accs)}", flush=True)
            rows.append([f"`{config}`", ingredient, " ".join(overrides) or "-",
                         " / ".join(f"{a:.1%} ({r['best_epoch']})" for a, r in zip(accs, runs)),
                         f"**{sum(accs) / len(accs):.1%}**"])
    m = machine_info()
    text = "\n".join([
        "# Ablation of recipe ingredients on DEMO data", "",
        f"Written by `python benchmarks/ablation_demo.py --seeds {args.seeds}` on {time.strftime('%Y-%m-%d')}, "
        f"{m['cpu']} ({m['vector']}), {m['usable_cpus']} cores, torch {m['torch']}, Python {platform.python_version()}; "
        f"{time.perf_counter() - t_start:.0f} s in all.", "",
        "**Demo data, demo schedules.** Generated shapes (`dlcv demo-data`), the demo configs' few epochs: each row "
        "says what one ingredient does to THAT run, one change at a time from the recipe's demo config. Ingredients "
        "meant for long schedules (MixUp/CutMix, EMA, strong augmentation) are measured here over a few epochs; the "
        "real-data recipes (configs/p1) combine them over 100-200 epochs.", "",
        markdown_table(["recipe", "ingredient", "overrides", "val acc per seed (best epoch)", "mean"], rows), ""])
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
