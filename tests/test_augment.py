"""Tests for dlcv.data.augment: batched per-sample augmentation on tiny tensors."""
from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF

from dlcv.data import augment as A
from dlcv.data.augment import geometric, photometric
from dlcv.data.augment.autoaugment import RandAugment, TrivialAugmentWide


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n=8, c=3, h=32, w=32, seed=123) -> torch.Tensor:
    return torch.rand(n, c, h, w, generator=gen(seed))


def copies(n=8, h=32, w=32, seed=7) -> torch.Tensor:
    """n copies of ONE image: any difference between outputs comes from per-sample draws."""
    return images(1, 3, h, w, seed).expand(n, -1, -1, -1).contiguous()


def all_distinct(batch: torch.Tensor) -> bool:
    flat = batch.reshape(batch.shape[0], -1)
    return all(not torch.equal(flat[i], flat[j])
               for i, j in itertools.combinations(range(len(flat)), 2))


# every public random op as f(x, generator) -> tensor, for the shared properties
OPS = {
    "rrc_flip": lambda x, g: A.random_resized_crop_flip(x, 24, g),
    "pad_crop_flip": lambda x, g: A.pad_crop_flip(x, g),
    "joint_image": lambda x, g: A.joint_geometric(x, None, g)[0],
    "joint_mask": lambda x, g: A.joint_geometric(
        x, (x[:, 0] > 0.5).to(torch.uint8), g)[1],
    "color_jitter": lambda x, g: A.color_jitter(x, g, p=1.0),
    "grayscale": lambda x, g: A.random_grayscale(x, g, p=0.5),
    "blur": lambda x, g: A.gaussian_blur(x, g, p=1.0),
    "solarize": lambda x, g: A.solarize(x, g, p=0.5),
    "byol_v1": lambda x, g: A.byol_views(x, g, out_size=24)[0],
    "byol_v2": lambda x, g: A.byol_views(x, g, out_size=24)[1],
    "trivial_augment_wide": lambda x, g: TrivialAugmentWide()(x, g),
    "randaugment": lambda x, g: RandAugment()(x, g),
}


# ---------------------------------------------------------------------------- shared properties

@pytest.mark.parametrize("name", OPS)
def test_deterministic_given_seed_and_ignores_global_rng(name):
    op, x = OPS[name], images()
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a = op(x, gen(1))
    assert torch.equal(torch.get_rng_state(), state), "the global RNG must not be used"
    torch.manual_seed(999)
    b = op(x, gen(1))
    assert torch.equal(a, b)
    assert not torch.equal(a, op(x, gen(2)))


@pytest.mark.parametrize("name", OPS)
def test_single_sample_and_non_square(name):
    op = OPS[name]
    for x in (images(1), images(4, h=20, w=36)):
        out = op(x, gen(3))
        assert out.shape[0] == x.shape[0]
        if out.is_floating_point():
            assert out.dtype == x.dtype
            assert 0 <= out.min() and out.max() <= 1


@pytest.mark.parametrize("name", ["rrc_flip", "pad_crop_flip", "joint_image", "color_jitter",
                                  "blur", "byol_v1", "byol_v2"])
def test_each_sample_gets_its_own_parameters(name):
    out = OPS[name](copies(8), gen(4))
    assert all_distinct(out)


def test_float64_works():
    x = images(4).double()
    assert A.random_resized_crop_flip(x, 16, gen()).dtype == torch.float64
    assert A.color_jitter(x, gen(), p=1).dtype == torch.float64
    assert A.gaussian_blur(x, gen(), p=1).dtype == torch.float64
    assert A.joint_geometric(x, None, gen())[0].dtype == torch.float64


def test_generator_on_wrong_device_is_a_clear_error():
    if not torch.cuda.is_available():
        pytest.skip("needs a second device type")
    with pytest.raises(ValueError, match="generator"):
        A.solarize(images(2), torch.Generator(device="cuda"), p=1)


# ---------------------------------------------------------------------------- affine core

