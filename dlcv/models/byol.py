"""BYOL (Grill et al. 2020, "Bootstrap Your Own Latent"), as a small module with named steps.

    online:  x -> backbone -> projector -> z -> predictor -> p
    target:  x -> target_backbone -> target_projector -> z'       (no gradient; EMA of online)
    loss  =  loss_fn(p(v1), z'(v2)) + loss_fn(p(v2), z'(v1)),   loss_fn = 2 - 2 cos, batch mean

Training step (see ``dlcv.tasks``): ``out = byol(v1, v2); out["loss"].backward(); opt.step();
byol.update_target(tau[step])`` with ``tau = dlcv.schedules.tau_schedule(total_steps)``.

Design choices (why):
* The target's parameters are registered ``nn.Parameter`` with ``requires_grad=False``: they are
  in ``state_dict`` (so checkpoints resume the target too), ``build_optimizer`` skips them, and
  ``DistributedDataParallel`` over the whole BYOL module ignores them, so
  ``find_unused_parameters=False`` works.
* The target follows the module's train/eval mode, i.e. during training it normalises with BATCH
  statistics like the online network (the paper's reference code runs the target with
  ``is_training=True``). With ``SyncBatchNorm`` both nets see global-batch statistics.
* Target BN buffers (running_mean/var, num_batches_tracked) are COPIED from the online network at
  every ``update_target``, not EMA-averaged: in train mode they never affect the loss, and the
  online statistics are the best-calibrated ones if anyone evaluates the target in eval mode.
  Only the online backbone is exported (``backbone_state_dict``).
* The two views go through the online network in two separate forward passes (as in the paper's
  code), so each view's BN statistics are its own, not a mix of both views.
* The loss is computed in float32 even under autocast (normalising 256-d vectors in bf16 is lossy).
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def mlp(in_dim: int, hidden_dim: int = 4096, out_dim: int = 256) -> nn.Sequential:
    """BYOL projector/predictor: Linear - BatchNorm1d - ReLU - Linear (paper, section 3.3)."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim),
        nn.BatchNorm1d(hidden_dim),
        nn.ReLU(inplace=True),
        nn.Linear(hidden_dim, out_dim),
    )


class BYOL(nn.Module):
    def __init__(self, backbone: nn.Module, feature_dim: int, hidden_dim: int = 4096,
                 proj_dim: int = 256):
        super().__init__()
        self.feature_dim, self.hidden_dim, self.proj_dim = int(feature_dim), int(hidden_dim), int(proj_dim)
        # online network
        self.backbone = backbone
        self.projector = mlp(feature_dim, hidden_dim, proj_dim)
        self.predictor = mlp(proj_dim, hidden_dim, proj_dim)
        # target network: same initial weights, never trained by gradient
        self.target_backbone = copy.deepcopy(backbone)
        self.target_projector = copy.deepcopy(self.projector)
        for p in self._target_params():
            p.requires_grad_(False)

    # ---- parts -------------------------------------------------------------------------------
    def _online_modules(self) -> list[nn.Module]:
        return [self.backbone, self.projector]  # the parts that have a target twin

    def _target_modules(self) -> list[nn.Module]:
        return [self.target_backbone, self.target_projector]

    def _target_params(self) -> list[nn.Parameter]:
        return [p for m in self._target_modules() for p in m.parameters()]

    # ---- named steps -------------------------------------------------------------------------
    def online(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(projection z, prediction p) of the online network."""
        z = self.projector(self.backbone(x))
        return z, self.predictor(z)

    @torch.no_grad()
    def target(self, x: Tensor) -> Tensor:
        """Projection z' of the target network (no graph is built)."""
        return self.target_projector(self.target_backbone(x))

    @staticmethod
    def loss_fn(p: Tensor, z: Tensor) -> Tensor:
        """Mean over the batch of 2 - 2 cos(p, z) = ||p/|p| - z/|z|||^2; z is detached here."""
        p = F.normalize(p.float(), dim=-1)
        z = F.normalize(z.detach().float(), dim=-1)
        return (2.0 - 2.0 * (p * z).sum(dim=-1)).mean()

    def forward(self, v1: Tensor, v2: Tensor) -> dict[str, Tensor]:
        """Symmetrised BYOL loss for two batches of views of the same images."""
        z1, p1 = self.online(v1)
        z2, p2 = self.online(v2)
        t1, t2 = self.target(v1), self.target(v2)
        loss = self.loss_fn(p1, t2) + self.loss_fn(p2, t1)
        return {"loss": loss, "online_z": z1.detach()}

    @torch.no_grad()
    def update_target(self, tau: float) -> None:
        """target <- tau * target + (1 - tau) * online (parameters); target buffers <- online."""
        tau = float(tau)
        online = [p for m in self._online_modules() for p in m.parameters()]
        target = self._target_params()
        if len(online) != len(target):
            raise RuntimeError("online and target networks no longer have the same parameters")
        if online:
            torch._foreach_mul_(target, tau)
            torch._foreach_add_(target, [p.detach() for p in online], alpha=1.0 - tau)
        for om, tm in zip(self._online_modules(), self._target_modules()):
            for ob, tb in zip(om.buffers(), tm.buffers(), strict=True):
                tb.copy_(ob)


def _unwrap(module: nn.Module) -> nn.Module:
    """Strip DistributedDataParallel / torch.compile / Lightning-style wrappers."""
    while True:
        if hasattr(module, "_orig_mod"):
            module = module._orig_mod
        elif isinstance(module, nn.parallel.DistributedDataParallel):
            module = module.module
        else:
            return module


@torch.no_grad()
def collapse_std(z: Tensor) -> float:
    """Std over the batch of L2-normalised outputs, averaged over dimensions (SimSiam, sec. 4.1).

    ~0 when every sample maps to the same direction (collapse); ~1/sqrt(d) for healthy,
    spread-out d-dimensional outputs.
    """
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"collapse_std needs a (N>=2, d) batch, got shape {tuple(z.shape)}")
    return float(F.normalize(z.detach().float(), dim=1).std(dim=0).mean())


def backbone_state_dict(byol: nn.Module) -> dict[str, Tensor]:
    """The ONLINE backbone's weights in its own key format (for a torchvision resnet50 with
    ``fc = nn.Identity()``: ``conv1.weight``, ``layer1.0.bn1.running_mean``, ... and no ``fc.*``),
    so ``resnet50(weights=None).load_state_dict(sd, strict=False)`` misses only fc.weight/fc.bias.

    Accepts the BYOL module itself or a DDP/compiled wrapper of it. Tensors are detached CPU copies.
    """
    backbone = _unwrap(_unwrap(byol).backbone)
    out = {}
    for k, v in backbone.state_dict().items():
        k = k.replace("_orig_mod.", "")
        out[k] = v.detach().to("cpu", copy=True)
    return out


__all__ = ["mlp", "BYOL", "collapse_std", "backbone_state_dict"]
