"""`dlcv bench --jobs byol_learns`: does our BYOL learn, on a CPU, in minutes?

BYOL's own modules (`dlcv.models.byol.BYOL`, `byol_views`, LARS from `build_optimizer`, the cosine
warm-up LR and the tau schedule) train a random-init ResNet-18 on unlabeled OBJECT-IDENTITY images
(`dlcv.demo.objects`: a class is an outline + a surface pattern; colour, background, position, scale
and mirror are drawn per image) rendered in memory, with no labels. At a few points of the run it
measures two things on HELD-OUT images, each against the same backbone at random init:

* view retrieval: for 256 held-out images, two BYOL views each; the fraction whose first view's
  nearest neighbour (cosine, backbone features, eval mode) among all second views is its own:
  BYOL's objective seen from the backbone. With crops and flips it rises within a minute; under
  the paper's colour distortions a few hundred steps barely move it.
* identity kNN: the monitor's kNN (cosine-weighted, k 20) with labelled identity images as the bank
  and other identity images as queries: whether what it learns is WHAT the object is.

Setups (`SETUPS`), each against its own random-init row:

* `no_blur`: the paper's views (Table 6) without the Gaussian blur, 64 px, a fast target (tau_base
  0.9: a few hundred steps, not the paper's ~94k). The run that shows BYOL learning identities.
* `paper_views`: the same with the paper's blur (p 1.0 / 0.1, sigma scaled to the 64 px view). It
  measures what the blur does at this scale (see benchmarks/RESULTS.md).
* `crop_flip`: 32 px crops and flips only: the fastest way to see the objective itself learned
  (view retrieval); the slow test runs it.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable

import numpy as np
import torch

from dlcv.data.augment import ByolAugmentConfig, byol_views
from dlcv.data.augment.byol import scaled_blur_sigma
from dlcv.models.byol import BYOL
from dlcv.models.classifiers import Preprocess

NO_COLOUR = ByolAugmentConfig(jitter_p=(0.0, 0.0), grayscale_p=(0.0, 0.0), blur_p=(0.0, 0.0), solarize_p=(0.0, 0.0))


@dataclasses.dataclass(frozen=True)
class ProbeSetup:
    steps: int = 500
    batch: int = 32
    view_size: int = 64  # BYOL views and kNN images, px
    source_size: int = 72  # unlabeled images are rendered at this size; views are crops of them
    pool: int = 3000  # unlabeled images
    crop_scale_min: float = 0.3
    augment: ByolAugmentConfig = ByolAugmentConfig(blur_p=(0.0, 0.0))  # the paper's views but the blur
    tau_base: float = 0.9
    lr: float = 1.0  # LARS, cosine after a warm-up of `warmup` x steps
    warmup: float = 0.1
    evals: int = 5  # measurement points after step 0
    bank_per_class: int = 20
    query_per_class: int = 10
    retrieval_images: int = 256
    seed: int = 0
    # objects large and near the centre, as in object photos: two crops mostly share the object
    render: tuple = (("scale", (0.3, 0.5)), ("spread", 0.3))


SETUPS = {
    "no_blur": ProbeSetup(),
    "paper_views": ProbeSetup(augment=ByolAugmentConfig(blur_sigma=scaled_blur_sigma(64))),
    "crop_flip": ProbeSetup(steps=200, batch=64, view_size=32, source_size=40, evals=2, crop_scale_min=0.6,
                            augment=NO_COLOUR, tau_base=0.99),
}


def identity_images(labels: np.ndarray, size: int, seed: int, render: dict) -> np.ndarray:
    """(N, 3, size, size) uint8 images of the object identities `labels` (indices into IDENTITIES)."""
    from dlcv.demo.objects import IDENTITIES, render_identity

    rng = np.random.default_rng(seed)
    out = np.empty((len(labels), 3, size, size), np.uint8)
    for i, label in enumerate(labels):
        out[i] = render_identity(rng, (size, size), IDENTITIES[int(label)], **render).transpose(2, 0, 1)
    return out


@dataclasses.dataclass
class ProbeData:
    pool: np.ndarray  # unlabeled training images
    bank: np.ndarray
    bank_labels: np.ndarray
    queries: np.ndarray
    query_labels: np.ndarray
    held_out: np.ndarray  # never trained on: the view-retrieval images
    num_classes: int


def probe_data(s: ProbeSetup) -> ProbeData:
    from dlcv.demo.objects import IDENTITIES

    n = len(IDENTITIES)
    render = dict(s.render)
    rng = np.random.default_rng([s.seed, 1])
    bank_labels = np.repeat(np.arange(n), s.bank_per_class)
    query_labels = np.repeat(np.arange(n), s.query_per_class)
    return ProbeData(
        pool=identity_images(rng.integers(n, size=s.pool), s.source_size, s.seed * 10 + 1, render),
        bank=identity_images(bank_labels, s.view_size, s.seed * 10 + 2, render), bank_labels=bank_labels,
        queries=identity_images(query_labels, s.view_size, s.seed * 10 + 3, render), query_labels=query_labels,
        held_out=identity_images(rng.integers(n, size=s.retrieval_images), s.source_size, s.seed * 10 + 4, render),
        num_classes=n)


class Measure:
    """The two held-out measurements of a backbone (see the module docstring)."""

    def __init__(self, s: ProbeSetup, data: ProbeData):
        self.data = data
        self.knn_input = Preprocess(size=s.view_size)
        x = torch.from_numpy(data.held_out).float().div_(255)
        v1, v2 = byol_views(x, torch.Generator().manual_seed(s.seed + 99), s.view_size, (s.crop_scale_min, 1.0),
                            s.augment)
        self.views = [(v * 255).round().to(torch.uint8).numpy() for v in (v1, v2)]

    def __call__(self, backbone) -> dict:
        from dlcv.tasks.byol import embed, knn_predict

        cpu, d = torch.device("cpu"), self.data
        e1, e2 = (embed(backbone, self.knn_input, v, cpu) for v in self.views)
        retrieval = float(((e1 @ e2.T).argmax(1) == torch.arange(len(e1))).float().mean())
        bank, queries = embed(backbone, self.knn_input, d.bank, cpu), embed(backbone, self.knn_input, d.queries, cpu)
        pred = knn_predict(bank, torch.as_tensor(d.bank_labels), queries, 20, d.num_classes)
        return {"retrieval": retrieval, "knn": float((pred.numpy() == d.query_labels).mean())}


def run_probe(s: ProbeSetup, log: Callable[[str], None] = lambda m: None) -> dict:
    """Train BYOL for `s.steps` steps; the measurements at step 0 (random init) and `s.evals` later points."""
    from types import SimpleNamespace

    from dlcv.optim import build_optimizer
    from dlcv.schedules import lr_schedule, tau_schedule
    from dlcv.tasks.byol import build_backbone

    torch.manual_seed(s.seed)
    data = probe_data(s)
    measure = Measure(s, data)
    backbone, dim = build_backbone("resnet18")
    byol = BYOL(backbone, dim, hidden_dim=1024, proj_dim=128)
    opt = build_optimizer(SimpleNamespace(name="lars", lr=s.lr, weight_decay=1.5e-6, momentum=0.9), byol)
    base_lr = [g["lr"] for g in opt.param_groups]
    lr = lr_schedule(s.steps, int(s.warmup * s.steps), "cosine")
    tau = tau_schedule(s.steps, s.tau_base)
    normalize, generator = Preprocess(), torch.Generator().manual_seed(s.seed)
    order = np.random.default_rng(s.seed)
    curve = [dict(step=0, loss=None, seconds=0.0, **measure(byol.backbone))]
    log(f"byol_learns: random init: {curve[0]}")
    every = max(1, s.steps // s.evals)
    t0, losses = time.perf_counter(), []
    byol.train()
    for step in range(s.steps):
        x = torch.from_numpy(data.pool[order.choice(len(data.pool), s.batch, replace=False)]).float().div_(255)
        v1, v2 = byol_views(x, generator, s.view_size, (s.crop_scale_min, 1.0), s.augment)
        for group, base in zip(opt.param_groups, base_lr):
            group["lr"] = base * float(lr[step])
        loss = byol(normalize(v1), normalize(v2))["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        byol.update_target(float(tau[step]))
        losses.append(float(loss.detach()))
        if (step + 1) % every == 0 or step + 1 == s.steps:
            train_s = time.perf_counter() - t0
            row = dict(step=step + 1, loss=float(np.mean(losses[-every:])), seconds=round(train_s, 1),
                       **measure(byol.backbone))
            curve.append(row)
            log(f"byol_learns: {row}")
            t0 = time.perf_counter() - train_s  # the measurement is not training time
    return {"setup": setup_dict(s), "curve": curve, "chance": 1.0 / data.num_classes,
            "retrieval_chance": 1.0 / len(data.held_out)}


def setup_dict(s: ProbeSetup) -> dict:
    d = dataclasses.asdict(s)
    d["render"] = {k: v for k, v in s.render}
    return d


def write_probe(run_dir, name: str, result: dict) -> None:
    """A probe's result and its figure into `run_dir` (what the report reads)."""
    from pathlib import Path

    from dlcv.runfolder import BYOL_LEARNS, BYOL_LEARNS_PNG, write_json

    run_dir = Path(run_dir)
    write_json(run_dir / BYOL_LEARNS, {name: result})
    _plot({name: result}, run_dir / BYOL_LEARNS_PNG)


