"""The `p1_fast` section of RESULTS.md and its targets (from the results JSON alone)."""
from __future__ import annotations

from dlcv.bench.results import fmt_ratio

TARGET_RATIO = 0.5  # the fast recipe reaches the seed's best in at most half the seed's wall time


def _acc(v) -> str:
    return "n/a" if v is None else f"{v:.2%}"


def _s(v) -> str:
    return "never" if v is None else f"{v:.0f} s"


def _time_to_accuracy(p: dict) -> list[str]:
    lines = [f"Both recipes as `dlcv train` runs them (validation every epoch, checkpoints written), each run in a "
             f"fresh process with {p['threads']} torch thread(s), from their own YAML files: only the data root "
             f"changes" + (f" and the seed runs {p['seed_epochs']} epochs" if p.get("seed_epochs") else "")
             + ". Every repeat uses the recipes' own seed (the same accuracies: repeats measure the time); the "
             "order alternates. Wall time counts from the fit's "
             "start to the end of the epoch (training, validation, checkpoint); \"time to the seed's best\" is "
             "the fast recipe's first epoch at or above the seed run's best validation accuracy of the same "
             "repeat.", "",
             "| data | train / val images | repeat | seed: best val acc (epoch) | seed: wall time | fast: best val acc "
             "(epoch) | fast: wall time | fast: time to the seed's best (epoch) | **ratio to the seed's wall time** |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, d in p["datasets"].items():
        images = f"{d['images']['train']:,} / {d['images']['val']:,}"
        for r, (pair, seed, fast) in enumerate(zip(d["pairs"], d["raw"]["seed"], d["raw"]["fast"])):
            ratio = "not reached" if pair["ratio"] is None else f"**{pair['ratio']:.2f}x**"
            lines.append(
                f"| {name} | {images} | {r} | {_acc(pair['seed_best_acc'])} ({pair['seed_best_epoch']} of "
                f"{seed['epochs_run']}) | {_s(pair['seed_wall_s'])} | {_acc(pair['fast_best_acc'])} "
                f"({fast['best_epoch']} of {fast['epochs_run']}) | {_s(pair['fast_wall_s'])} | "
                f"{_s(pair['fast_time_to_seed_best_s'])} ({pair['fast_epoch_at_seed_best'] or '-'}) | {ratio} |")
    return lines


def _compile_rows(c: dict) -> list[str]:
    lines = ["", "`torch.compile` (inductor) against eager, the product's training step on the same CPU, "
             "interleaved repeats (compiled / eager images/s per repeat); a recipe keeps `trainer.compile: true` "
             "only at >= 1.1x:", "",
             "| recipe | batch | eager img/s | compiled img/s | **speed-up** | warm-up incl. compile (eager) | "
             "compile on? |", "|---|---:|---:|---:|---:|---:|---|"]
    for name, r in c.items():
        lines.append(f"| {r['title']} (`{r['config']}`) | {r['batch']} | {r['eager_ips']['median']:.0f} | "
                     f"{r['compiled_ips']['median']:.0f} | **{fmt_ratio(r['speedup'])}** | {r['compile_warmup_s']:.0f} s "
                     f"({r['eager_warmup_s']:.0f} s) | {'yes' if r['keep_compile'] else 'no'} |")
    return lines


def _autoaugment_rows(a: dict) -> list[str]:
    ms = a["ms"]

    def cell(k):
        s = ms[k]
        return f"{s['median']:.1f} ms ({s['min']:.1f}-{s['max']:.1f})"

    return ["", f"TrivialAugmentWide and RandAugment(2, 9) on a CPU batch of {a['batch']}x3x32x32: ours (batched per "
            "op, per-sample draws) against torchvision.transforms.v2 applied image by image, output for output the "
            "same (`tests/test_trivialaugment.py`); pad-crop-flip for scale:", "",
            "| augmentation | ours | torchvision per image | **speed-up** |", "|---|---:|---:|---:|",
            f"| TrivialAugmentWide | {cell('ours_trivialaugment')} | {cell('torchvision_trivialaugment_per_image')} | "
            f"**{fmt_ratio(a['speedup']['trivialaugment'], 1)}** |",
            f"| RandAugment(2, 9) | {cell('ours_randaugment')} | {cell('torchvision_randaugment_per_image')} | "
            f"**{fmt_ratio(a['speedup']['randaugment'], 1)}** |",
            f"| pad 4 + crop + flip | {cell('ours_pad_crop_flip')} | | |"]


def render_p1_fast(p: dict, meta_lines: list[str]) -> list[str]:
    lines = meta_lines + _time_to_accuracy(p)
    if p.get("compile"):
        lines += _compile_rows(p["compile"])
    if p.get("autoaugment"):
        lines += _autoaugment_rows(p["autoaugment"])
    return lines + [""]


def p1_fast_targets(p: dict) -> list[tuple[str, str, str]]:
    rows = []
    for name, d in p["datasets"].items():
        ratios = [pair["ratio"] for pair in d["pairs"]]
        ok = all(r is not None and r <= TARGET_RATIO for r in ratios)
        shown = ", ".join("not reached" if r is None else f"{r:.2f}x" for r in ratios)
        rows.append((f"fast P1 A recipe reaches the seed's best val acc in <= {TARGET_RATIO:g}x the seed's wall time "
                     f"({name})", ("met" if ok else "**missed**") + f" ({shown})",
                     f"seed best {_acc(d['seed_best_acc']['median'])} in {_s(d['seed_wall_s']['median'])}; fast "
                     f"best {_acc(d['fast_best_acc']['median'])} in {_s(d['fast_wall_s']['median'])} (medians)"))
    return rows
