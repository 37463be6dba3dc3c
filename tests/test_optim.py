import copy
import io
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from dlcv.optim import LARS, build_optimizer, param_groups_for_lars


def _cfg(name, **kw):
    base = dict(name=name, lr=0.1, weight_decay=0.01, momentum=0.9, betas=[0.8, 0.99], lars_eta=0.001)
    base.update(kw)
    return SimpleNamespace(**base)


def _layer():
    lin = nn.Linear(2, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[3.0, 0.0], [0.0, 4.0]]))  # ||W|| = 5
        lin.bias.copy_(torch.tensor([1.0, -1.0]))
    return lin


def _set_grads(lin, gw, gb):
    lin.weight.grad = torch.tensor(gw)
    lin.bias.grad = torch.tensor(gb)


def test_lars_two_steps_match_hand_computation():
    lr, wd, eta, mom = 0.5, 0.1, 0.01, 0.9
    lin = _layer()
    opt = LARS(param_groups_for_lars(lin.named_parameters(), wd), lr=lr, momentum=mom, eta=eta)
    assert [g["lars_exclude"] for g in opt.param_groups] == [False, True]

    # step 1: W = diag(3, 4), g = [[1, 0], [0, 0]]
    _set_grads(lin, [[1.0, 0.0], [0.0, 0.0]], [0.5, 0.5])
    opt.step()
    u1 = [[1.0 + wd * 3, 0.0], [0.0, wd * 4]]  # [[1.3, 0], [0, 0.4]]
    r1 = eta * 5.0 / math.sqrt(1.3 ** 2 + 0.4 ** 2)
    buf1 = [[r1 * x for x in row] for row in u1]
    w1 = [[3.0 - lr * buf1[0][0], 0.0], [0.0, 4.0 - lr * buf1[1][1]]]
    assert torch.allclose(lin.weight, torch.tensor(w1), atol=1e-7)
    # bias: excluded -> plain momentum SGD, no decay, no ratio
    assert torch.allclose(lin.bias, torch.tensor([1.0 - lr * 0.5, -1.0 - lr * 0.5]), atol=1e-7)

    # step 2: momentum accumulates ratio-scaled updates
    _set_grads(lin, [[0.0, 2.0], [0.0, 0.0]], [1.0, -1.0])
    opt.step()
    u2 = [[wd * w1[0][0], 2.0], [0.0, wd * w1[1][1]]]
    w_norm = math.sqrt(w1[0][0] ** 2 + w1[1][1] ** 2)
    u_norm = math.sqrt(sum(x * x for row in u2 for x in row))
    r2 = eta * w_norm / u_norm
    w2 = [[w1[i][j] - lr * (mom * buf1[i][j] + r2 * u2[i][j]) for j in range(2)] for i in range(2)]
    assert torch.allclose(lin.weight, torch.tensor(w2), atol=1e-6)
    b1 = [1.0 - lr * 0.5, -1.0 - lr * 0.5]
    bufb = [mom * 0.5 + 1.0, mom * 0.5 - 1.0]
    assert torch.allclose(lin.bias, torch.tensor([b1[0] - lr * bufb[0], b1[1] - lr * bufb[1]]), atol=1e-6)


def test_lars_excluded_params_are_plain_momentum_sgd():
    torch.manual_seed(0)
    a, b = nn.Linear(3, 4), nn.Linear(3, 4)
    b.load_state_dict(a.state_dict())
    # exclusion wins even if the group carries a weight decay
    lars = LARS([{"params": list(a.parameters()), "lars_exclude": True, "weight_decay": 0.5}],
                lr=0.1, momentum=0.9)
    sgd = torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9)
    for _ in range(3):
        x = torch.randn(5, 3)
        for m, o in ((a, lars), (b, sgd)):
            o.zero_grad()
            m(x).pow(2).sum().backward()
            o.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=1e-6)


def test_lars_trust_ratio_is_one_for_zero_norms():
    w = nn.Parameter(torch.zeros(2, 2))
    opt = LARS([w], lr=0.1, momentum=0.0, weight_decay=0.1, eta=0.001)
    w.grad = torch.ones(2, 2)
    opt.step()
    assert torch.allclose(w, torch.full((2, 2), -0.1))  # ||w|| = 0 -> ratio 1
    v = nn.Parameter(torch.ones(2, 2))
    opt = LARS([v], lr=0.1, momentum=0.0, weight_decay=0.0)
    v.grad = torch.zeros(2, 2)
    opt.step()
    assert torch.equal(v.detach(), torch.ones(2, 2))  # ||g|| = 0 -> no nan, no move