def test_affine_identity_and_padding_value():
    x = images(2)
    eye = torch.tensor([[1.0, 0, 0], [0, 1, 0]]).expand(2, 2, 3)
    assert torch.allclose(A.affine_grid_sample(x, eye, 32), x, atol=1e-6)
    # shift right by half the image: the left half of the output is outside the source
    shift = torch.tensor([[1.0, 0, -1.0], [0, 1, 0]]).expand(2, 2, 3)
    out = A.affine_grid_sample(x, shift, 32, padding_value=0.25)
    assert torch.all(out[..., :16] == 0.25)
    assert torch.allclose(out[..., 16:], x[..., :16], atol=1e-5)


def test_affine_mask_nearest_keeps_dtype_and_fills():
    masks = torch.randint(0, 6, (2, 16, 16), generator=gen(), dtype=torch.int64).to(torch.uint8)
    shift = torch.tensor([[1.0, 0, 0], [0, 1, -1.0]]).expand(2, 2, 3)
    out = A.affine_grid_sample(masks, shift, 16, mode="nearest", padding_value=6)
    assert out.dtype == torch.uint8 and out.shape == masks.shape
    assert torch.all(out[:, :8] == 6)
    assert torch.equal(out[:, 8:], masks[:, :8])
    with pytest.raises(ValueError, match="nearest"):
        A.affine_grid_sample(masks, shift, 16, mode="bilinear")


def test_box_warp_matches_torchvision_resized_crop():
    """A crop box enlarged to the output equals torchvision's resized_crop (no antialias when
    enlarging). torchvision crops before resizing, so at the crop's edges it clamps to the crop's
    border pixels where the warp reads the real neighbours outside the box: compare the interior
    there, and everything for a whole-image box (clamped at the image's edge, not faded to 0)."""
    x = images(3, h=20, w=24)
    top, left = torch.tensor([2.0, 0, 5]), torch.tensor([3.0, 0, 10])
    h, w = torch.tensor([10.0, 20, 15]), torch.tensor([12.0, 24, 14])
    out_h, out_w = 30, 28
    theta = geometric._box_theta(left + w / 2, top + h / 2, w / 2, h / 2, None, 20, 24)
    out = A.affine_grid_sample(x, theta, (out_h, out_w))
    for i in range(3):
        ref = TF.resized_crop(x[i], int(top[i]), int(left[i]), int(h[i]), int(w[i]),
                              [out_h, out_w], antialias=False)
        # source coordinate (in crop pixels) of each output row / column centre
        ys = (torch.arange(out_h) + 0.5) * h[i] / out_h - 0.5
        xs = (torch.arange(out_w) + 0.5) * w[i] / out_w - 0.5
        inner = ((ys >= 0) & (ys <= h[i] - 1)).view(-1, 1) & ((xs >= 0) & (xs <= w[i] - 1))
        if i == 1:  # the whole image
            inner = torch.ones_like(inner)
        assert inner.float().mean() > 0.8
        assert torch.allclose(out[i][:, inner], ref[:, inner], atol=1e-5), i


# ---------------------------------------------------------------------------- random resized crop

def test_rrc_full_crop_is_identity_and_flip_is_flip():
    x = images(5)
    same = A.random_resized_crop_flip(x, 32, gen(), scale=(1, 1), ratio=(1, 1), flip_p=0)
    assert torch.allclose(same, x, atol=1e-5)
    flipped = A.random_resized_crop_flip(x, 32, gen(), scale=(1, 1), ratio=(1, 1), flip_p=1)
    assert torch.allclose(flipped, torch.flip(x, dims=[-1]), atol=1e-5)


def test_rrc_shape_and_range():
    x = images(6, h=20, w=30)
    out = A.random_resized_crop_flip(x, (16, 24), gen())
    assert out.shape == (6, 3, 16, 24)
    assert 0 <= out.min() and out.max() <= 1


