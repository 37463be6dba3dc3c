"""The plain reference pipeline `dlcv bench` compares the product with.

Written the way the seed and most students write HW1 (and deliberately NOT importing `dlcv`):

* a `Dataset` that opens every file with PIL in `__getitem__`, every epoch;
* torchvision `transforms` per sample (`ToTensor`, `Normalize`, and the same kind of augmentation as
  the product's recipe: random crop/flip/colour jitter, `Resize(232)` + `CenterCrop(224)` for the
  seed's ConvNeXt, two independently drawn views for BYOL, joint flips for segmentation);
* a default `DataLoader` (num_workers=0, no pinned memory), fp32, NCHW (default memory format);
* a plain `for` loop: forward, loss, `zero_grad`, `backward`, `step`.

Models are the same architectures as the product's (so they cost the same FLOPs): the seed CNN,
CIFAR ResNet-18, torchvision ConvNeXt-T with the seed's freeze rule, ResNet-50 + a 65-way head, BYOL
on ResNet-50 (online + EMA target, 4096/256 MLPs), VGG16-FCN32s with fc6/fc7 as plain convolutions,
torchvision DeepLabv3-ResNet50. The optimizer is torch's own for adam/adamw/sgd; the product's LARS
(BYOL) has no torch equivalent and is replaced by momentum SGD (a step of either costs about the same).

The bench drives it through :class:`ReferencePipeline` (setup / train / infer / data_only), one
instance per job, in its own process (see `dlcv.bench`); the job arrives as the product's resolved
config dict plus the bench sizes, so the reference reads the same files with the same batch.

It also holds, first, the course's ``mean_iou_evaluate.py`` in its own shape (`read_masks`: one
image read per file into an ``np.empty((N, 512, 512))`` float64 array with the per-code
assignments; `mean_iou_score`: the per-class loop with its prints), for the `cli` section of
`dlcv bench` when the official script itself is not at hand (``DLCV_OFFICIAL_MIOU`` /
``--official-miou``). Run as a script -- ``python benchmarks/reference.py -g GT_DIR -p PRED_DIR``,
the official flags -- it stops before torch is imported, as the official script imports only
numpy and an image reader (imageio when installed, else Pillow, which imageio uses for PNG).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

# --------------------------------------------------------------------------------------------
# mean_iou_evaluate.py, in the official tool's shape (numpy + one image reader, no torch)


def _imread(path):
    try:
        import imageio.v2 as imageio
    except ImportError:
        from PIL import Image

        return np.asarray(Image.open(path))
    return imageio.imread(path)


def read_masks(filepath):
    """Read masks from directory and transform to categorical (the official loop)."""
    file_list = [file for file in os.listdir(filepath) if file.endswith('.png')]
    file_list.sort()
    n_masks = len(file_list)
    masks = np.empty((n_masks, 512, 512))

    for i, file in enumerate(file_list):
        mask = _imread(os.path.join(filepath, file))
        mask = (mask >= 128).astype(int)
        mask = 4 * mask[:, :, 0] + 2 * mask[:, :, 1] + mask[:, :, 2]
        masks[i, mask == 3] = 0  # (Cyan: 011) Urban land
        masks[i, mask == 6] = 1  # (Yellow: 110) Agriculture land
        masks[i, mask == 5] = 2  # (Purple: 101) Rangeland
        masks[i, mask == 2] = 3  # (Green: 010) Forest land
        masks[i, mask == 1] = 4  # (Blue: 001) Water
        masks[i, mask == 7] = 5  # (White: 111) Barren land
        masks[i, mask == 0] = 6  # (Black: 000) Unknown

    return masks


def mean_iou_score(pred, labels):
    """Compute mean IoU score over 6 classes (the official per-class loop, prints included)."""
    mean_iou = 0
    for i in range(6):
        tp_fp = np.sum(pred == i)
        tp_fn = np.sum(labels == i)
        tp = np.sum((pred == i) * (labels == i))
        iou = tp / (tp_fp + tp_fn - tp)
        mean_iou += iou / 6
        print('class #%d : %1.5f' % (i, iou))
    print('\nmean_iou: %f\n' % mean_iou)

    return mean_iou


def official_miou_main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument('-g', '--labels', help='ground truth masks directory', type=str)
    parser.add_argument('-p', '--pred', help='prediction masks directory', type=str)
    args = parser.parse_args(argv)
    try:
        import imageio  # noqa: F401
        reader = "imageio"
    except ImportError:
        reader = "PIL"
    print(f"reference mean_iou_evaluate.py (official shape, {reader} reads)", file=sys.stderr)

    pred = read_masks(args.pred)
    labels = read_masks(args.labels)

    print(mean_iou_score(pred, labels))
    return 0


if __name__ == "__main__":  # the official script's command line stops here: torch is never imported
    raise SystemExit(official_miou_main())


# --------------------------------------------------------------------------------------------
# the training/inference reference (torch)

import copy  # noqa: E402
import csv  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402
from torchvision import transforms as T  # noqa: E402
from torchvision.transforms import functional as TF  # noqa: E402

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------------------------
# datasets: one PIL open per item, per epoch


class P1Folder(Dataset):
    """`{label}_{id}.png` files; the label is the name's prefix."""

    def __init__(self, folder, transform):
        self.files = sorted(Path(folder).glob("*.png"))
        self.transform = transform

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        path = self.files[i]
        img = Image.open(path).convert("RGB")
        return self.transform(img), int(path.name.split("_")[0])


