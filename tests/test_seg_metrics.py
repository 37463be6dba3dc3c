"""The P3 metric equals the official mean_iou_evaluate.py rule (unknown is not an ignore index)."""
from __future__ import annotations

import math
import os
import socket
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dlcv.data.masks import CLASS_NAMES, write_mask
from dlcv.score_masks import main, score_folders
from dlcv.seg_iou import confusion_numpy, format_iou_table, iou_from_confusion, official_mean_iou
from dlcv.seg_metrics import ConfusionMatrix


# ---------------------------------------------------------------- independent references
def official_mean_iou_score(pred: np.ndarray, labels: np.ndarray) -> float:
    """The course's mean_iou_score, verbatim except for the prints (numpy 0/0 -> nan)."""
    mean_iou = 0
    for i in range(6):
        tp_fp = np.sum(pred == i)
        tp_fn = np.sum(labels == i)
        tp = np.sum((pred == i) * (labels == i))
        with np.errstate(invalid="ignore"):
            iou = tp / (tp_fp + tp_fn - tp)
        mean_iou += iou / 6
    return mean_iou


def direct_per_class(pred: np.ndarray, labels: np.ndarray) -> list[tuple[int, int, int]]:
    """(TP, P, G) per class 0..5 from boolean masks, no confusion matrix."""
    out = []
    for i in range(6):
        p, g = pred == i, labels == i
        out.append((int(np.logical_and(p, g).sum()), int(p.sum()), int(g.sum())))
    return out


