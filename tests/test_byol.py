import math
import os
import socket
import time
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
from torch import nn

from dlcv.models.byol import BYOL, backbone_state_dict, collapse_std, mlp
from dlcv.optim import build_optimizer


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one intra-op thread is faster, and immune to a busy shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _tiny_backbone() -> nn.Module:
    """(N,3,H,W) -> (N,8): conv-BN-ReLU-conv-BN-ReLU-pool, enough to have BN buffers."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten())


def _tiny_byol(seed: int = 0) -> BYOL:
    torch.manual_seed(seed)
    return BYOL(_tiny_backbone(), feature_dim=8, hidden_dim=32, proj_dim=16)


def _views(n=4, size=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g), torch.randn(n, 3, size, size, generator=g)


# ---------------------------------------------------------------------------------------------
def test_loss_on_known_vectors():
    p = torch.tensor([[1.0, 0.0]])
    assert BYOL.loss_fn(p, torch.tensor([[2.0, 0.0]])).item() == pytest.approx(0.0, abs=1e-7)
    assert BYOL.loss_fn(p, torch.tensor([[-3.0, 0.0]])).item() == pytest.approx(4.0)
    assert BYOL.loss_fn(p, torch.tensor([[0.0, 5.0]])).item() == pytest.approx(2.0)
    # mean over the batch
    pb = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    zb = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0]])
    assert BYOL.loss_fn(pb, zb).item() == pytest.approx((0 + 4 + 2) / 3)
    # z is detached inside: no gradient flows to it
    z = torch.randn(3, 4, requires_grad=True)
    q = torch.randn(3, 4, requires_grad=True)
    BYOL.loss_fn(q, z).backward()
    assert z.grad is None and q.grad is not None
    # computed in float32 even for half inputs
    assert BYOL.loss_fn(q.detach().bfloat16(), z.detach().bfloat16()).dtype == torch.float32


def test_mlp_and_widths_configurable():
    head = mlp(10, 20, 5)
    assert [type(m) for m in head] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert head(torch.randn(3, 10)).shape == (3, 5)
    byol = BYOL(_tiny_backbone(), feature_dim=8, hidden_dim=24, proj_dim=12)
    assert byol.projector[0].in_features == 8 and byol.projector[0].out_features == 24
    assert byol.projector[3].out_features == 12
    assert byol.predictor[0].in_features == 12 and byol.predictor[3].out_features == 12
    assert byol.target_projector[3].out_features == 12
    default = mlp(2048)
    assert default[0].out_features == 4096 and default[3].out_features == 256


def test_forward_outputs_and_symmetry():
    byol = _tiny_byol()
    v1, v2 = _views()
    out = byol(v1, v2)
    assert out["loss"].ndim == 0 and 0.0 <= out["loss"].item() <= 8.0
    assert out["online_z"].shape == (4, 16) and not out["online_z"].requires_grad
    swapped = byol(v2, v1)["loss"]
    assert torch.allclose(out["loss"], swapped, atol=1e-6)


def test_gradients_reach_online_only():
    byol = _tiny_byol()
    byol(*_views())["loss"].backward()
    for name, p in byol.named_parameters():
        if name.startswith("target_"):
            assert not p.requires_grad and p.grad is None, name
        else:
            assert p.requires_grad and p.grad is not None, name
    # the optimizer never sees the target
    opt = build_optimizer(SimpleNamespace(name="lars", lr=0.1, weight_decay=1e-6, momentum=0.9,
                                          betas=[0.9, 0.999], lars_eta=0.001), byol.named_parameters())
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert in_opt == {id(p) for n, p in byol.named_parameters() if not n.startswith("target_")}


def test_target_starts_as_copy_and_uses_batch_stats_in_train_mode():
    byol = _tiny_byol()
    for (no, po), (nt, pt) in zip(byol.backbone.named_parameters(), byol.target_backbone.named_parameters()):
        assert no == nt and torch.equal(po, pt) and po is not pt
    assert byol.target_backbone.training  # follows the module's mode: batch statistics
    v1, _ = _views()
    z_online, _ = byol.online(v1)
    assert torch.allclose(byol.target(v1), z_online, atol=1e-6)
    byol.eval()
    assert not byol.target_backbone.training


def _perturb_online(byol, seed=3):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in (byol.backbone, byol.projector):
            for p in m.parameters():
                p.add_(torch.randn(p.shape, generator=g))
            for b in m.buffers():
                if b.is_floating_point():
                    b.add_(torch.rand(b.shape, generator=g))
                else:
                    b.add_(7)


def test_update_target_is_exact_ema_and_copies_buffers():
    byol = _tiny_byol()
    _perturb_online(byol)
    tau = 0.9
    online = [p.detach().clone() for m in (byol.backbone, byol.projector) for p in m.parameters()]
    target = [p.detach().clone() for m in (byol.target_backbone, byol.target_projector) for p in m.parameters()]
    byol.update_target(tau)
    new = [p for m in (byol.target_backbone, byol.target_projector) for p in m.parameters()]
    assert len(new) == len(online) > 0
    for t_new, t, o in zip(new, target, online):
        assert torch.allclose(t_new, tau * t + (1 - tau) * o, rtol=0, atol=1e-6)
        assert not t_new.requires_grad
    # BN buffers: copied from the online network (documented choice)
    for ob, tb in zip(byol.backbone.buffers(), byol.target_backbone.buffers()):
        assert torch.equal(ob, tb)
    for ob, tb in zip(byol.projector.buffers(), byol.target_projector.buffers()):
        assert torch.equal(ob, tb)
    # the predictor has no target twin and is untouched
    assert all(p.requires_grad for p in byol.predictor.parameters())


def test_update_target_tau_one_moves_nothing_and_tau_zero_copies():
    byol = _tiny_byol()
    _perturb_online(byol)
    before = {k: v.clone() for k, v in byol.state_dict().items() if k.startswith("target_")}
    byol.update_target(1.0)
    for k, v in byol.named_parameters():
        if k.startswith("target_"):
            assert torch.equal(v, before[k]), k
    byol.update_target(0.0)
    for (_, o), (_, t) in zip(byol.backbone.named_parameters(), byol.target_backbone.named_parameters()):
        assert torch.equal(o, t)


def test_train_step_changes_online_and_pulls_target():
    byol = _tiny_byol()
    opt = torch.optim.SGD([p for p in byol.parameters() if p.requires_grad], lr=0.5)
    t0 = [p.clone() for p in byol.target_backbone.parameters()]
    byol(*_views())["loss"].backward()
    opt.step()
    byol.update_target(0.99)
    for o, t, t_old in zip(byol.backbone.parameters(), byol.target_backbone.parameters(), t0):
        assert torch.allclose(t, 0.99 * t_old + 0.01 * o, atol=1e-6)


def test_collapse_std():
    z = torch.randn(1, 64).repeat(32, 1)
    assert collapse_std(z) < 1e-5
    d = 64
    z = torch.randn(2048, d, generator=torch.Generator().manual_seed(0))
    assert collapse_std(z) == pytest.approx(1 / math.sqrt(d), rel=0.2)
    with pytest.raises(ValueError):
        collapse_std(torch.randn(1, 4))


def test_resnet18_backbone_step():
    from torchvision.models import resnet18

    torch.manual_seed(0)
    bb = resnet18(weights=None)
    bb.fc = nn.Identity()
    byol = BYOL(bb, feature_dim=512, hidden_dim=64, proj_dim=32)
    v1, v2 = _views(n=2, size=32)
    out = byol(v1, v2)
    out["loss"].backward()
    assert out["online_z"].shape == (2, 32)
    assert all(p.grad is not None for p in byol.backbone.parameters())


def test_backbone_state_dict_loads_into_torchvision_resnet50():
    from torchvision.models import resnet50

    torch.manual_seed(0)
    bb = resnet50(weights=None)
    bb.fc = nn.Identity()
    byol = BYOL(bb, feature_dim=2048, hidden_dim=64, proj_dim=32)
    byol(*_views(n=2, size=64))  # one train-mode forward: running stats move away from init
    with torch.no_grad():  # make online and target differ so we can tell which one is exported
        byol.backbone.conv1.weight.add_(1.0)
    sd = backbone_state_dict(byol)
    assert "conv1.weight" in sd and "layer1.0.bn1.running_mean" in sd
    assert not any(k.startswith(("fc.", "target_", "backbone.", "module.")) for k in sd)
    assert all(v.device.type == "cpu" for v in sd.values())
    fresh = resnet50(weights=None)
    res = fresh.load_state_dict(sd, strict=False)
    assert sorted(res.missing_keys) == ["fc.bias", "fc.weight"]
    assert res.unexpected_keys == []
    assert torch.equal(fresh.conv1.weight, byol.backbone.conv1.weight)  # the ONLINE backbone
    assert torch.equal(fresh.layer1[0].bn1.running_mean, byol.backbone.layer1[0].bn1.running_mean)
    assert not torch.equal(fresh.layer1[0].bn1.running_mean, torch.zeros(64))
    # exported tensors are copies: training on does not change a saved dict
    with torch.no_grad():
        byol.backbone.conv1.weight.zero_()
    assert not torch.equal(sd["conv1.weight"], byol.backbone.conv1.weight)


# ---------------------------------------------------------------------------------------------
# 2-process DDP on CPU == one process on the full batch.
#
# torch.nn.SyncBatchNorm only runs on accelerators (its forward raises for CPU tensors and its
# kernels such as batch_norm_stats have no CPU implementation), so the CPU variant swaps in
# _CpuSyncBN: the same global-batch statistics, built from a differentiable all_reduce, so the
# backward sums the statistic gradients over ranks exactly as SyncBatchNorm's backward does. The
# CUDA variant (skipped without a GPU) uses the real convert_sync_batchnorm, two ranks on one GPU
# over gloo.

_DDP_LR, _DDP_TAUS = 0.2, (0.9, 0.95)


class _CpuSyncBN(nn.modules.batchnorm._BatchNorm):
    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {x.dim()}-D")

    def forward(self, x):
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        import torch.distributed.nn.functional as dist_fn

        c = x.shape[1]
        dims = [0] + list(range(2, x.dim()))
        stats = torch.cat([x.sum(dims), (x * x).sum(dims), x.new_full((1,), x.numel() // c)])
        stats = dist_fn.all_reduce(stats)  # SUM over ranks, differentiable
        n = stats[-1]
        mean, var = stats[:c] / n, stats[c:2 * c] / n - (stats[:c] / n) ** 2
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            self.running_mean.mul_(1 - self.momentum).add_(mean.detach(), alpha=self.momentum)
            unbiased = var.detach() * n / (n - 1)
            self.running_var.mul_(1 - self.momentum).add_(unbiased, alpha=self.momentum)
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        return y * self.weight.view(shape) + self.bias.view(shape)


def _to_cpu_sync_bn(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        new = _CpuSyncBN(module.num_features, module.eps, module.momentum, module.affine,
                         module.track_running_stats)
        new.load_state_dict(module.state_dict())
        for p_new, p_old in zip(new.parameters(), module.parameters()):
            p_new.requires_grad_(p_old.requires_grad)
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, _to_cpu_sync_bn(child))
    return module


def _ddp_steps(byol, batches, world: int, rank: int, device):
    """Two SGD(momentum) steps + target updates on this rank's share of each global batch."""
    opt = torch.optim.SGD([p for p in byol.parameters() if p.requires_grad], lr=_DDP_LR, momentum=0.9)
    inner = byol.module if isinstance(byol, nn.parallel.DistributedDataParallel) else byol
    for (v1, v2), tau in zip(batches, _DDP_TAUS):
        n = v1.shape[0] // world
        part = slice(rank * n, (rank + 1) * n)
        opt.zero_grad(set_to_none=True)
        byol(v1[part].to(device), v2[part].to(device))["loss"].backward()
        opt.step()
        inner.update_target(tau)
    return inner


