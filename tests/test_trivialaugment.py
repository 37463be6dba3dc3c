"""TrivialAugmentWide and RandAugment (dlcv.data.augment.autoaugment): every op at every magnitude
bin and sign equals torchvision.transforms.v2.functional on the same argument, output for output;
the draws follow torchvision's distributions and come from the caller's generator only."""
from __future__ import annotations

import math

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from dlcv.data.augment import autoaugment as AA
from dlcv.data.augment.classify import AUGMENTS


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def torchvision_op(img: torch.Tensor, op: str, m: float) -> torch.Tensor:
    """What torchvision's _AutoAugmentBase does for (op, signed magnitude), written with the public
    functional API (interpolation nearest, fill None = zeros)."""
    nearest = TF.InterpolationMode.NEAREST
    if op == "Identity":
        return img
    if op in ("ShearX", "ShearY"):
        shear = [math.degrees(math.atan(m)), 0.0] if op == "ShearX" else [0.0, math.degrees(math.atan(m))]
        return TF.affine(img, angle=0.0, translate=[0, 0], scale=1.0, shear=shear, interpolation=nearest,
                         fill=None, center=[0, 0])
    if op in ("TranslateX", "TranslateY"):
        shift = [int(m), 0] if op == "TranslateX" else [0, int(m)]
        return TF.affine(img, angle=0.0, translate=shift, scale=1.0, shear=[0.0, 0.0], interpolation=nearest,
                         fill=None)
    calls = {
        "Rotate": lambda: TF.rotate(img, angle=m, interpolation=nearest, fill=None),
        "Brightness": lambda: TF.adjust_brightness(img, 1.0 + m),
        "Color": lambda: TF.adjust_saturation(img, 1.0 + m),
        "Contrast": lambda: TF.adjust_contrast(img, 1.0 + m),
        "Sharpness": lambda: TF.adjust_sharpness(img, 1.0 + m),
        "Posterize": lambda: TF.posterize(img, int(m)),
        "Solarize": lambda: TF.solarize(img, 255 * m),
        "AutoContrast": lambda: TF.autocontrast(img),
        "Equalize": lambda: TF.equalize(img),
    }
    return calls[op]()


def signed_magnitude(space: str, op: str, b: int, negative: bool, h: int, w: int) -> float:
    magnitudes, signed = AA.SPACES[space][op]
    m = float(magnitudes(31, h, w)[b]) if magnitudes is not None else 0.0
    return -m if (signed and negative) else m