def same_float(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def check_against_direct(pred: np.ndarray, labels: np.ndarray) -> dict:
    res = iou_from_confusion(confusion_numpy(pred, labels))
    ref = direct_per_class(pred, labels)
    present = []
    for i, (tp, p, g) in enumerate(ref):
        c = res["per_class"][i]
        assert (c["tp"], c["pred"], c["gt"]) == (tp, p, g)
        if p + g - tp == 0:
            assert c["absent"] and c["iou"] is None and math.isnan(res["iou"][i])
        else:
            assert not c["absent"] and c["iou"] == tp / (p + g - tp)
            present.append(tp / (p + g - tp))
    assert same_float(res["miou_official"], float(official_mean_iou_score(pred, labels)))  # bit for bit
    if present:
        assert res["miou"] == pytest.approx(sum(present) / len(present), rel=1e-12)
    else:
        assert math.isnan(res["miou"])
    if len(present) == 6:
        assert res["miou"] == res["miou_official"]
    return res


# ---------------------------------------------------------------- hand-computed cases
def test_unknown_pixel_predicted_as_class0_is_a_false_positive():
    labels = np.array([[0, 0], [6, 1]])
    good = np.array([[0, 0], [6, 1]])
    bad = np.array([[0, 0], [0, 1]])  # the unknown pixel predicted urban
    r_good = iou_from_confusion(confusion_numpy(good, labels))
    r_bad = iou_from_confusion(confusion_numpy(bad, labels))
    assert r_good["per_class"][0]["iou"] == 1.0
    assert r_bad["per_class"][0]["iou"] == pytest.approx(2 / 3)  # TP 2, P 3, G 2
    assert (r_bad["per_class"][0]["tp"], r_bad["per_class"][0]["pred"], r_bad["per_class"][0]["gt"]) == (2, 3, 2)
    # classes 2..5 are absent from both: mean over the 2 present classes, official value is nan
    assert r_bad["absent_classes"] == [2, 3, 4, 5] and r_bad["present_classes"] == [0, 1]
    assert r_bad["miou"] == pytest.approx((2 / 3 + 1) / 2)
    assert math.isnan(r_bad["miou_official"])


def test_predicting_unknown_on_a_real_pixel_is_a_false_negative():
    labels = np.array([0, 0, 0, 0])
    pred = np.array([0, 0, 0, 6])
    r = iou_from_confusion(confusion_numpy(pred, labels))
    assert r["per_class"][0]["iou"] == pytest.approx(3 / 4)


def test_class_only_in_prediction_gives_iou_zero_and_counts():
    labels = np.array([0, 1, 2, 3, 4, 5, 5, 5])
    pred = np.array([0, 1, 2, 3, 4, 4, 4, 4])  # barren never predicted right
    r = iou_from_confusion(confusion_numpy(pred, labels))
    assert r["per_class"][5]["iou"] == 0.0 and not r["per_class"][5]["absent"]
    assert r["per_class"][4]["iou"] == pytest.approx(1 / 4)
    assert r["miou"] == pytest.approx((1 + 1 + 1 + 1 + 0.25 + 0) / 6)
    assert r["miou"] == r["miou_official"]

    labels = np.array([0, 0, 1, 1])
    pred = np.array([0, 3, 1, 1])  # forest predicted, never labelled: IoU 0, present
    r = iou_from_confusion(confusion_numpy(pred, labels))
    assert r["per_class"][3]["iou"] == 0.0 and not r["per_class"][3]["absent"]
    assert r["per_class"][3]["pred"] == 1 and r["per_class"][3]["gt"] == 0


def test_absent_class_and_official_nan():
    labels = np.array([0, 1, 2, 3, 4, 6])
    pred = np.array([0, 1, 2, 3, 4, 6])  # barren absent from both
    r = iou_from_confusion(confusion_numpy(pred, labels))
    assert r["absent_classes"] == [5]
    assert r["per_class"][5] == {"class": 5, "name": "barren", "iou": None, "tp": 0, "pred": 0, "gt": 0,
                                 "union": 0, "absent": True}
    assert r["miou"] == 1.0
    assert math.isnan(r["miou_official"])
    # the official script itself: a RuntimeWarning and nan, no exception
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = 0
        tp = np.sum((pred == 5) * (labels == 5))
        m += (tp / (np.sum(pred == 5) + np.sum(labels == 5) - tp)) / 6
    assert math.isnan(m) and any(issubclass(w.category, RuntimeWarning) for w in caught)
    assert math.isnan(official_mean_iou(pred, labels))


def test_nothing_present():
    r = iou_from_confusion(np.zeros((7, 7), dtype=np.int64))
    assert math.isnan(r["miou"]) and math.isnan(r["miou_official"]) and r["absent_classes"] == list(range(6))
    r = iou_from_confusion(confusion_numpy(np.full(5, 6), np.full(5, 6)))  # only unknown
    assert r["num_pixels"] == 5 and math.isnan(r["miou"])


def test_iou_from_confusion_validates_and_accepts_tensors():
    cm = torch.zeros(7, 7, dtype=torch.long)
    cm[0, 0] = 3
    cm[6, 0] = 1
    r = iou_from_confusion(cm)
    assert r["per_class"][0]["iou"] == 0.75 and r["confusion"].dtype == np.int64
    with pytest.raises(ValueError):
        iou_from_confusion(np.zeros((6, 6)))
    with pytest.raises(ValueError):
        iou_from_confusion(-np.ones((7, 7)))


# ---------------------------------------------------------------- random vs direct formula
@pytest.mark.parametrize("seed", range(6))
def test_random_masks_against_direct_formula(seed):
    rng = np.random.default_rng(seed)
    n, h, w = rng.integers(1, 4), rng.integers(1, 40), rng.integers(1, 40)
    k = rng.integers(1, 8)  # sometimes few classes, so some are absent
    classes = rng.choice(7, size=k, replace=False)
    labels = rng.choice(classes, size=(n, h, w))
    pred = np.where(rng.random((n, h, w)) < 0.6, labels, rng.integers(0, 7, (n, h, w)))
    check_against_direct(pred, labels)
    m = ConfusionMatrix()
    m.update(torch.from_numpy(pred), torch.from_numpy(labels))
    assert np.array_equal(m.compute().numpy(), confusion_numpy(pred, labels))


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.int64, st.tuples(st.integers(1, 6), st.integers(1, 6)), elements=st.integers(0, 6)),
       st.data())
