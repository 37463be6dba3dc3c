"""Per-step schedules, precomputed as numpy arrays (one value per optimizer step).

Precomputing (rather than computing inside a callback) means the whole curve can be plotted into
the report, unit-tested at both ends, and indexed by the global step on resume.

Conventions (all arrays have length ``total_steps``; index i is the value used DURING step i):

* ``lr_schedule`` returns LR *multipliers* for ``torch.optim.lr_scheduler.LambdaLR``::

      mult = lr_schedule(total, warmup, "cosine")
      sched = LambdaLR(opt, lambda i: float(mult[min(i, len(mult) - 1)]))

  Warm-up is linear and never starts at exactly 0 (a zero-LR step is a wasted step): step i of the
  warm-up (i = 0..W-1) has multiplier (i+1)/W, so step 0 has 1/W and step W-1 has exactly 1.
  After warm-up, with n = total - W remaining steps and j = i - W:

  - ``constant``: 1.
  - ``cosine``:   min_ratio + (1 - min_ratio) * (1 + cos(pi * j / (n-1))) / 2, i.e. exactly 1 at the
                  first step after warm-up and exactly ``min_ratio`` at the LAST step (n = 1: 1).
  - ``poly``:     min_ratio + (1 - min_ratio) * (1 - j / n) ** 0.9 (DeepLab's "poly" policy).
  - ``step``:     gamma ** (number of milestones m <= i); milestones are absolute step indices
                  counted from 0 including warm-up (as ``MultiStepLR`` after m scheduler steps).
                  The warm-up ramp multiplies this factor.

* ``tau_schedule`` is BYOL's target EMA rate (Grill et al. 2020, section 3.2):
  tau_k = 1 - (1 - base) * (cos(pi k / K') + 1) / 2. The paper writes K' = K (total steps), which
  never quite reaches 1; we use K' = K - 1 so that tau[0] = base and tau[-1] == 1.0 exactly (the
  last update then leaves the target unchanged, which is harmless). K = 1 gives [base].
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

LR_KINDS = ("constant", "cosine", "poly", "step")
POLY_POWER = 0.9  # DeepLab's "poly" policy


def lr_schedule(total_steps: int, warmup_steps: int = 0, kind: str = "constant",
                min_ratio: float = 0.0, milestones: Sequence[int] = (),
                gamma: float = 0.1) -> np.ndarray:
    """LR multipliers per step (float64, length ``total_steps``); see the module docstring."""
    total_steps, warmup_steps = int(total_steps), int(warmup_steps)
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"warmup_steps must be in [0, total_steps={total_steps}], got {warmup_steps}")
    if kind not in LR_KINDS:
        raise ValueError(f"unknown LR schedule {kind!r}; known: {list(LR_KINDS)}")
    if not 0.0 <= min_ratio <= 1.0:
        raise ValueError(f"min_ratio must be in [0, 1], got {min_ratio}")

    steps = np.arange(total_steps)
    mult = np.ones(total_steps, dtype=np.float64)

    n = total_steps - warmup_steps  # steps after warm-up
    if kind == "cosine" and n > 1:
        j = np.arange(n)
        mult[warmup_steps:] = min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + np.cos(np.pi * j / (n - 1)))
    elif kind == "poly":
        j = np.arange(n)
        mult[warmup_steps:] = min_ratio + (1.0 - min_ratio) * (1.0 - j / n) ** POLY_POWER
    elif kind == "step":
        ms = np.asarray(sorted(int(m) for m in milestones), dtype=np.int64)
        if ms.size and ms.min() < 0:
            raise ValueError(f"milestones must be >= 0, got {list(milestones)}")
        # number of milestones m with m <= i
        mult *= float(gamma) ** np.searchsorted(ms, steps, side="right")

    if warmup_steps > 0:
        mult[:warmup_steps] *= (steps[:warmup_steps] + 1) / warmup_steps
    return mult


def lr_schedule_for(optim_cfg, epochs: int, steps_per_epoch: int) -> np.ndarray:
    """``lr_schedule`` from an ``OptimConfig`` (schedule, warmup_epochs, min_lr_ratio, step_epochs,
    step_gamma), converting epochs to steps. Milestone epoch e means "decay from the first step of
    epoch e (0-based)", i.e. after e full epochs."""
    total = int(epochs) * int(steps_per_epoch)
    warmup = int(round(float(getattr(optim_cfg, "warmup_epochs", 0.0)) * steps_per_epoch))
    return lr_schedule(
        total, min(warmup, total), kind=str(getattr(optim_cfg, "schedule", "constant")),
        min_ratio=float(getattr(optim_cfg, "min_lr_ratio", 0.0)),
        milestones=[int(e) * int(steps_per_epoch) for e in getattr(optim_cfg, "step_epochs", [])],
        gamma=float(getattr(optim_cfg, "step_gamma", 0.1)))


def describe_schedule(optim_cfg, epochs: int) -> str:
    """What lr_schedule_for makes of ``optim_cfg``, in one phrase (for the report)."""
    kind, floor = str(optim_cfg.schedule), float(optim_cfg.min_lr_ratio)
    warm = float(optim_cfg.warmup_epochs)
    warm_text = f", linear warm-up {warm:g} epoch{'s' if warm != 1 else ''}" if warm else ""
    text = {"constant": "constant",
            "cosine": f"cosine per step over {epochs} epochs down to {floor:g}× lr",
            "poly": f"polynomial (power {POLY_POWER:g}) per step over {epochs} epochs down to {floor:g}× lr",
            "step": f"×{float(optim_cfg.step_gamma):g} at epochs {', '.join(str(e) for e in optim_cfg.step_epochs)}",
            }.get(kind, kind)
    return text + warm_text


def tau_schedule(total_steps: int, base: float = 0.996) -> np.ndarray:
    """BYOL target EMA rate per step: cosine from ``base`` (step 0) up to exactly 1.0 (last step)."""
    total_steps = int(total_steps)
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if not 0.0 <= base <= 1.0:
        raise ValueError(f"base must be in [0, 1], got {base}")
    if total_steps == 1:
        return np.array([float(base)])
    k = np.arange(total_steps)
    tau = 1.0 - (1.0 - base) * (np.cos(np.pi * k / (total_steps - 1)) + 1.0) / 2.0
    tau[-1] = 1.0  # cos(pi) + 1 is ~1e-16 off 0 in floating point; make the end exact
    return tau


def plot_schedules(path: str | Path, title: str = "", **named_arrays: Iterable[float]) -> Path:
    """Save a small PNG with one panel per named schedule (value vs step); returns the path.

    Uses the object-oriented Agg API (no pyplot global state), so it is safe in worker threads
    and never needs a display.
    """
    if not named_arrays:
        raise ValueError("plot_schedules needs at least one named array, e.g. lr=..., tau=...")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(named_arrays)
    fig = Figure(figsize=(5.0, 1.8 * n + 0.4), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(n, 1, squeeze=False, sharex=True)[:, 0]
    for ax, (name, values) in zip(axes, named_arrays.items()):
        values = np.asarray(list(values) if not hasattr(values, "__len__") else values, dtype=float)
        ax.plot(np.arange(len(values)), values, lw=1.5)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("step")
    if title:
        axes[0].set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


__all__ = ["lr_schedule", "lr_schedule_for", "tau_schedule", "plot_schedules", "LR_KINDS"]