class OfficeCSV(Dataset):
    """`id,filename,label` CSV + image folder."""

    def __init__(self, csv_path, folder, transform):
        with open(csv_path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        self.items = [(Path(folder) / r["filename"], int(r["label"])) for r in rows]
        self.transform = transform

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path, label = self.items[i]
        return self.transform(Image.open(path).convert("RGB")), label


class TwoViews(Dataset):
    """BYOL: every item is two independently augmented views of one unlabeled image."""

    def __init__(self, folder, view1, view2):
        self.files = sorted(Path(folder).glob("*.jpg"))
        self.view1, self.view2 = view1, view2

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        img = Image.open(self.files[i]).convert("RGB")
        return self.view1(img), self.view2(img)


def read_mask_classes(path) -> np.ndarray:
    """The official `read_masks` rule, per file: binarise at 128, 4R + 2G + B, code -> class id."""
    mask = (np.array(Image.open(path).convert("RGB")) >= 128).astype(int)
    mask = 4 * mask[:, :, 0] + 2 * mask[:, :, 1] + mask[:, :, 2]
    out = np.full(mask.shape, 6, dtype=np.int64)
    for code, cls in ((3, 0), (6, 1), (5, 2), (2, 3), (1, 4), (7, 5), (0, 6)):
        out[mask == code] = cls
    return out


class SatellitePairs(Dataset):
    """`xxxx_sat.jpg` + `xxxx_mask.png`, decoded per item; joint random flips when training."""

    def __init__(self, folder, train: bool, hflip: float = 0.5, vflip: float = 0.5):
        self.sats = sorted(Path(folder).glob("*_sat.jpg"))
        self.train, self.hflip, self.vflip = train, hflip, vflip
        self.normalize = T.Normalize(MEAN, STD)

    def __len__(self):
        return len(self.sats)

    def __getitem__(self, i):
        sat = self.sats[i]
        img = Image.open(sat).convert("RGB")
        mask = torch.from_numpy(read_mask_classes(sat.with_name(sat.name.replace("_sat.jpg", "_mask.png"))))
        x = TF.to_tensor(img)
        if self.train:
            if torch.rand(1) < self.hflip:
                x, mask = TF.hflip(x), mask.flip(-1)
            if torch.rand(1) < self.vflip:
                x, mask = TF.vflip(x), mask.flip(-2)
        return self.normalize(x), mask


# --------------------------------------------------------------------------------------------
# transforms (torchvision, per sample)


def classification_transforms(cfg: dict):
    """(train, eval) transforms matching the product recipe's augmentation kind and input size."""
    m = cfg["model"]
    aug = cfg["augment"]
    norm = [T.ToTensor(), T.Normalize(MEAN, STD)]
    resize = []
    if m.get("resize"):  # the seed's B: Resize(232) + CenterCrop(224)
        resize = [T.Resize(m["resize"]), T.CenterCrop(m["input_size"])]
    elif m.get("input_size"):
        resize = [T.Resize(m["input_size"]), T.CenterCrop(m["input_size"])]
    pre = []
    if cfg["dataset"] == "office":  # Office images of any size -> 128 first, as the course's checkpoint
        pre = [T.Resize(128), T.CenterCrop(128)]
    train: list = list(pre)
    if aug.startswith("crop_flip"):
        train += [T.RandomCrop(32 if cfg["dataset"] == "p1" else 128, padding=4), T.RandomHorizontalFlip()]
    elif aug.startswith("rrc_flip"):
        size = 32 if cfg["dataset"] == "p1" else 128
        train += [T.RandomResizedCrop(size, scale=(0.35, 1.0)), T.RandomHorizontalFlip()]
    if aug.endswith("_jitter"):
        train += [T.RandomApply([T.ColorJitter(0.3, 0.3, 0.3, 0.05)], p=0.8)]
    return T.Compose(train + resize + norm), T.Compose(pre + resize + norm)


def byol_views(cfg: dict):
    """The BYOL paper's two view pipelines (same parameters as the product's `byol` section)."""
    b = cfg["byol"]
    size = b["image_size"]
    kernel = int(0.1 * size)
    kernel = max(3, kernel + 1 if kernel % 2 == 0 else kernel)

    def view(i):
        return T.Compose([
            T.RandomResizedCrop(size, scale=(b["crop_scale_min"], 1.0)),
            T.RandomHorizontalFlip(),
            T.RandomApply([T.ColorJitter(b["brightness"], b["contrast"], b["saturation"], b["hue"])],
                          p=b["jitter_p"][i]),
            T.RandomGrayscale(p=b["grayscale_p"][i]),
            T.RandomApply([T.GaussianBlur(kernel, (0.1, 2.0))], p=b["blur_p"][i]),
            T.RandomSolarize(0.5, p=b["solarize_p"][i]),
            T.ToTensor(), T.Normalize(MEAN, STD),
        ])

    return view(0), view(1)


# --------------------------------------------------------------------------------------------
# models: the same architectures, written plainly


def seed_cnn(num_classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 8 * 8, 128), nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, num_classes))