def test_rrc_boxes_follow_torchvision_rules():
    n, height, width = 4000, 40, 60
    top, left, h, w = geometric._sample_crop_boxes(n, height, width, (0.08, 1.0), (3 / 4, 4 / 3),
                                           gen(), torch.device("cpu"))
    assert torch.all((top >= 0) & (left >= 0) & (top + h <= height) & (left + w <= width))
    assert torch.all((h == h.round()) & (w == w.round()) & (top == top.round()))
    area = h * w / (height * width)
    # rounding to whole pixels moves area and ratio slightly past the nominal ranges
    assert area.min() >= 0.05 and area.max() <= 1.0
    aspect = w / h
    assert aspect.min() >= 0.6 and aspect.max() <= 1.5
    assert area.std() > 0.15 and (left.unique().numel() > 20)


def test_rrc_falls_back_to_central_crop():
    # a very wide image and a ratio range that no crop of it can satisfy with scale 1
    top, left, h, w = geometric._sample_crop_boxes(3, 10, 40, (1.0, 1.0), (1.0, 1.0), gen(),
                                           torch.device("cpu"))
    assert torch.equal(h, torch.full((3,), 10.0)) and torch.equal(w, torch.full((3,), 10.0))
    assert torch.equal(top, torch.zeros(3)) and torch.equal(left, torch.full((3,), 15.0))


# ---------------------------------------------------------------------------- pad crop flip

def _shift_flip_candidates(img: torch.Tensor, pad: int):
    c, h, w = img.shape
    padded = F.pad(img, (pad, pad, pad, pad))
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            crop = padded[:, dy:dy + h, dx:dx + w]
            yield (dy, dx, False), crop
            yield (dy, dx, True), torch.flip(crop, dims=[-1])


def test_pad_crop_flip_is_an_exact_shift_and_flip():
    x = images(16, h=12, w=10)
    out = A.pad_crop_flip(x, gen(5), pad=3)
    seen = set()
    for i in range(len(x)):
        matches = [k for k, cand in _shift_flip_candidates(x[i], 3) if torch.equal(out[i], cand)]
        assert matches, f"sample {i} is not an exact shifted/flipped copy"
        seen.add(matches[0])
    assert len(seen) > 8 and {k[2] for k in seen} == {False, True}


def test_pad_crop_flip_without_pad_or_flip_is_identity():
    x = images(4)
    assert torch.equal(A.pad_crop_flip(x, gen(), pad=0, flip_p=0), x)
    assert torch.equal(A.pad_crop_flip(x, gen(), pad=0, flip_p=1), torch.flip(x, dims=[-1]))


# ---------------------------------------------------------------------------- joint geometric

def _dihedral(img: torch.Tensor):
    """The 8 flips/rotations of an (..., H, W) square tensor."""
    for k in range(4):
        r = torch.rot90(img, k, dims=[-2, -1])
        yield r
        yield torch.flip(r, dims=[-1])


def test_joint_flips_and_rot90_are_exact_pixel_permutations():
    x = images(32, h=16, w=16)
    masks = torch.randint(0, 6, (32, 16, 16), generator=gen(1)).to(torch.uint8)
    out, out_masks = A.joint_geometric(x, masks, gen(2), scale=(1, 1))
    kinds = set()
    for i in range(32):
        hits = [j for j, cand in enumerate(_dihedral(x[i]))
                if torch.allclose(out[i], cand, atol=1e-5)]
        assert len(hits) == 1, f"sample {i} is not a flip/rotation of its input"
        # the mask went through exactly the same permutation, bit for bit
        assert torch.equal(out_masks[i], list(_dihedral(masks[i]))[hits[0]])
        kinds.add(hits[0])
    assert len(kinds) >= 6  # all eight are equally likely


def test_joint_without_flips_or_rotation_at_scale_one_is_an_exact_crop():
    x = images(6, h=20, w=20)
    out, _ = A.joint_geometric(x, None, gen(3), out_size=(12, 8), scale=(1, 1),
                               hflip_p=0, vflip_p=0, rot90=False)
    for i in range(6):
        assert any(torch.allclose(out[i], x[i, :, t:t + 12, l:l + 8], atol=1e-5)
                   for t in range(9) for l in range(13))


