"""Optimizers: LARS (as used by SimCLR/BYOL) and ``build_optimizer`` from an ``OptimConfig``.

Weight-decay rule (standard practice since Goyal et al. 2017 / the BYOL paper): for AdamW, SGD and
LARS, parameters with ndim <= 1 (biases, BatchNorm/LayerNorm weights and biases) get NO weight
decay; LARS additionally skips its trust-ratio adaptation for them. Plain Adam keeps the seed's
behaviour: one group, ``weight_decay`` applied to everything (the seed uses 0).
"""
from __future__ import annotations

from typing import Callable, Iterable, Optional, Sequence

import torch
from torch import nn


class LARS(torch.optim.Optimizer):
    """LARS (You et al. 2017) in the form SimCLR and BYOL use it.

    Per parameter tensor w with gradient g, for groups with ``lars_exclude=False``::

        u     = g + weight_decay * w
        ratio = eta * ||w|| / ||u||     (1 when ||w|| == 0 or ||u|| == 0)
        buf   = momentum * buf + ratio * u
        w    -= lr * buf

    For groups with ``lars_exclude=True`` (biases and norm parameters, see
    ``param_groups_for_lars``) both the decay and the ratio are skipped: plain momentum SGD,
    ``buf = momentum * buf + g``. The flag wins over the group's ``weight_decay`` value.

    The learning rate multiplies the momentum buffer on the way out (PyTorch SGD convention, as in
    facebookresearch/barlowtwins and solo-learn), not on the way in as in BYOL's optax chain; the
    two are identical for a constant LR and differ only slightly while a schedule moves it.
    The ratio is computed with ``torch.where`` so a step never forces a GPU->CPU sync.
    """

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 eta: float = 0.001, lars_exclude: bool = False):
        if lr < 0:
            raise ValueError(f"invalid lr {lr}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"invalid momentum {momentum}")
        if weight_decay < 0:
            raise ValueError(f"invalid weight_decay {weight_decay}")
        if eta <= 0:
            raise ValueError(f"invalid eta {eta}")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta,
                        lars_exclude=lars_exclude)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            exclude = bool(group["lars_exclude"])
            wd, eta, mom, lr = group["weight_decay"], group["eta"], group["momentum"], group["lr"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("LARS does not support sparse gradients")
                update = p.grad
                if not exclude:
                    if wd != 0:
                        update = update.add(p, alpha=wd)
                    w_norm = torch.linalg.vector_norm(p)
                    u_norm = torch.linalg.vector_norm(update)
                    ratio = torch.where((w_norm > 0) & (u_norm > 0), eta * w_norm / u_norm,
                                        torch.ones_like(w_norm))
                    update = update.mul(ratio)
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = update.detach().clone()  # buf_0 = 0 -> buf_1 = u
                else:
                    state["momentum_buffer"].mul_(mom).add_(update)
                p.add_(state["momentum_buffer"], alpha=-lr)
        return loss


def _named(named_params) -> list[tuple[str, nn.Parameter]]:
    if isinstance(named_params, nn.Module):
        named_params = named_params.named_parameters()
    return list(named_params)


def split_decay(named_params) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(decay, no_decay): trainable params with ndim >= 2 vs ndim <= 1 (biases, norm layers)."""
    decay, no_decay = [], []
    for _, p in _named(named_params):
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return decay, no_decay


def param_groups_for_lars(named_params, weight_decay: float) -> list[dict]:
    """Two LARS groups: weights (decay + trust ratio) and biases/norm params (``lars_exclude``).

    Only trainable parameters are kept; empty groups are dropped.
    """
    decay, no_decay = split_decay(named_params)
    groups = [
        {"params": decay, "weight_decay": float(weight_decay), "lars_exclude": False, "name": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "lars_exclude": True, "name": "no_decay"},
    ]
    return [g for g in groups if g["params"]]


def _decay_groups(named_params, weight_decay: float) -> list[dict]:
    decay, no_decay = split_decay(named_params)
    groups = [{"params": decay, "weight_decay": float(weight_decay), "name": "decay"},
              {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"}]
    return [g for g in groups if g["params"]]


def layerwise_lr_scales(cfg, names: Sequence[str], layer_id: Optional[Callable[[str], tuple]] = None,
                        is_head: Callable[[str], bool] = lambda n: n.startswith("head.")) -> dict[str, float]:
    """name -> its LR as a multiple of ``cfg.lr``: 1 for the head, ``backbone_lr_scale`` for the rest,
    times ``layer_decay ** depth`` (layer-wise LR decay, as BEiT / ConvNeXt fine-tune).

    ``layer_id(name)`` orders the parameters bottom-up (stem lowest, the head highest; equal ids
    are one layer); depth = how many distinct layers lie above the parameter's, over ALL `names`
    (pass frozen parameters too: a partly frozen model keeps its architectural depths).
    """
    decay, backbone = float(getattr(cfg, "layer_decay", 1.0)), float(getattr(cfg, "backbone_lr_scale", 1.0))
    if not 0.0 < decay <= 1.0 or backbone < 0.0:
        raise ValueError(f"optim.layer_decay must be in (0, 1] and optim.backbone_lr_scale >= 0, "
                         f"got {decay} and {backbone}")
    depth = dict.fromkeys(names, 0)
    if decay != 1.0:
        if layer_id is None:
            raise ValueError("optim.layer_decay needs a model with a layer map (ModelSpec.layer_id)")
        ids = {n: layer_id(n) for n in names}
        rank = {i: r for r, i in enumerate(sorted(set(ids.values()), reverse=True))}
        depth = {n: rank[ids[n]] for n in names}
    return {n: (1.0 if is_head(n) else backbone) * decay ** depth[n] for n in names}


def _scaled(groups: list[dict], lr: float, scales: Optional[dict[int, float]]) -> list[dict]:
    """Each group split by the LR multiplier of its parameters (keyed by id), with lr * scale as its
    own lr; the largest LR first (so a log of param_groups[0] shows the head's). A parameter with
    multiplier 0 is left out (it would never move)."""
    if scales is None:
        return groups
    out = []
    for g in groups:
        by_scale: dict[float, list] = {}
        for p in g["params"]:
            by_scale.setdefault(scales[id(p)], []).append(p)
        out += [dict(g, params=ps, lr=lr * sc, lr_scale=sc, name=f"{g['name']} x{sc:.4g}")
                for sc, ps in by_scale.items() if sc > 0]
    return sorted(out, key=lambda g: -g["lr_scale"])


OPTIMIZERS = ("adam", "adamw", "sgd", "lars")


def build_optimizer(cfg, named_params: Iterable[tuple[str, nn.Parameter]] | nn.Module,
                    lr_scales: Optional[dict[str, float]] = None) -> torch.optim.Optimizer:
    """Optimizer from ``cfg`` (name, lr, weight_decay, momentum, nesterov, betas, lars_eta).

    ``named_params``: ``model.named_parameters()`` (or the module itself). Frozen parameters
    (requires_grad False, e.g. BYOL's target network or a frozen backbone) are never handed to the
    optimizer, so they get neither updates nor weight decay nor optimizer state.
    ``lr_scales`` (name -> multiple of lr, e.g. from ``layerwise_lr_scales``): the parameter groups
    are split further by multiplier, each with its own lr; an LR schedule (LambdaLR) multiplies
    every group's initial lr by the same factor, so their ratios hold at every step.
    """
    named = [(n, p) for n, p in _named(named_params) if p.requires_grad]
    if not named:
        raise ValueError("nothing to train: every parameter has requires_grad=False")
    by_id = {id(p): lr_scales[n] for n, p in named} if lr_scales is not None else None
    name = str(cfg.name).lower()
    lr = float(cfg.lr)
    wd = float(getattr(cfg, "weight_decay", 0.0))
    momentum = float(getattr(cfg, "momentum", 0.9))
    betas = tuple(float(b) for b in getattr(cfg, "betas", (0.9, 0.999)))
    if name == "adam":
        # seed behaviour: one group, decay (normally 0) on everything
        params = [p for _, p in named]
        groups = params if by_id is None else _scaled([{"params": params, "name": "all"}], lr, by_id)
        return torch.optim.Adam(groups, lr=lr, betas=betas, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(_scaled(_decay_groups(named, wd), lr, by_id), lr=lr, betas=betas)
    if name == "sgd":
        nesterov = bool(getattr(cfg, "nesterov", False))
        return torch.optim.SGD(_scaled(_decay_groups(named, wd), lr, by_id), lr=lr, momentum=momentum,
                               nesterov=nesterov)
    if name == "lars":
        return LARS(_scaled(param_groups_for_lars(named, wd), lr, by_id), lr=lr, momentum=momentum,
                    eta=float(getattr(cfg, "lars_eta", 0.001)))
    raise ValueError(f"unknown optimizer {cfg.name!r}; known: {list(OPTIMIZERS)}")


def describe_optimizer(cfg) -> str:
    """What build_optimizer makes of ``cfg``, in one phrase (for the report)."""
    name = str(cfg.name).lower()
    parts = [f"lr {float(cfg.lr):g}"]
    if name in ("adam", "adamw"):
        parts.append("betas " + "/".join(f"{float(b):g}" for b in cfg.betas))
    if name in ("sgd", "lars"):
        nesterov = name == "sgd" and bool(getattr(cfg, "nesterov", False))
        parts.append(f"{'Nesterov ' if nesterov else ''}momentum {float(cfg.momentum):g}")
    if cfg.weight_decay:
        rule = "on every parameter" if name == "adam" else "none on biases and norm weights"
        parts.append(f"weight decay {float(cfg.weight_decay):g} ({rule})")
    if name == "lars":
        parts.append(f"trust coefficient {float(cfg.lars_eta):g}, no adaptation on biases and norm weights")
    parts += _describe_lr_scales(cfg)
    label = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "lars": "LARS"}.get(name, name)
    return f"{label} ({', '.join(parts)})"


def _describe_lr_scales(cfg) -> list[str]:
    backbone, decay = float(getattr(cfg, "backbone_lr_scale", 1.0)), float(getattr(cfg, "layer_decay", 1.0))
    parts = []
    if backbone != 1.0:
        parts.append(f"lr on the head, {backbone:g}× lr on the backbone")
    if decay != 1.0:
        parts.append(f"layer-wise LR decay {decay:g} (×{decay:g} per layer below the head)")
    return parts


__all__ = ["LARS", "param_groups_for_lars", "split_decay", "build_optimizer", "describe_optimizer",
           "layerwise_lr_scales", "OPTIMIZERS"]