def resnet18_cifar(num_classes: int, width: int = 64) -> nn.Module:
    from torchvision.models.resnet import BasicBlock

    m = torchvision.models.resnet18(num_classes=num_classes)
    if width != 64:
        m.inplanes = width
        for i, stride in enumerate((1, 2, 2, 2)):
            setattr(m, f"layer{i + 1}", m._make_layer(BasicBlock, width * 2**i, 2, stride=stride))
        m.fc = nn.Linear(width * 8, num_classes)
    m.conv1 = nn.Conv2d(3, width, 3, stride=1, padding=1, bias=False)
    m.bn1 = nn.BatchNorm2d(width)
    m.maxpool = nn.Identity()
    return m


def convnext_tiny_seed(num_classes: int) -> nn.Module:
    m = torchvision.models.convnext_tiny()
    m.classifier[2] = nn.Linear(768, num_classes)
    for name, p in m.named_parameters():  # the seed: only the last stage and the classifier learn
        p.requires_grad = name.startswith(("features.7", "classifier"))
    return m


def resnet50_head(num_classes: int) -> nn.Module:
    m = torchvision.models.resnet50()
    m.fc = nn.Linear(2048, num_classes)
    return m


def _mlp(i, h, o):
    return nn.Sequential(nn.Linear(i, h), nn.BatchNorm1d(h), nn.ReLU(inplace=True), nn.Linear(h, o))


