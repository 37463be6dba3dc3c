"""The two sides of every comparison behind one interface (setup / train / infer / data_only /
flops / stats): the product's pipeline (`OursPipeline`) and the plain reference of
`benchmarks/reference.py` (`RefPipeline`)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from dlcv.bench.measure import count_flops, cuda_sync, process_stats, step_timer
from dlcv.bench.specs import BENCH_DIR


class OursPipeline:
    """One job through the product: its task, its datamodule, a Trainer from the engine."""

    def __init__(self, job: dict):
        import torch

        from dlcv.config import from_dict

        self.job = job
        self.cfg = from_dict(job["config"])
        self.device = torch.device(job["device"])
        self.run_dir = Path(job["run_dir"])
        self.defaults = {k: self.cfg.trainer[k] for k in ("channels_last", "precision", "compile")}

    # -- building -----------------------------------------------------------------------------
    def setup(self, warmup: int, variants: list) -> dict:
        import numpy as np

        from dlcv.config import to_dict
        from dlcv.engine import seed_run

        cfg = self.cfg
        seed_run(cfg)
        t0 = time.perf_counter()
        if cfg.task == "classify":
            from dlcv.jobs import classify
            from dlcv.tasks.classification import ClassificationTask

            train, val = classify.load_sets(cfg)
            self.task = ClassificationTask(to_dict(cfg))
            self.dm = classify.datamodule(cfg, train, val)
            self.val_images = val.images
        elif cfg.task == "byol":
            from dlcv.data.cache import cache_dir
            from dlcv.data.mini import load_mini_folder
            from dlcv.data.office import load_office_split
            from dlcv.data.sets import BatchDataset
            from dlcv.engine import ArrayDataModule
            from dlcv.jobs.byol import check_config
            from dlcv.tasks.byol import ByolTask

            check_config(cfg)
            root = Path(cfg.data.root)
            mini = load_mini_folder(root / "p2_data" / "mini" / "train", cache_dir(cfg), cfg.data.image_size,
                                    cfg.data.limit)
            self.task = ByolTask(to_dict(cfg), None)
            self.dm = ArrayDataModule(BatchDataset(mini.images, mini.labels), None, cfg.data.batch_size,
                                      cfg.data.eval_batch_size, cfg.data.num_workers, cfg.run.seed)
            # inference = the kNN monitor's path: backbone features of Office val images
            self.val_images = load_office_split(root / "p2_data" / "office", "val", cache_dir(cfg)).images
        else:
            from dlcv.jobs import segment
            from dlcv.tasks.segmentation import SegmentationTask

            train, val = segment.load_sets(cfg)
            self.task = SegmentationTask(to_dict(cfg))
            self.dm = segment.datamodule(cfg, train, val)
            self.val_images = val.images
        self.val_images = np.asarray(self.val_images)
        data_s = time.perf_counter() - t0
        self._flops = self._count_flops()  # before any training: nothing held yet
        t0 = time.perf_counter()
        self._fit(warmup)
        self.infer(self.job["infer_batch"])
        for v in variants:  # the first steps in another memory format/precision build new kernels
            self.train(warmup, v)
            self.infer(self.job["infer_batch"], v)
        return {"data_setup_s": round(data_s, 2), "warmup_s": round(time.perf_counter() - t0, 2),
                "train_items": len(self.dm.train_set), "val_items": len(self.val_images)}

    # -- variants (channels_last on/off, precision) ---------------------------------------------
    def _apply(self, variant: Optional[dict]) -> None:
        import torch

        values = dict(self.defaults, **(variant or {}))
        for k, v in values.items():
            self.cfg.trainer[k] = v
            self.task.cfg.trainer[k] = v
        fmt = torch.channels_last if values["channels_last"] else torch.contiguous_format
        self.task.to(memory_format=fmt)

    def _fit(self, steps: int, profile_rows: int = 0):
        from dlcv.callbacks import SeedEachStep
        from dlcv.engine import build_trainer

        timer = step_timer(self.device, profile_rows)
        trainer = build_trainer(self.cfg, self.run_dir, monitor=None, fitting=False,
                                callbacks=[SeedEachStep(self.cfg.run.seed), timer])
        trainer.limit_train_batches = int(steps)  # an int: 1 means one batch, not 100%
        trainer.limit_val_batches = 0
        trainer.fit(self.task, datamodule=self.dm)
        return timer

    # -- measurements ---------------------------------------------------------------------------
    def train(self, steps: int, variant: Optional[dict] = None) -> dict:
        self._apply(variant)
        try:
            return self._fit(steps).result()
        finally:
            self._apply(None)

    def infer(self, images: int, variant: Optional[dict] = None) -> dict:
        """Prediction as the product predicts: classification = the loop of
        `dlcv.graded.models.predict_labels`; BYOL = `dlcv.tasks.byol.embed` (the kNN monitor);
        segmentation = `dlcv.graded.p3.classify_batch` (hw1_3.sh)."""
        import numpy as np
        import torch

        self._apply(variant)
        cl = bool(self.task.cfg.trainer.channels_last)
        dev, b = self.device, self.job["infer_batch"]
        task = self.task
        task.to(dev)
        n_val = len(self.val_images)
        done = 0
        try:
            if task.cfg.task == "byol":
                from dlcv.tasks.byol import embed

                def run(batch):
                    embed(task.byol.backbone, task.knn_input, batch, dev, batch_size=b, channels_last=cl).cpu()
            elif task.cfg.task == "segment":
                from dlcv.graded.p3 import classify_batch

                segmenter = task.segmenter.eval()

                def run(batch):
                    classify_batch(segmenter, batch, dev, cl, False)
            else:
                model = task.model.eval()

                def run(batch):
                    with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16,
                                                                enabled=dev.type == "cuda"):
                        x = torch.from_numpy(np.ascontiguousarray(batch)).to(dev, non_blocking=True)
                        if cl:
                            x = x.contiguous(memory_format=torch.channels_last)
                        model(x).argmax(1).cpu()
            cuda_sync(dev)
            t0 = time.perf_counter()
            while done < images:
                start = done % n_val
                batch = self.val_images[start:start + min(b, images - done, n_val - start)]
                run(batch)
                done += len(batch)
            cuda_sync(dev)
            seconds = time.perf_counter() - t0
        finally:
            task.train()
            self._apply(None)
        return {"images": done, "seconds": seconds}

    def data_only(self, batches: int) -> dict:
        """The input pipeline alone: loader batches through the task's on_after_batch_transfer
        (host->device copy + batched augmentation), no model."""
        trainer = self.task.trainer  # attached by the last fit
        trainer.training = True  # the hooks augment only while training
        loader = self.dm.train_dataloader()
        images = 0
        cuda_sync(self.device)
        t0 = time.perf_counter()
        it = iter(loader)
        for _ in range(batches):
            try:
                batch = next(it)
            except StopIteration:
                it = iter(loader)
                batch = next(it)
            batch = self.task._apply_batch_transfer_handler(batch, self.device)
            images += len(batch[0])
        cuda_sync(self.device)
        seconds = time.perf_counter() - t0
        trainer.training = False
        return {"images": images, "seconds": seconds}

    def flops(self) -> dict:
        return self._flops

    def _count_flops(self) -> dict:
        """FLOPs per image of one training step (forward + backward) and of one prediction."""
        import torch
        import torch.nn.functional as F

        from dlcv.config import to_dict

        cfg, b = self.cfg, self.job["batch"]
        cl = torch.channels_last if cfg.trainer.channels_last else torch.contiguous_format
        if cfg.task == "classify":
            from dlcv.models.classifiers import build_classifier

            size = tuple(self.val_images.shape[1:])

            def build():
                return build_classifier(cfg.model).to(memory_format=cl)

            def fwd(m):
                x = torch.empty((b, *size), dtype=torch.uint8).contiguous(memory_format=cl)
                return F.cross_entropy(m(x), torch.zeros(b, dtype=torch.long))
        elif cfg.task == "byol":
            from dlcv.tasks.byol import ByolTask

            s = cfg.byol.image_size

            def build():
                return ByolTask(to_dict(cfg), None).byol.to(memory_format=cl)

            def fwd(m):
                v = torch.empty(b, 3, s, s).contiguous(memory_format=cl)
                return m(v, v)["loss"] if m.training else m.backbone(v)
        else:
            from dlcv.models.segmentation import build_segmenter

            s = cfg.data.crop or self.val_images.shape[-1]

            def build():
                return build_segmenter(cfg.model.name, 7, "none", aux_loss=cfg.model.aux_loss_weight > 0,
                                       dropout=cfg.model.dropout).to(memory_format=cl)

            def fwd(m):
                x = torch.empty(b, 3, s, s).contiguous(memory_format=cl)
                return F.cross_entropy(m(x), torch.zeros(b, s, s, dtype=torch.long))
        train = count_flops(build, fwd, True) / b
        infer = count_flops(build, fwd, False) / b
        return {"train_flops_per_image": train, "infer_flops_per_image": infer}

    def profile(self, rows: int = 12) -> dict:
        timer = self._fit(1, profile_rows=rows)
        return {"table": timer.table, "top": timer.top}

    def stats(self) -> dict:
        return process_stats(self.device)


def load_reference():
    """benchmarks/reference.py as a module (it is not part of the installed package)."""
    import importlib.util

    path = BENCH_DIR / "reference.py"
    spec = importlib.util.spec_from_file_location("dlcv_bench_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class RefPipeline:
    """Adapter: the plain reference behind the same commands as OursPipeline."""

    def __init__(self, job: dict):
        import torch

        self.job = job
        self.ref = load_reference()
        self.pipe = self.ref.ReferencePipeline(job)
        self.device = torch.device(job["device"])

    def setup(self, warmup: int, variants: list) -> dict:
        t0 = time.perf_counter()
        self._flops = self._count_flops()
        self.pipe.setup()
        self.pipe.train(warmup)
        self.pipe.infer(self.job["infer_batch"])
        return {"warmup_s": round(time.perf_counter() - t0, 2), "train_items": len(self.pipe.train_set),
                "val_items": len(self.pipe.val_set)}

    def train(self, steps: int, variant=None) -> dict:
        return self.pipe.train(steps)

    def infer(self, images: int, variant=None) -> dict:
        return self.pipe.infer(images)

    def data_only(self, batches: int) -> dict:
        return self.pipe.data_only(batches)

    def flops(self) -> dict:
        return self._flops

    def _count_flops(self) -> dict:
        import torch

        cfg, b, ref = self.job["config"], self.job["batch"], self.ref
        task = cfg["task"]
        if task == "classify":
            size = 32 if cfg["dataset"] == "p1" else 128
            if cfg["model"].get("input_size"):
                size = cfg["model"]["input_size"]
            shape, target = (b, 3, size, size), (b,)
        elif task == "byol":
            s = cfg["byol"]["image_size"]
            shape, target = (b, 3, s, s), None
        else:
            s = cfg["data"]["crop"] or 512
            shape, target = (b, 3, s, s), (b, s, s)

        def build():
            return ref.build_model(cfg)

        def fwd(m):
            x = torch.empty(shape)
            if task == "byol":
                return m(x, x) if m.training else m.backbone(x)
            out = m(x)
            out = out["out"] if isinstance(out, dict) else out
            return torch.nn.functional.cross_entropy(out, torch.zeros(target, dtype=torch.long))

        train = count_flops(build, fwd, True) / b
        infer = count_flops(build, fwd, False) / b
        return {"train_flops_per_image": train, "infer_flops_per_image": infer}

    def stats(self) -> dict:
        return process_stats(self.device)
