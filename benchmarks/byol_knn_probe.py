"""kNN probe of a BYOL backbone on the P2 demo Office data, per label kind: data or code?

    python benchmarks/byol_knn_probe.py DATA_ROOT [RUN_DIR ...] [--size 32] [--backbone resnet18]

For the random-init backbone (seed 0) and the `backbone.pt` of each run folder given, prints the
kNN accuracy (Office train = bank -> val = queries, the monitor's rule: cosine-weighted k = 20,
T = 0.07) for the labels the images carry:

* ``class``  the Office demo label (whatever the generator makes the 65 classes of);
* ``shape`` / ``colour`` / ``texture``: the attributes of the demo's Office classes, fixed
  (shape, colour, texture) triples (`dlcv.demo.p2.OFFICE_CLASSES`): each image labelled by one
  attribute only. Run it with the dlcv version that generated DATA_ROOT.

A BYOL that learns its augmentations' invariances moves features AWAY from colour (colour jitter,
grayscale) and TOWARDS shape; if the classes are defined by colour, its class kNN falls although it
learns. A bug (no learning, collapse) moves none of these, or all of them down.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch


def _features(backbone, images: np.ndarray, size: int) -> torch.Tensor:
    from dlcv.models.classifiers import Preprocess
    from dlcv.tasks.byol import embed

    return embed(backbone, Preprocess(size=size), images, torch.device("cpu"))


def _attribute_labels(labels: np.ndarray) -> dict[str, np.ndarray]:
    """The class label, and the label of each attribute the demo's Office classes have."""
    from dlcv.demo.p2 import OFFICE_CLASSES

    out = {"class": labels}
    for attr in ("shape", "color", "texture"):
        if all(hasattr(c, attr) for c in OFFICE_CLASSES):
            names = sorted({getattr(c, attr) for c in OFFICE_CLASSES})
            out[attr.replace("color", "colour")] = np.array([names.index(getattr(OFFICE_CLASSES[int(i)], attr))
                                                             for i in labels])
    return out


def probe(backbone, train, val, size: int) -> dict[str, float]:
    from dlcv.tasks.byol import knn_predict

    bank, queries = _features(backbone, train.images, size), _features(backbone, val.images, size)
    result = {}
    bank_attr, query_attr = _attribute_labels(train.labels), _attribute_labels(val.labels)
    for name, bank_labels in bank_attr.items():
        n = int(max(bank_labels.max(), query_attr[name].max())) + 1
        pred = knn_predict(bank, torch.as_tensor(bank_labels), queries, 20, n)
        result[name] = float((pred.numpy() == query_attr[name]).mean())
        result[name + "_chance"] = 1.0 / len(np.unique(query_attr[name]))
    return result


def main(argv: list[str]) -> int:
    from dlcv.data.office import load_office_split
    from dlcv.tasks.byol import build_backbone

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data_root", type=Path)
    ap.add_argument("runs", type=Path, nargs="*")
    ap.add_argument("--size", type=int, default=32, help="the BYOL view size (the monitor's input size)")
    ap.add_argument("--backbone", default="resnet18")
    args = ap.parse_args(argv)
    office = args.data_root / "p2_data" / "office"
    train, val = load_office_split(office, "train"), load_office_split(office, "val")
    torch.manual_seed(0)
    models = {"random init": build_backbone(args.backbone)[0]}
    for run in args.runs:
        net = build_backbone(args.backbone)[0]
        net.load_state_dict(torch.load(run / "backbone.pt", weights_only=True))
        models[str(run.name)] = net
    for name, net in models.items():
        r = probe(net, train, val, args.size)
        cols = "  ".join(f"{k} {r[k]:.1%} (chance {r[k + '_chance']:.1%})" for k in r if not k.endswith("_chance"))
        print(f"{name:>16}: {cols}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