def test_joint_keeps_image_and_mask_aligned():
    # a blocky image (4x4 px blocks) in [0.1, 1], and its own mask: 1 where channel 0 > 0.5
    low = 0.1 + 0.9 * torch.rand(16, 3, 8, 8, generator=gen(11))
    x = low.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)
    masks = (x[:, 0] > 0.5).to(torch.int64)
    out, out_masks = A.joint_geometric(x, masks, gen(12), out_size=(24, 40), scale=(0.5, 2.0),
                                       mask_fill=6)
    assert out.shape == (16, 3, 24, 40) and out_masks.shape == (16, 24, 40)
    assert out_masks.dtype == torch.int64
    assert set(out_masks.unique().tolist()) <= {0, 1, 6}
    outside = out_masks == 6
    assert outside.any() and (~outside).any()
    # outside the source image: image exactly 0 and mask exactly fill, the same pixels
    assert torch.equal(outside, (out == 0).all(dim=1))
    # inside: the mask still says where the image's channel 0 is bright (blocks only disagree
    # at block edges, where bilinear and nearest sampling may differ)
    agree = ((out[:, 0] > 0.5) == (out_masks == 1))[~outside].float().mean()
    assert agree > 0.9, agree


def test_joint_default_output_size_and_bad_mask_shape():
    x = images(2, h=10, w=14)
    out, m = A.joint_geometric(x, torch.zeros(2, 10, 14, dtype=torch.uint8), gen())
    assert out.shape == x.shape and m.shape == (2, 10, 14) and m.dtype == torch.uint8
    with pytest.raises(ValueError):
        A.joint_geometric(x, torch.zeros(2, 10, 10, dtype=torch.uint8), gen())


# ---------------------------------------------------------------------------- colour

def test_color_jitter_with_zero_strength_is_identity():
    x = images()
    assert torch.equal(A.color_jitter(x, gen(), 0, 0, 0, 0, p=1.0), x)
    assert torch.equal(A.color_jitter(x, gen(), p=0.0), x)


def test_color_jitter_brightness_only_scales_each_sample():
    x = images(64) * 0.5 + 0.01  # in (0, 0.51]: a factor up to 1.4 never clamps
    out = A.color_jitter(x, gen(8), brightness=0.4, contrast=0, saturation=0, hue=0, p=1.0)
    factor = out / x
    f = factor.flatten(1)[:, 0]
    assert torch.allclose(factor, f.view(-1, 1, 1, 1).expand_as(factor), atol=1e-5)
    assert f.min() >= 0.6 - 1e-5 and f.max() <= 1.4 + 1e-5 and f.std() > 0.1
    # with bright pixels the same factor clamps at 1
    y = images(64)
    out = A.color_jitter(y, gen(8), brightness=0.4, contrast=0, saturation=0, hue=0, p=1.0)
    assert torch.allclose(out, (y * f.view(-1, 1, 1, 1)).clamp(0, 1), atol=1e-6)


def test_color_jitter_matches_torchvision_contrast_and_saturation():
    x = images(6)
    f = torch.tensor([0.6, 0.8, 1.0, 1.2, 1.4, 0.7])
    contrast = photometric._blend(x, photometric._grayscale(x).mean(dim=(1, 2, 3), keepdim=True), f)
    saturation = photometric._blend(x, photometric._grayscale(x), f)
    for i in range(6):
        assert torch.allclose(contrast[i], TF.adjust_contrast(x[i], float(f[i])), atol=1e-5)
        assert torch.allclose(saturation[i], TF.adjust_saturation(x[i], float(f[i])), atol=1e-5)