class PlainBYOL(nn.Module):
    def __init__(self, hidden: int = 4096, proj: int = 256):
        super().__init__()
        self.backbone = torchvision.models.resnet50()
        self.backbone.fc = nn.Identity()
        self.projector = _mlp(2048, hidden, proj)
        self.predictor = _mlp(proj, hidden, proj)
        self.target_backbone = copy.deepcopy(self.backbone)
        self.target_projector = copy.deepcopy(self.projector)
        for p in list(self.target_backbone.parameters()) + list(self.target_projector.parameters()):
            p.requires_grad = False

    @staticmethod
    def _loss(p, z):
        return 2 - 2 * F.cosine_similarity(p, z.detach(), dim=-1).mean()

    def forward(self, v1, v2):
        p1 = self.predictor(self.projector(self.backbone(v1)))
        p2 = self.predictor(self.projector(self.backbone(v2)))
        with torch.no_grad():
            t1 = self.target_projector(self.target_backbone(v1))
            t2 = self.target_projector(self.target_backbone(v2))
        return self._loss(p1, t2) + self._loss(p2, t1)

    @torch.no_grad()
    def update_target(self, tau: float = 0.996):
        for online, target in ((self.backbone, self.target_backbone), (self.projector, self.target_projector)):
            for po, pt in zip(online.parameters(), target.parameters()):
                pt.data = tau * pt.data + (1 - tau) * po.data


class PlainFCN32s(nn.Module):
    """VGG16 conv1-5, fc6 (7x7 conv, padding 3) / fc7 (1x1) with dropout, 1x1 score, one 32x
    transposed conv, crop to the input: the product's FCN32s layer for layer."""

    def __init__(self, num_classes: int = 7, dropout: float = 0.5):
        super().__init__()
        self.features = torchvision.models.vgg16().features
        self.fc = nn.Sequential(
            nn.Conv2d(512, 4096, 7, padding=3), nn.ReLU(inplace=True), nn.Dropout2d(dropout),
            nn.Conv2d(4096, 4096, 1), nn.ReLU(inplace=True), nn.Dropout2d(dropout),
            nn.Conv2d(4096, num_classes, 1))
        self.upscore = nn.ConvTranspose2d(num_classes, num_classes, 64, stride=32, bias=False)

    def forward(self, x):
        h, w = x.shape[-2:]
        y = self.upscore(self.fc(self.features(x)))
        return {"out": y[:, :, 16:16 + h, 16:16 + w]}


def build_model(cfg: dict) -> nn.Module:
    task = cfg["task"]
    m = cfg["model"]
    if task == "byol":
        return PlainBYOL(m["hidden_dim"], m["proj_dim"])
    if task == "segment":
        if m["name"] == "fcn32s":
            return PlainFCN32s(7, m.get("dropout", 0.5))
        return torchvision.models.segmentation.deeplabv3_resnet50(
            weights=None, weights_backbone=None, num_classes=7, aux_loss=False)
    n = m["num_classes"]
    name = m["name"]
    if name == "seed_a":
        return seed_cnn(n)
    if name == "resnet18_cifar":
        return resnet18_cifar(n, m.get("width") or 64)
    if name == "convnext_tiny":
        return convnext_tiny_seed(n)
    if name == "resnet50":
        return resnet50_head(n)
    raise ValueError(f"the reference has no plain version of {name!r}")


def build_optimizer(cfg: dict, model: nn.Module):
    o = cfg["optim"]
    params = [p for p in model.parameters() if p.requires_grad]
    if o["name"] == "adam":
        return torch.optim.Adam(params, lr=o["lr"], weight_decay=o["weight_decay"])
    if o["name"] == "adamw":
        return torch.optim.AdamW(params, lr=o["lr"], weight_decay=o["weight_decay"])
    # sgd, and lars (no torch equivalent): momentum SGD
    return torch.optim.SGD(params, lr=o["lr"], momentum=o["momentum"], weight_decay=o["weight_decay"])


# --------------------------------------------------------------------------------------------