def test_lars_state_dict_round_trip():
    torch.manual_seed(0)
    m1 = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    o1 = LARS(param_groups_for_lars(m1.named_parameters(), 1e-4), lr=0.2)
    x = torch.randn(6, 4)
    m1(x).sum().backward()
    o1.step()
    m2 = copy.deepcopy(m1)
    o2 = LARS(param_groups_for_lars(m2.named_parameters(), 1e-4), lr=0.2)
    # through bytes, as a checkpoint does (weights_only: groups hold only plain values)
    buf = io.BytesIO()
    torch.save(o1.state_dict(), buf)
    buf.seek(0)
    o2.load_state_dict(torch.load(buf, weights_only=True))
    assert len(o2.state) == len(list(m2.parameters()))
    for m, o in ((m1, o1), (m2, o2)):
        o.zero_grad()
        m(x).pow(2).sum().backward()
        o.step()
    for a, b in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(a, b)
    sd = o2.state_dict()
    assert all("momentum_buffer" in s for s in sd["state"].values())
    assert [g["lars_exclude"] for g in sd["param_groups"]] == [False, True]


def test_param_groups_for_lars_split():
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))
    m[0].bias.requires_grad_(False)
    groups = param_groups_for_lars(m.named_parameters(), 1e-6)
    assert [len(g["params"]) for g in groups] == [2, 3]  # conv.w, lin.w | bn.w, bn.b, lin.b
    assert groups[0]["weight_decay"] == 1e-6 and groups[1]["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in groups[0]["params"])
    assert all(p.ndim <= 1 for p in groups[1]["params"])
    only_bias = [("b", nn.Parameter(torch.zeros(3)))]
    assert len(param_groups_for_lars(only_bias, 0.1)) == 1  # empty groups dropped


@pytest.mark.parametrize("name,cls", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW),
                                      ("sgd", torch.optim.SGD), ("lars", LARS), ("LARS", LARS)])
def test_build_optimizer_classes(name, cls):
    m = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    opt = build_optimizer(_cfg(name), m.named_parameters())
    assert type(opt) is cls
    n_opt = sum(len(g["params"]) for g in opt.param_groups)
    assert n_opt == len(list(m.parameters()))
    assert all(g["lr"] == 0.1 for g in opt.param_groups)
    if name == "adam":  # seed behaviour: one group, decay on everything
        assert len(opt.param_groups) == 1 and opt.param_groups[0]["weight_decay"] == 0.01
        assert opt.param_groups[0]["betas"] == (0.8, 0.99)
    else:  # biases / norm params excluded from decay
        decay, no_decay = opt.param_groups
        assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
        assert all(p.ndim >= 2 for p in decay["params"])
        assert all(p.ndim <= 1 for p in no_decay["params"])
    if name == "sgd":
        assert opt.param_groups[0]["momentum"] == 0.9
    if name.lower() == "lars":
        assert opt.param_groups[0]["eta"] == 0.001
        assert [g["lars_exclude"] for g in opt.param_groups] == [False, True]


def test_build_optimizer_skips_frozen_and_errors_when_nothing_trains():
    m = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2))
    for p in m[0].parameters():
        p.requires_grad_(False)
    for name in ("adam", "adamw", "sgd", "lars"):
        opt = build_optimizer(_cfg(name), m)  # a module works too
        ids = {id(p) for g in opt.param_groups for p in g["params"]}
        assert ids == {id(m[1].weight), id(m[1].bias)}
    for p in m.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="nothing to train"):
        build_optimizer(_cfg("adam"), m.named_parameters())
    with pytest.raises(ValueError, match="unknown optimizer"):
        build_optimizer(_cfg("rmsprop"), nn.Linear(2, 2).named_parameters())


def test_build_optimizer_from_project_config():
    from omegaconf import OmegaConf

    from dlcv.config import OptimConfig

    cfg = OmegaConf.structured(OptimConfig(name="lars", lr=0.3, weight_decay=1.5e-6, lars_eta=0.002))
    opt = build_optimizer(cfg, nn.Linear(3, 3).named_parameters())
    assert isinstance(opt, LARS) and opt.param_groups[0]["eta"] == 0.002
    cfg = OmegaConf.structured(OptimConfig(name="adamw", betas=[0.9, 0.95]))
    assert build_optimizer(cfg, nn.Linear(3, 3).named_parameters()).param_groups[0]["betas"] == (0.9, 0.95)


# ---------------------------------------------------------------------------- per-group LRs (LLRD, head/backbone)

def _stack():
    """A 'classifier' with a 3-block backbone and a head; layer id = the block index."""
    return nn.ModuleDict({"backbone": nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 4)),
                          "head": nn.Linear(4, 2)})


def _block(name: str) -> tuple:
    return (100,) if name.startswith("head.") else (int(name.split(".")[1]),)