def test_adjust_hue_matches_torchvision():
    x = images(9)
    x[0] = 0.5  # gray: hue undefined, must stay unchanged
    factors = torch.tensor([0.3, -0.5, -0.25, -0.1, 0.0, 0.05, 0.2, 0.45, 0.5])
    out = photometric._adjust_hue(x, factors)
    for i in range(9):
        ref = TF.adjust_hue(x[i], float(factors[i]))
        assert torch.allclose(out[i], ref, atol=1e-2), i
    assert torch.allclose(out[0], x[0], atol=1e-6)
    assert (out[1:] - x[1:]).abs().amax(dim=(1, 2, 3))[factors[1:] != 0].min() > 0.05


def test_grayscale_p1_matches_torchvision():
    x = images(4)
    out = A.random_grayscale(x, gen(), p=1.0)
    assert out.shape == x.shape
    ref = TF.rgb_to_grayscale(x, num_output_channels=1)
    for ch in range(3):
        assert torch.allclose(out[:, ch:ch + 1], ref, atol=1e-6)


def test_solarize_p1_formula():
    x = images(4)
    out = A.solarize(x, gen(), p=1.0, threshold=0.3)
    assert torch.equal(out, torch.where(x >= 0.3, 1 - x, x))


def test_blur_keeps_constant_and_smooths_noise():
    const = torch.full((4, 3, 16, 16), 0.37)
    assert torch.allclose(A.gaussian_blur(const, gen(), p=1.0), const, atol=1e-6)
    noise = images(4)
    blurred = A.gaussian_blur(noise, gen(), p=1.0, sigma=(1.0, 2.0), kernel_size=7)
    assert torch.all(blurred.var(dim=(1, 2, 3)) < 0.5 * noise.var(dim=(1, 2, 3)))
    assert torch.equal(A.gaussian_blur(noise, gen(), p=0.0), noise)


def test_blur_kernel_defaults():
    assert photometric._default_kernel_size(224, 224) == 23  # the BYOL paper's kernel
    assert photometric._default_kernel_size(128, 128) == 13
    assert photometric._default_kernel_size(32, 32) == 3
    # a kernel larger than reflect padding allows is capped, not an error
    tiny = images(2, h=3, w=3)
    assert A.gaussian_blur(tiny, gen(), p=1.0, kernel_size=9).shape == tiny.shape
    with pytest.raises(ValueError):
        A.gaussian_blur(tiny, gen(), p=1.0, kernel_size=4)


@pytest.mark.parametrize("p", [0.2, 0.7])
def test_probability_p_is_per_sample(p):
    n = 2000
    bright = torch.full((n, 3, 4, 4), 0.8)  # solarize always changes these
    changed = (A.solarize(bright, gen(20), p=p) != bright).flatten(1).any(dim=1)
    assert abs(changed.float().mean().item() - p) < 0.05
    red = torch.zeros(n, 3, 4, 4)
    red[:, 0] = 0.9  # grayscale always changes a pure colour
    changed = (A.random_grayscale(red, gen(21), p=p) != red).flatten(1).any(dim=1)
    assert abs(changed.float().mean().item() - p) < 0.05


# ---------------------------------------------------------------------------- BYOL

def test_byol_views_shapes_and_independence():
    x = copies(6)
    v1, v2 = A.byol_views(x, gen(30), out_size=24)
    assert v1.shape == v2.shape == (6, 3, 24, 24)
    for v in (v1, v2):
        assert 0 <= v.min() and v.max() <= 1
        assert all_distinct(v)
    assert all(not torch.equal(v1[i], v2[i]) for i in range(6))