class ReferencePipeline:
    """One job of the plain reference. `job`: {"config": resolved product config dict, "root": data
    folder, "batch": training batch, "infer_batch": inference batch}."""

    def __init__(self, job: dict):
        self.job = job
        self.cfg = job["config"]
        self.batch = job["batch"]
        self.infer_batch = job["infer_batch"]
        self.device = torch.device(job.get("device", "cpu"))
        self.task = self.cfg["task"]

    # -- building ---------------------------------------------------------------------------
    def setup(self) -> None:
        root = Path(self.job["root"])
        cfg = self.cfg
        if self.task == "classify":
            train_tf, eval_tf = classification_transforms(cfg)
            if cfg["dataset"] == "p1":
                self.train_set = P1Folder(root / "p1_data" / "train_50", train_tf)
                self.val_set = P1Folder(root / "p1_data" / "val_50", eval_tf)
            else:
                office = root / "p2_data" / "office"
                self.train_set = OfficeCSV(office / "train.csv", office / "train", train_tf)
                self.val_set = OfficeCSV(office / "val.csv", office / "val", eval_tf)
            self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.get("label_smoothing", 0.0))
        elif self.task == "byol":
            v1, v2 = byol_views(cfg)
            self.train_set = TwoViews(root / "p2_data" / "mini" / "train", v1, v2)
            # inference = the backbone's features of Office val images at the pre-training size
            office = root / "p2_data" / "office"
            size = cfg["byol"]["image_size"]
            self.val_set = OfficeCSV(office / "val.csv", office / "val",
                                     T.Compose([T.Resize(size), T.CenterCrop(size), T.ToTensor(), T.Normalize(MEAN, STD)]))
        else:
            a = cfg["augment"]
            self.train_set = SatellitePairs(root / "p3_data" / "train", True, a["hflip"], a["vflip"])
            self.val_set = SatellitePairs(root / "p3_data" / "validation", False)
            self.criterion = nn.CrossEntropyLoss()
        self.model = build_model(cfg).to(self.device)
        self.optimizer = build_optimizer(cfg, self.model)

    def train_loader(self):
        return DataLoader(self.train_set, batch_size=self.batch, shuffle=True)

    def val_loader(self):
        return DataLoader(self.val_set, batch_size=self.infer_batch, shuffle=False)

    # -- one training step --------------------------------------------------------------------
    def _step(self, batch) -> None:
        model, opt = self.model, self.optimizer
        if self.task == "byol":
            v1, v2 = (t.to(self.device) for t in batch)
            loss = model(v1, v2)
        else:
            x, y = (t.to(self.device) for t in batch)
            out = model(x)
            if isinstance(out, dict):
                out = out["out"]
            loss = self.criterion(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if self.task == "byol":
            model.update_target()

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    # -- what the bench measures ----------------------------------------------------------------
    def train(self, steps: int) -> dict:
        """`steps` training steps from a fresh iterator (like an epoch start): total and data time."""
        self.model.train()
        self._sync()
        t0 = time.perf_counter()
        it = iter(self.train_loader())
        data = 0.0
        images = 0
        for _ in range(steps):
            t = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                it = iter(self.train_loader())
                batch = next(it)
            data += time.perf_counter() - t
            images += len(batch[0])
            self._step(batch)
        self._sync()
        return {"images": images, "seconds": time.perf_counter() - t0, "data_seconds": data}

    @torch.no_grad()
    def infer(self, images: int) -> dict:
        """Prediction over the first `images` validation items (whole batches), eval mode, no_grad."""
        self.model.eval()
        model = self.model.backbone if self.task == "byol" else self.model
        done = 0
        self._sync()
        t0 = time.perf_counter()
        for x, _ in self.val_loader():
            x = x.to(self.device)
            out = model(x)
            if isinstance(out, dict):
                out = out["out"]
            if self.task == "byol":
                F.normalize(out, dim=1).cpu()
            else:
                out.argmax(1).cpu()
            done += len(x)
            if done >= images:
                break
        self._sync()
        seconds = time.perf_counter() - t0
        self.model.train()
        return {"images": done, "seconds": seconds}

    def data_only(self, batches: int) -> dict:
        """The input pipeline alone: `batches` training batches, no model."""
        t0 = time.perf_counter()
        it = iter(self.train_loader())
        images = 0
        for _ in range(batches):
            try:
                batch = next(it)
            except StopIteration:
                it = iter(self.train_loader())
                batch = next(it)
            images += len(batch[0])
        return {"images": images, "seconds": time.perf_counter() - t0}