def _lr_of(opt) -> dict[int, float]:
    return {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd", "lars"])
def test_layer_decay_and_backbone_scale_give_lr_times_scale_times_decay_to_the_depth(name):
    from dlcv.optim import layerwise_lr_scales

    m = _stack()
    cfg = _cfg(name, layer_decay=0.5, backbone_lr_scale=0.2)
    scales = layerwise_lr_scales(cfg, [n for n, _ in m.named_parameters()], _block)
    # depths: head 0, backbone.2 1, backbone.1 (BN) 2, backbone.0 3
    expected = {"head.weight": 1.0, "head.bias": 1.0, "backbone.2.weight": 0.2 * 0.5, "backbone.2.bias": 0.2 * 0.5,
                "backbone.1.weight": 0.2 * 0.25, "backbone.1.bias": 0.2 * 0.25,
                "backbone.0.weight": 0.2 * 0.125, "backbone.0.bias": 0.2 * 0.125}
    assert scales == pytest.approx(expected)
    opt = build_optimizer(cfg, m.named_parameters(), lr_scales=scales)
    lr = _lr_of(opt)
    for n, p in m.named_parameters():
        assert lr[id(p)] == pytest.approx(0.1 * expected[n]), n
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)  # the head's group first (the logged lr)
    if name != "adam":  # the decay rule holds inside every LR group
        for g in opt.param_groups:
            assert (g["weight_decay"] == 0.0) == all(p.ndim <= 1 for p in g["params"])
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(m.parameters()))


def test_head_and_backbone_lrs_without_layer_decay():
    from dlcv.optim import describe_optimizer, layerwise_lr_scales

    m = _stack()
    cfg = _cfg("adamw", backbone_lr_scale=0.1, layer_decay=1.0)
    scales = layerwise_lr_scales(cfg, [n for n, _ in m.named_parameters()])  # no layer map needed
    lr = _lr_of(build_optimizer(cfg, m.named_parameters(), lr_scales=scales))
    assert [lr[id(p)] for p in m["head"].parameters()] == pytest.approx([0.1, 0.1])
    assert [lr[id(p)] for p in m["backbone"].parameters()] == pytest.approx([0.01] * 6)
    assert "lr on the head, 0.1× lr on the backbone" in describe_optimizer(cfg)
    assert "layer-wise" not in describe_optimizer(cfg)
    with pytest.raises(ValueError, match="layer map"):
        layerwise_lr_scales(_cfg("sgd", layer_decay=0.8), ["head.weight"], None)
    with pytest.raises(ValueError, match="layer_decay"):
        layerwise_lr_scales(_cfg("sgd", layer_decay=1.5), ["head.weight"], _block)


def test_depths_are_architectural_when_the_bottom_is_frozen():
    from dlcv.optim import layerwise_lr_scales

    m = _stack()
    for p in m["backbone"][0].parameters():
        p.requires_grad_(False)
    cfg = _cfg("sgd", layer_decay=0.5)
    scales = layerwise_lr_scales(cfg, [n for n, _ in m.named_parameters()], _block)
    opt = build_optimizer(cfg, m.named_parameters(), lr_scales=scales)
    lr = _lr_of(opt)
    assert id(m["backbone"][0].weight) not in lr  # frozen: not in the optimizer
    assert lr[id(m["backbone"][1].weight)] == pytest.approx(0.1 * 0.25)  # still depth 2


def test_describe_optimizer_renders_nesterov_and_layer_decay():
    from dlcv.optim import describe_optimizer

    text = describe_optimizer(_cfg("sgd", nesterov=True, layer_decay=0.75, backbone_lr_scale=1.0))
    assert text.startswith("SGD (lr 0.1, Nesterov momentum 0.9")
    assert "layer-wise LR decay 0.75 (×0.75 per layer below the head)" in text
    assert build_optimizer(_cfg("sgd", nesterov=True), nn.Linear(2, 2)).param_groups[0]["nesterov"]


def test_the_schedule_scales_every_group_alike(tmp_path):
    """ClassificationTask: the optimizer's groups under the base's per-step LambdaLR keep their
    ratios at every step, and the head follows lr x the schedule's multiplier."""
    from types import SimpleNamespace

    from dlcv.config import load_config, to_dict
    from dlcv.tasks.classification import ClassificationTask

    cfg = load_config("configs/p1/strong_a.yaml", ["data.root=unused", "model.width=8", "optim.layer_decay=0.7",
                                                   "optim.backbone_lr_scale=0.5", "optim.warmup_epochs=1"])
    task = ClassificationTask(to_dict(cfg))
    # configure_optimizers reads only these two of the Trainer
    task.trainer = SimpleNamespace(estimated_stepping_batches=20 * cfg.trainer.epochs, max_epochs=cfg.trainer.epochs)
    conf = task.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    scales = task.lr_scales()
    expected = {id(p): cfg.optim.lr * scales[n] for n, p in task.model.named_parameters()}
    assert len(opt.param_groups) > 4
    for step in range(60):
        mult = task.lr_multipliers[step]
        for g in opt.param_groups:
            for p in g["params"]:
                assert g["lr"] == pytest.approx(expected[id(p)] * mult, rel=1e-12)
        opt.step()
        sched.step()
    assert scales["head.weight"] == 1.0 and scales["backbone.net.conv1.weight"] == pytest.approx(0.5 * 0.7 ** 9)
    assert id(task.model.head.weight) in {id(p) for p in opt.param_groups[0]["params"]}