QUICK = dict(steps=4, evals=1, pool=128, bank_per_class=2, query_per_class=1, retrieval_images=16, batch=8)


def bench_byol_learns(settings: dict, log) -> dict:
    """The bench section: every setup of SETUPS, one run each (--quick: a few steps, the code path)."""
    from dlcv.bench.measure import wait_for_quiet

    torch.set_num_threads(settings["threads"])
    results = {}
    for name, setup in SETUPS.items():
        if settings["scale"] == "quick":
            setup = dataclasses.replace(setup, **QUICK)
        wait_for_quiet(settings["max_foreign"], settings["max_wait"], log)
        t0 = time.perf_counter()
        results[name] = dict(run_probe(setup, log), wall_s=round(time.perf_counter() - t0, 1))
    _plot(results, settings.get("figure"))
    return results


def _plot(results: dict, path) -> None:
    if not path:
        return
    from pathlib import Path

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dlcv.io import atomic_path

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, title in zip(axes, ("knn", "retrieval"), ("identity kNN accuracy (held-out)",
                                                          "view retrieval (held-out images)")):
        for i, (name, r) in enumerate(results.items()):
            steps = [row["step"] for row in r["curve"]]
            ax.plot(steps, [row[key] for row in r["curve"]], "o-", color=f"C{i}", label=f"BYOL, {name}")
            ax.axhline(r["curve"][0][key], color=f"C{i}", ls="--", lw=1, label=f"random init ({name})")
        ax.set(title=title, xlabel="BYOL step", ylabel="accuracy")
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def render_byol_learns(data: dict, meta_lines: list[str]) -> list[str]:
    """The RESULTS.md section: per setup, the curve against its random-init row."""
    lines = [*meta_lines,
             "BYOL (`dlcv.models.byol`, `byol_views`, LARS, tau schedule) trains a random-init ResNet-18 on unlabeled "
             "object-identity images (`dlcv.demo.objects`); both measures are on held-out images, against the same "
             "backbone at random init (step 0). See `dlcv/bench/byol_learns.py`.", ""]
    for name, r in data.items():
        s = r["setup"]
        aug = ", ".join(f"{k} {v}" for k, v in s["augment"].items())
        lines += [f"**{name}**: {s['steps']} steps of batch {s['batch']}, {s['view_size']} px views of "
                  f"{s['source_size']} px images ({s['pool']:,} unlabeled), crop scale >= {s['crop_scale_min']}, tau_base {s['tau_base']}, "
                  f"LARS lr {s['lr']}; views: {aug}. Chance: kNN {r['chance']:.1%}, retrieval "
                  f"{r['retrieval_chance']:.1%}."
                  + (f" Wall time {r['wall_s']:.0f} s." if r.get("wall_s") else ""), "",
                  "| step | training s | loss | identity kNN | vs random init | view retrieval | vs random init |",
                  "|---:|---:|---:|---:|---:|---:|---:|"]
        k0, r0 = r["curve"][0]["knn"], r["curve"][0]["retrieval"]
        for row in r["curve"]:
            loss = "-" if row["loss"] is None else f"{row['loss']:.3f}"
            lines.append(f"| {row['step']} | {row['seconds']:.0f} | {loss} | {row['knn']:.1%} | "
                         f"{100 * (row['knn'] - k0):+.1f} pt | {row['retrieval']:.1%} | "
                         f"{100 * (row['retrieval'] - r0):+.1f} pt |")
        lines.append("")
    return lines