def test_byol_config_is_frozen_with_paper_defaults():
    cfg = A.ByolAugmentConfig()
    assert cfg.blur_p == (1.0, 0.1) and cfg.solarize_p == (0.0, 0.2)
    assert cfg.jitter_p == (0.8, 0.8) and cfg.grayscale_p == (0.2, 0.2)
    assert (cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue) == (0.4, 0.4, 0.2, 0.1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.blur_p = (0.0, 0.0)


def test_byol_config_probabilities_are_used():
    x = images(8)
    off = A.ByolAugmentConfig(jitter_p=(0, 0), grayscale_p=(0, 0), blur_p=(0, 0),
                              solarize_p=(0, 0))
    v1, _ = A.byol_views(x, gen(31), out_size=24, config=off)
    # every colour op skipped: view 1 is exactly the crop drawn first from the same stream
    assert torch.equal(v1, A.random_resized_crop_flip(x, 24, gen(31)))
    gray = dataclasses.replace(off, grayscale_p=(1.0, 1.0))
    v1, v2 = A.byol_views(x, gen(31), out_size=24, config=gray)
    for v in (v1, v2):
        assert torch.equal(v[:, 0], v[:, 1]) and torch.equal(v[:, 1], v[:, 2])


def test_byol_crop_scale_is_passed_through():
    x = images(4)
    off = A.ByolAugmentConfig(jitter_p=(0, 0), grayscale_p=(0, 0), blur_p=(0, 0),
                              solarize_p=(0, 0))
    v1, v2 = A.byol_views(x, gen(), out_size=32, crop_scale=(1, 1), config=off)
    # a full-image crop of a square image with ratio 1 in range: the image or its mirror
    for v in (v1, v2):
        for i in range(4):
            assert (torch.allclose(v[i], x[i], atol=1e-5)
                    or torch.allclose(v[i], torch.flip(x[i], dims=[-1]), atol=1e-5))


def test_byol_views_use_their_own_view_probabilities():
    x = torch.zeros(64, 3, 16, 16)
    x[:, 0] = 0.8  # constant red: crops, flips and blur leave it as it is
    cfg = A.ByolAugmentConfig(jitter_p=(0, 0), grayscale_p=(0, 1), blur_p=(1, 1),
                              solarize_p=(1, 0))
    v1, v2 = A.byol_views(x, gen(), out_size=8, config=cfg)
    assert torch.allclose(v1[:, 0], torch.full_like(v1[:, 0], 0.2), atol=1e-5)  # solarized
    assert torch.allclose(v1[:, 1:], torch.zeros_like(v1[:, 1:]), atol=1e-6)    # not gray
    assert torch.allclose(v2, torch.full_like(v2, 0.8 * 0.2989), atol=1e-5)      # gray only
    # the paper's defaults: view 1 is never solarized (a bright gray image stays >= 0.57 after
    # jitter, and solarizing would bring it below 0.5); view 2 is, with probability 0.2
    bright = torch.full((200, 3, 8, 8), 0.95)
    v1, v2 = A.byol_views(bright, gen(1), out_size=8)
    solarized = lambda v: (v < 0.5).flatten(1).any(dim=1).float().mean().item()
    assert solarized(v1) == 0 and 0.08 < solarized(v2) < 0.35


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("name", OPS)
def test_runs_on_gpu_with_a_gpu_generator(name):
    x = images().cuda()
    a = OPS[name](x, torch.Generator(device="cuda").manual_seed(1))
    b = OPS[name](x, torch.Generator(device="cuda").manual_seed(1))
    assert a.device.type == "cuda" and torch.equal(a, b)


def test_byol_blur_sigma_is_the_views_blur():
    """byol.blur_sigma reaches the blur: a vanishing sigma leaves view 1 as without blur (the same draws),
    the paper's full sigma at a small view does not."""
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    only_blur = dict(jitter_p=(0.0, 0.0), grayscale_p=(0.0, 0.0), solarize_p=(0.0, 0.0))

    def view1(**kw):
        return A.byol_views(x, torch.Generator().manual_seed(1), 32, (0.5, 1.0), A.ByolAugmentConfig(**only_blur, **kw))[0]

    plain = view1(blur_p=(0.0, 0.0))
    assert torch.allclose(view1(blur_p=(1.0, 0.0), blur_sigma=(1e-4, 1e-4)), plain, atol=1e-6)
    assert (view1(blur_p=(1.0, 0.0), blur_sigma=(2.0, 2.0)) - plain).abs().max() > 0.05
    from dlcv.data.augment.byol import scaled_blur_sigma
    assert scaled_blur_sigma(224) == (0.1, 2.0) and scaled_blur_sigma(112) == (0.05, 1.0)