def test_hypothesis_against_official(labels, data):
    pred = data.draw(hnp.arrays(np.int64, labels.shape, elements=st.integers(0, 6)))
    res = check_against_direct(pred, labels)
    cm = res["confusion"]
    assert cm.sum() == labels.size
    assert [int(cm[i, :].sum()) for i in range(7)] == [int((labels == i).sum()) for i in range(7)]


def test_real_size_all_classes_bit_identical():
    rng = np.random.default_rng(123)
    labels = rng.integers(0, 7, (3, 512, 512)).astype(np.float64)  # official arrays are float64
    pred = np.where(rng.random(labels.shape) < 0.7, labels, rng.integers(0, 7, labels.shape))
    cm = confusion_numpy(pred.astype(np.int64), labels.astype(np.int64))
    r = iou_from_confusion(cm)
    assert r["miou"] == r["miou_official"] == official_mean_iou_score(pred, labels)


# ---------------------------------------------------------------- the torchmetrics Metric
def test_accumulation_equals_one_update_on_concatenation():
    rng = np.random.default_rng(7)
    parts = [(rng.integers(0, 7, (b, 9, 11)), rng.integers(0, 7, (b, 9, 11))) for b in (1, 3, 2)]
    m = ConfusionMatrix()
    for p, t in parts:
        m.update(torch.from_numpy(p), torch.from_numpy(t))
    one = ConfusionMatrix()
    one.update(torch.from_numpy(np.concatenate([p for p, _ in parts])),
               torch.from_numpy(np.concatenate([t for _, t in parts])))
    assert torch.equal(m.compute(), one.compute())
    assert m.compute().dtype == torch.int64 and m.compute().shape == (7, 7)
    assert m.compute().sum() == sum(p.size for p, _ in parts)
    m.reset()
    assert m.confmat.sum() == 0


def test_update_accepts_logits_and_other_int_dtypes():
    target = torch.tensor([[0, 1], [6, 5]], dtype=torch.uint8)
    logits = torch.full((1, 7, 2, 2), -1.0)
    logits[0, 0, 0, 0] = logits[0, 1, 0, 1] = logits[0, 3, 1, 0] = logits[0, 5, 1, 1] = 1.0
    m = ConfusionMatrix()
    m.update(logits, target[None])
    cm = m.compute()
    assert cm[0, 0] == 1 and cm[1, 1] == 1 and cm[6, 3] == 1 and cm[5, 5] == 1
    r = m.compute_iou()
    assert r["per_class"][3]["iou"] == 0.0 and r["per_class"][3]["pred"] == 1


@pytest.mark.parametrize("pred,target", [
    (torch.tensor([0, 7]), torch.tensor([0, 1])),
    (torch.tensor([0, 1]), torch.tensor([-1, 1])),
    (torch.tensor([255, 1], dtype=torch.uint8), torch.tensor([0, 1], dtype=torch.uint8)),
])
def test_out_of_range_values_raise(pred, target):
    m = ConfusionMatrix()
    with pytest.raises(ValueError, match="outside 0..6"):
        m.update(pred, target)
    assert m.confmat.sum() == 0  # nothing half-counted


def test_bad_dtype_and_shape_raise():
    m = ConfusionMatrix()
    with pytest.raises(TypeError):
        m.update(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="shapes differ"):
        m.update(torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError):
        confusion_numpy(np.array([7]), np.array([0]))
    with pytest.raises(TypeError):
        confusion_numpy(np.array([0.5]), np.array([0]))


# ---------------------------------------------------------------- DDP (2 processes, gloo)
def _shard(rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + rank)
    n = (2, 5)[rank]  # uneven shard sizes
    h, w = (6, 7) if rank == 0 else (4, 9)
    return torch.randint(0, 7, (n, h, w), generator=g), torch.randint(0, 7, (n, h, w), generator=g)