def _ddp_worker(rank: int, world: int, port: int, tmp: str, use_cuda: bool):
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        blob = torch.load(os.path.join(tmp, "init.pt"), weights_only=True)
        byol = _tiny_byol()
        byol.load_state_dict(blob["state"])
        if use_cuda:
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
            device = torch.device("cuda", 0)
            byol = nn.SyncBatchNorm.convert_sync_batchnorm(byol).to(device)
            ddp = nn.parallel.DistributedDataParallel(byol, device_ids=[0], find_unused_parameters=False)
        else:
            device = torch.device("cpu")
            byol = _to_cpu_sync_bn(byol)
            ddp = nn.parallel.DistributedDataParallel(byol, find_unused_parameters=False)
        inner = _ddp_steps(ddp, blob["batches"], world, rank, device)
        if rank == 0:
            torch.save({k: v.cpu() for k, v in inner.state_dict().items()}, os.path.join(tmp, "ddp.pt"))
            torch.save(backbone_state_dict(ddp), os.path.join(tmp, "ddp_backbone.pt"))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("use_cuda", [
    False,
    pytest.param(True, marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")),
])
def test_ddp_two_ranks_match_single_process_full_batch(tmp_path, monkeypatch, use_cuda):
    import torch.multiprocessing as mp

    world, global_batch = 2, 8
    g = torch.Generator().manual_seed(5)
    batches = [(torch.randn(global_batch, 3, 12, 12, generator=g),
                torch.randn(global_batch, 3, 12, 12, generator=g)) for _ in _DDP_TAUS]
    init = _tiny_byol(seed=11).state_dict()
    torch.save({"state": init, "batches": batches}, tmp_path / "init.pt")

    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
    ctx = mp.spawn(_ddp_worker, args=(world, _free_port(), str(tmp_path), use_cuda), nprocs=world,
                   join=False)
    deadline = time.monotonic() + 120
    while not ctx.join(timeout=2):
        if time.monotonic() > deadline:
            for p in ctx.processes:  # only the two workers this test started
                if p.is_alive():
                    p.kill()
            pytest.fail("DDP workers did not finish within 120 s")

    ref = _tiny_byol()
    ref.load_state_dict(init)
    ref = _ddp_steps(ref, batches, world=1, rank=0, device=torch.device("cpu"))
    got = torch.load(tmp_path / "ddp.pt", weights_only=True)
    expected = ref.state_dict()
    assert got.keys() == expected.keys()
    atol, rtol = (1e-5, 1e-4) if use_cuda else (1e-5, 1e-5)
    for k, v in expected.items():
        if v.is_floating_point():
            assert torch.allclose(got[k], v, atol=atol, rtol=rtol), (k, (got[k] - v).abs().max())
        else:
            assert torch.equal(got[k], v), k
    # training really moved things, and both online and target were compared
    assert not torch.allclose(expected["backbone.0.weight"], init["backbone.0.weight"])
    assert not torch.allclose(expected["target_backbone.0.weight"], init["target_backbone.0.weight"])
    assert any(k.startswith("target_projector.") for k in got)
    exported = torch.load(tmp_path / "ddp_backbone.pt", weights_only=True)
    assert exported.keys() == ref.backbone.state_dict().keys()