def uint8_images(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    x = torch.randint(0, 256, (n, 3, h, w), generator=gen(seed), dtype=torch.uint8)
    x[0] = 7  # a flat image: the degenerate cases of autocontrast, equalize, contrast
    x[1] = (x[1] // 64) * 64  # few levels
    return x


@pytest.mark.parametrize("space", list(AA.SPACES))
@pytest.mark.parametrize("size", [(32, 32), (20, 28)])
def test_every_op_bin_and_sign_equals_torchvision(space, size):
    h, w = size
    x = uint8_images(31, h, w)
    names = tuple(AA.SPACES[space])
    table = AA.op_table(space, 31, h, w)
    bins = torch.arange(31)
    for i, op in enumerate(names):
        for negative in (False, True):
            ops = torch.full((31,), i)
            params = table[ops, bins, torch.full((31,), int(negative))]
            out = AA.apply_ops(x, ops, params, names)  # sample b at magnitude bin b: one batched call
            for b in range(31):
                ref = torchvision_op(x[b], op, signed_magnitude(space, op, b, negative, h, w))
                assert torch.equal(out[b], ref), (op, b, negative)


def test_mixed_batch_equals_torchvision_per_sample():
    """A drawn batch (every op present) against torchvision per sample, through the public call."""
    ta = AA.TrivialAugmentWide()
    x8 = uint8_images(200, 32, 32, seed=3)
    out = ta(x8.float() / 255, gen(5))
    ops, bins, negative = ta.draw(200, gen(5), "cpu")  # the same draws, from the same stream
    assert len(set(ops[:, 0].tolist())) == 14
    names = tuple(AA.TRIVIAL_AUGMENT_WIDE_SPACE)
    for i in range(200):
        op = names[ops[i, 0]]
        m = signed_magnitude("trivial_augment_wide", op, int(bins[i, 0]), bool(negative[i, 0]), 32, 32)
        ref = torchvision_op(x8[i], op, m)
        assert torch.equal((out[i] * 255).round().to(torch.uint8), ref), (i, op, m)


def test_randaugment_applies_its_ops_in_a_row_at_one_magnitude():
    ra = AA.RandAugment(num_ops=2, magnitude=9)
    x8 = uint8_images(64, 32, 32, seed=4)
    out = ra(x8.float() / 255, gen(6))
    ops, bins, negative = ra.draw(64, gen(6), "cpu")
    assert torch.all(bins == 9)
    names = tuple(AA.RANDAUGMENT_SPACE)
    for i in range(64):
        ref = x8[i]
        for k in range(2):
            op = names[ops[i, k]]
            ref = torchvision_op(ref, op, signed_magnitude("randaugment", op, 9, bool(negative[i, k]), 32, 32))
        assert torch.equal((out[i] * 255).round().to(torch.uint8), ref), i


def test_draws_follow_torchvisions_distributions():
    n = 28000
    ops, bins, negative = AA.TrivialAugmentWide().draw(n, gen(1), "cpu")
    counts = torch.bincount(ops[:, 0], minlength=14).float()
    assert counts.numel() == 14 and torch.all((counts - n / 14).abs() < 5 * math.sqrt(n / 14))  # uniform over 14 ops
    bin_counts = torch.bincount(bins[:, 0], minlength=31).float()
    assert bin_counts.numel() == 31 and torch.all((bin_counts - n / 31).abs() < 5 * math.sqrt(n / 31))
    assert abs(negative.float().mean().item() - 0.5) < 0.02
    ra_ops, _, _ = AA.RandAugment(num_ops=3).draw(n, gen(2), "cpu")
    assert ra_ops.shape == (n, 3) and ra_ops.min() == 0 and ra_ops.max() == 13


def test_identity_samples_are_unchanged_exactly():
    ta = AA.TrivialAugmentWide()
    x = torch.randint(0, 256, (300, 3, 16, 16), generator=gen(2), dtype=torch.uint8).float() / 255
    out = ta(x, gen(9))
    ops, _, _ = ta.draw(300, gen(9), "cpu")
    identity = ops[:, 0] == 0
    assert identity.sum() > 5
    assert torch.equal(out[identity], x[identity])
    assert not torch.equal(out[~identity], x[~identity])


@pytest.mark.parametrize("policy", [AA.TrivialAugmentWide(), AA.RandAugment()])
def test_deterministic_under_a_seeded_generator_and_never_the_global_rng(policy):
    x = torch.rand(16, 3, 32, 32, generator=gen(3))
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a = policy(x, gen(1))
    assert torch.equal(torch.get_rng_state(), state), "the global RNG must not be used"
    torch.manual_seed(123)
    assert torch.equal(a, policy(x, gen(1)))
    assert not torch.equal(a, policy(x, gen(2)))
    assert a.dtype == x.dtype and a.shape == x.shape and 0 <= a.min() and a.max() <= 1


def test_registry_entries_run_and_describe_themselves():
    x = torch.rand(8, 3, 32, 32, generator=gen(4))
    for name in ("crop_flip_ta", "crop_flip_ra", "rrc_flip_ta"):
        out = AUGMENTS[name](x, gen(0))
        assert out.shape == x.shape and torch.equal(out, AUGMENTS[name](x, gen(0)))
    assert "TrivialAugmentWide (one of 14 ops per sample, magnitude uniform over 31 bins)" in \
        AUGMENTS["crop_flip_ta"].describe()
    assert "RandAugment (2 ops per sample of 14, magnitude 9 of 31 bins)" in AUGMENTS["crop_flip_ra"].describe()
    with pytest.raises(ValueError, match="magnitude"):
        AA.RandAugment(magnitude=31)(x, gen(0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_matches_cpu():
    x = torch.randint(0, 256, (64, 3, 32, 32), generator=gen(5), dtype=torch.uint8).float() / 255
    ta = AA.TrivialAugmentWide()
    ops, bins, negative = ta.draw(64, torch.Generator(device="cuda").manual_seed(1), "cuda")
    table = AA.op_table("trivial_augment_wide", 31, 32, 32)
    names = tuple(AA.TRIVIAL_AUGMENT_WIDE_SPACE)
    params = table[ops[:, 0].cpu(), bins[:, 0].cpu(), negative[:, 0].long().cpu()]
    x8 = (x * 255).round().to(torch.uint8)
    cpu = AA.apply_ops(x8, ops[:, 0].cpu(), params, names)
    gpu = AA.apply_ops(x8.cuda(), ops[:, 0], params.cuda(), names).cpu()
    assert (cpu.int() - gpu.int()).abs().max() <= 1