def _ddp_worker(rank: int, world: int, out_dir: str) -> None:
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        m = ConfusionMatrix()
        pred, target = _shard(rank)
        m.update(pred[:1], target[:1])  # several updates per rank
        m.update(pred[1:], target[1:])
        cm = m.compute()
        torch.save(cm, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(180)
def test_ddp_sync_equals_single_process(tmp_path, monkeypatch):
    import multiprocessing

    import torch.multiprocessing as tmp
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
    # torch.multiprocessing.spawn's machinery; "fork" where available because a fresh "spawn" child
    # re-imports torch + torchmetrics (~15-20 s each on this 2-core machine); the workers run
    # single-threaded, so forking a parent that has used OpenMP is safe here.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    tmp.start_processes(_ddp_worker, args=(2, str(tmp_path)), nprocs=2, join=True, start_method=method)
    single = ConfusionMatrix()
    for rank in range(2):
        p, t = _shard(rank)
        single.update(p, t)
    expected = single.compute()
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        assert torch.equal(got, expected), f"rank {rank}"
    assert expected.sum() == 2 * 6 * 7 + 5 * 4 * 9


# ---------------------------------------------------------------- folders
def _write_set(folder, masks: dict[str, np.ndarray]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, m in masks.items():
        write_mask(folder / f"{name}_mask.png", m)


def test_score_folders_matches_direct(tmp_path):
    rng = np.random.default_rng(0)
    names = [f"{i:04d}" for i in (3, 0, 12, 7)]
    gt = {n: rng.integers(0, 7, (16, 20)).astype(np.uint8) for n in names}
    pred = {n: np.where(rng.random((16, 20)) < 0.5, gt[n], rng.integers(0, 7, (16, 20))).astype(np.uint8)
            for n in names}
    _write_set(tmp_path / "gt", gt)
    _write_set(tmp_path / "pred", dict(reversed(list(pred.items()))))  # written in another order
    (tmp_path / "gt" / "0003_sat.jpg").write_bytes(b"not read")       # satellite images are ignored
    r = score_folders(tmp_path / "pred", tmp_path / "gt")
    order = sorted(names)
    all_pred = np.stack([pred[n] for n in order]).astype(np.int64)
    all_gt = np.stack([gt[n] for n in order]).astype(np.int64)
    assert np.array_equal(r["confusion"], confusion_numpy(all_pred, all_gt))
    assert same_float(r["miou_official"], float(official_mean_iou_score(all_pred, all_gt)))
    assert r["num_files"] == 4
    table = format_iou_table(r)
    for name in CLASS_NAMES[:6]:
        assert name in table
    assert f"{r['miou']:.4f}" in table


def test_score_folders_pairs_by_name(tmp_path):
    """Each prediction is compared with the label of the same name (files differ per name)."""
    gt = {"0001": np.zeros((4, 4), np.uint8), "0002": np.ones((4, 4), np.uint8)}
    _write_set(tmp_path / "gt", gt)
    _write_set(tmp_path / "pred", {"0002": np.ones((4, 4), np.uint8), "0001": np.zeros((4, 4), np.uint8)})
    r = score_folders(tmp_path / "pred", tmp_path / "gt")
    assert r["per_class"][0]["iou"] == 1.0 and r["per_class"][1]["iou"] == 1.0


def test_score_folders_missing_and_extra_listed(tmp_path):
    m = np.zeros((4, 4), np.uint8)
    _write_set(tmp_path / "gt", {"0000": m, "0001": m, "0002": m})
    _write_set(tmp_path / "pred", {"0000": m, "0002": m, "0099": m})  # 0001 missing, 0099 extra
    with pytest.raises(ValueError) as exc:
        score_folders(tmp_path / "pred", tmp_path / "gt")
    msg = str(exc.value)
    assert "missing 1" in msg and "0001_mask.png" in msg
    assert "extra 1" in msg and "0099_mask.png" in msg


def test_score_folders_subset_refused_and_long_lists_truncated(tmp_path):
    m = np.zeros((2, 2), np.uint8)
    _write_set(tmp_path / "gt", {f"{i:04d}": m for i in range(15)})
    _write_set(tmp_path / "pred", {"0000": m, "0014": m})  # same names, fewer files
    with pytest.raises(ValueError) as exc:
        score_folders(tmp_path / "pred", tmp_path / "gt")
    msg = str(exc.value)
    assert "missing 13" in msg and "(+3 more)" in msg and "0001_mask.png" in msg and "0013_mask.png" not in msg
    assert "extra" not in msg


def test_score_folders_size_mismatch_names_file(tmp_path):
    _write_set(tmp_path / "gt", {"0000": np.zeros((4, 4), np.uint8), "0001": np.zeros((4, 4), np.uint8)})
    _write_set(tmp_path / "pred", {"0000": np.zeros((4, 4), np.uint8), "0001": np.zeros((4, 5), np.uint8)})
    with pytest.raises(ValueError, match="0001_mask.png"):
        score_folders(tmp_path / "pred", tmp_path / "gt")


def test_score_folders_empty_or_missing_folder(tmp_path):
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    with pytest.raises(ValueError, match="no \\*_mask.png"):
        score_folders(tmp_path / "pred", tmp_path / "gt")
    with pytest.raises(FileNotFoundError):
        score_folders(tmp_path / "nope", tmp_path / "gt")


def test_table_marks_absent_and_cli(tmp_path, capsys):
    _write_set(tmp_path / "gt", {"0000": np.array([[0, 1], [6, 6]], np.uint8)})
    _write_set(tmp_path / "pred", {"0000": np.array([[0, 1], [0, 6]], np.uint8)})
    assert main(["-p", str(tmp_path / "pred"), "-g", str(tmp_path / "gt")]) == 0
    out = capsys.readouterr().out
    assert "absent" in out and "nan" in out and "barren" in out
    assert main(["-p", str(tmp_path / "gt"), "-g", str(tmp_path / "nope")]) == 2


# ---------------------------------------------------------------- one kernel, two array libraries
@pytest.mark.parametrize("k", [7, 8])
@pytest.mark.parametrize("dtype", [np.uint8, np.int64, np.int32])
def test_numpy_and_torch_kernels_agree(k, dtype):
    from dlcv.seg_iou import pair_histogram_numpy, pair_histogram_torch

    rng = np.random.default_rng(k)
    target = rng.integers(0, k, (3, 17, 29)).astype(dtype)
    pred = rng.integers(0, k, (3, 17, 29)).astype(dtype)
    a = pair_histogram_numpy(target, pred, k)
    b = pair_histogram_torch(torch.from_numpy(target), torch.from_numpy(pred), k)
    assert b.dtype == torch.int64 and a.dtype == np.int64
    assert np.array_equal(a, b.numpy())
    direct = np.zeros((k, k), np.int64)
    np.add.at(direct, (target.ravel().astype(np.intp), pred.ravel().astype(np.intp)), 1)
    assert np.array_equal(a, direct)
    bools = pair_histogram_numpy(target > k // 2, pred > k // 2, 2)
    assert np.array_equal(bools, pair_histogram_torch(torch.from_numpy(target > k // 2),
                                                      torch.from_numpy(pred > k // 2), 2).numpy())


def test_kernel_leaves_inputs_alone_and_refuses_large_k():
    from dlcv.seg_iou import pair_histogram_numpy

    t = np.array([1, 2, 3], np.uint8)
    p = np.array([0, 1, 2], np.uint8)
    pair_histogram_numpy(t, p, 7)
    assert t.tolist() == [1, 2, 3] and p.tolist() == [0, 1, 2]
    with pytest.raises(ValueError):
        pair_histogram_numpy(t, p, 17)


def test_fold_code_histogram_equals_decoding_first():
    from dlcv.data.masks import CODE_TO_CLASS
    from dlcv.seg_iou import fold_code_histogram, pair_histogram_numpy

    rng = np.random.default_rng(3)
    gt_codes = rng.integers(0, 8, (40, 50)).astype(np.uint8)
    pred_codes = rng.integers(0, 8, (40, 50)).astype(np.uint8)
    folded = fold_code_histogram(pair_histogram_numpy(gt_codes, pred_codes, 8))
    assert np.array_equal(folded, confusion_numpy(CODE_TO_CLASS[pred_codes], CODE_TO_CLASS[gt_codes]))


# ---------------------------------------------------------------- score-masks against a plain reference
def _random_colours(rng, h, w, legal_share=0.8) -> np.ndarray:
    """RGB masks: mostly the legal colours, the rest arbitrary bytes (incl. reds and values near 128)."""
    from dlcv.data.masks import CLASS_COLORS

    legal = CLASS_COLORS[rng.integers(0, 7, (h, w))]
    noise = rng.choice(np.array([0, 1, 126, 127, 128, 129, 200, 255], np.uint8), size=(h, w, 3))
    return np.where((rng.random((h, w)) < legal_share)[..., None], legal, noise).astype(np.uint8)


def _per_class_reference(pred_dir, gt_dir) -> tuple[np.ndarray, list[tuple[int, int, int]], float]:
    """Straightforward: read_mask per file (the codec), stack, per-class boolean counts."""
    from dlcv.data.masks import read_mask

    names = sorted(p.name for p in gt_dir.glob("*_mask.png"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gt = np.concatenate([read_mask(gt_dir / n).ravel() for n in names]).astype(np.int64)
        pred = np.concatenate([read_mask(pred_dir / n).ravel() for n in names]).astype(np.int64)
    cm = np.array([[np.sum((gt == i) & (pred == j)) for j in range(7)] for i in range(7)])
    return cm, direct_per_class(pred, gt), float(official_mean_iou_score(pred, gt))


@pytest.mark.parametrize("threads", [1, 3])
def test_score_masks_equals_per_class_reference_on_random_masks(tmp_path, threads):
    from PIL import Image

    rng = np.random.default_rng(11 + threads)
    for i in range(9):
        h, w = (int(v) for v in rng.integers(5, 60, 2))
        for d in ("gt", "pred"):
            (tmp_path / d).mkdir(exist_ok=True)
            Image.fromarray(_random_colours(rng, h, w)).save(tmp_path / d / f"{i:04d}_mask.png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = score_folders(tmp_path / "pred", tmp_path / "gt", threads=threads)
    cm, per_class, official = _per_class_reference(tmp_path / "pred", tmp_path / "gt")
    assert np.array_equal(r["confusion"], cm)
    assert [(c["tp"], c["pred"], c["gt"]) for c in r["per_class"]] == per_class
    assert same_float(r["miou_official"], official)
    assert r["num_files"] == 9 and r["num_pixels"] == cm.sum()


def test_score_masks_other_png_modes_read_as_read_mask(tmp_path):
    """Palette, palette with transparency, RGBA, grayscale and 16-bit files take the codec's own reader
    (read_rgb), the 8-bit RGB ones the fast path: the counts equal read_mask's on every file."""
    from PIL import Image

    rng = np.random.default_rng(5)
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    rgb = _random_colours(rng, 24, 31)
    files = {
        "0000": Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16),
        "0001": Image.fromarray(np.dstack([rgb, rng.integers(0, 256, (24, 31), dtype=np.uint8)]), "RGBA"),
        "0002": Image.fromarray(rgb[..., 0], "L"),
        "0003": Image.fromarray((rng.integers(0, 65536, (24, 31))).astype(np.uint16)).convert("I;16"),
        "0004": Image.fromarray(rgb),
    }
    pal = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    pal.info["transparency"] = 0
    files["0005"] = pal
    for name, img in files.items():
        img.save(tmp_path / "pred" / f"{name}_mask.png")
        Image.fromarray(_random_colours(rng, 24, 31)).save(tmp_path / "gt" / f"{name}_mask.png")
    modes = {n: Image.open(tmp_path / "pred" / f"{n}_mask.png").mode for n in files}
    assert {"P", "RGBA", "L", "RGB"} <= set(modes.values()) and any(m.startswith("I") for m in modes.values())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = score_folders(tmp_path / "pred", tmp_path / "gt")
    cm, _, official = _per_class_reference(tmp_path / "pred", tmp_path / "gt")
    assert np.array_equal(r["confusion"], cm)
    assert same_float(r["miou_official"], official)


def test_score_masks_fast_codes_equal_the_codec_on_every_colour():
    """All 2^24 colours would be slow; every byte value on each channel against the others' extremes."""
    from PIL import Image

    from dlcv.data.masks import CODE_TO_CLASS, colour_codes, decode_mask
    from dlcv.score_masks import _BIT_LUT, _SUM_BANDS

    v = np.arange(256, dtype=np.uint8)
    grid = np.stack(np.meshgrid(v, np.array([0, 127, 128, 255], np.uint8), np.array([0, 128, 255], np.uint8),
                                indexing="ij"), -1).reshape(1, -1, 3)
    rgb = np.concatenate([grid, grid[..., [1, 0, 2]], grid[..., [2, 1, 0]]], axis=1)
    fast = np.asarray(Image.fromarray(rgb).point(_BIT_LUT).convert("L", _SUM_BANDS))
    assert np.array_equal(fast, colour_codes(rgb))
    assert np.array_equal(CODE_TO_CLASS[fast], decode_mask(rgb)[0])


def test_score_masks_red_is_unknown_and_warned_per_file(tmp_path):
    from PIL import Image

    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    red = np.zeros((2, 3, 3), np.uint8)
    red[0, :, 0] = 255  # three red pixels in the first row
    Image.fromarray(red).save(tmp_path / "pred" / "0000_mask.png")
    write_mask(tmp_path / "gt" / "0000_mask.png", np.full((2, 3), 6, np.uint8))
    with pytest.warns(UserWarning, match=r"0000_mask.png: 3 red pixel\(s\)") as caught:
        r = score_folders(tmp_path / "pred", tmp_path / "gt")
    assert len([w for w in caught if "red pixel" in str(w.message)]) == 1
    assert r["confusion"][6, 6] == 6 and r["num_pixels"] == 6
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        score_folders(tmp_path / "pred", tmp_path / "gt", warn=False)


def test_score_masks_unreadable_png_names_the_file(tmp_path):
    from dlcv.errors import DataError

    m = np.zeros((4, 4), np.uint8)
    _write_set(tmp_path / "gt", {f"{i:04d}": m for i in range(6)})
    _write_set(tmp_path / "pred", {f"{i:04d}": m for i in range(6)})
    (tmp_path / "pred" / "0003_mask.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (tmp_path / "pred" / "0004_mask.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"mask .*0003_mask.png: not a readable image"):
        score_folders(tmp_path / "pred", tmp_path / "gt", threads=3)


# ---------------------------------------------------------------- the score-masks process: no torch
def _run_python(code: str) -> str:
    import subprocess
    import sys

    from tests.helpers import REPO

    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_score_masks_cli_imports_no_torch(tmp_path):
    _write_set(tmp_path / "gt", {"0000": np.array([[0, 1], [6, 5]], np.uint8)})
    _write_set(tmp_path / "pred", {"0000": np.array([[0, 1], [0, 5]], np.uint8)})
    out = _run_python(f"""
import sys
from dlcv.cli import main
rc = main(["score-masks", {str(tmp_path / 'pred')!r}, {str(tmp_path / 'gt')!r}, "--out", {str(tmp_path / 'e')!r}])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchmetrics", "torchvision", "lightning"))
print("RC", rc, "HEAVY", heavy)
""")
    assert "RC 0 HEAVY []" in out, out
    assert (tmp_path / "e" / "metrics.json").is_file() and (tmp_path / "e" / "iou.md").is_file()
    out = _run_python("import sys, dlcv.score_masks, dlcv.seg_iou, dlcv.data.masks, dlcv.data.images; "
                      "print(sorted(m for m in sys.modules if m.startswith(('torch', 'torchmetrics'))))")
    assert out.strip() == "[]"


# ---------------------------------------------------------------- the bench's cli section
@pytest.mark.timeout(300)
def test_bench_cli_section_quick(tmp_path):
    """`dlcv bench`'s whole-process rows at --quick size: the official-script branch (here the
    reference, given as if it were the official script), equal mIoU, the rendered rows and targets."""
    from dlcv.bench.results import render_results
    from dlcv.bench.specs import BENCH_DIR
    from dlcv.bench.startup import bench_cli

    logs: list[str] = []
    settings = {"scale": "quick", "repeats": 1, "data": str(tmp_path / "data"), "work": str(tmp_path / "work"),
                "max_foreign": 1.0, "max_wait": 0.0, "official_miou": str(BENCH_DIR / "reference.py")}
    c = bench_cli(settings, logs.append)
    assert c["masks"] == 16 and c["repeats"] == 2 and c["official_kind"] == "official"
    assert set(c["seconds"]) == {"help", "score_masks", "official"}
    assert all(len(v) == 2 for v in c["raw"].values()) and c["ratio"]["n"] == 2
    assert 0 < c["miou"] < 1
    text = render_results({"cli": c})
    assert "`dlcv --help`" in text and "`dlcv score-masks PRED GT` (16 masks)" in text
    assert "official / ours" in text and "`dlcv score-masks` >= 7x" in text
    # a missing official script: the reference runs instead, and the results say so
    settings["official_miou"] = str(tmp_path / "nope.py")
    c = bench_cli(settings, logs.append)
    assert c["official_kind"] == "reference" and "nope.py" in c["official_error"]
    assert "ran in its place" in render_results({"cli": c})


def test_score_masks_reads_every_corpus_mask_as_read_mask(tmp_path):
    """The bad-input corpus (scripts/make_bad_corpus.py): every PNG item scored as a prediction
    counts exactly what read_mask decodes (16-bit, palette, alpha, grayscale, off-palette, red), and
    an unreadable one fails with read_mask's own message."""
    import importlib.util
    import shutil

    from dlcv.data.masks import read_mask
    from dlcv.errors import DataError
    from tests.helpers import REPO

    spec = importlib.util.spec_from_file_location("make_bad_corpus", REPO / "scripts" / "make_bad_corpus.py")
    corpus_script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(corpus_script)
    corpus = corpus_script.make_corpus(tmp_path / "corpus")
    items = sorted(i for i in corpus_script.IMAGE_ITEMS if i.endswith("_png")) + sorted(corpus_script.MASK_ITEMS)
    rng = np.random.default_rng(0)
    checked = 0
    for item in items:
        pred_dir, gt_dir = tmp_path / item / "pred", tmp_path / item / "gt"
        pred_dir.mkdir(parents=True)
        shutil.copyfile(corpus[item], pred_dir / "0000_mask.png")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                decoded = read_mask(pred_dir / "0000_mask.png")
        except DataError as exc:
            with pytest.raises(DataError) as got:
                score_folders(pred_dir, pred_dir)
            assert str(got.value) == str(exc)
            continue
        truth = rng.integers(0, 7, decoded.shape).astype(np.uint8)
        _write_set(gt_dir, {"0000": truth})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = score_folders(pred_dir, gt_dir)
        assert np.array_equal(r["confusion"], confusion_numpy(decoded, truth)), item
        checked += 1
    assert checked >= 8


def test_score_masks_refuses_what_read_mask_refuses(tmp_path, monkeypatch):
    """A decompression bomb (over PIL's pixel limit) is a DataError in both readers."""
    from PIL import Image

    from dlcv.data.masks import read_mask
    from dlcv.errors import DataError

    _write_set(tmp_path / "gt", {"0000": np.zeros((40, 40), np.uint8)})
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1600 pixels: over the limit, under twice it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataError) as direct:
            read_mask(tmp_path / "gt" / "0000_mask.png")
        with pytest.raises(DataError) as scored:
            score_folders(tmp_path / "gt", tmp_path / "gt", threads=1)
    assert str(scored.value) == str(direct.value)
