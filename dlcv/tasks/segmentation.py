"""P3 semantic segmentation: joint image/mask augmentation on the device, cross entropy or focal
loss, and the official mIoU from one 7x7 confusion matrix accumulated over the whole validation set.

Test-time augmentation (``eval.tta``: none | flip | multiscale | flip_multiscale, ``eval.tta_scales``;
:func:`dlcv.graded.models.segment_scores`, the same function hw1_3.sh runs) applies where the job
sets :attr:`SegmentationTask.eval_tta`: the final evaluation of a run and ``dlcv evaluate``, never
the per-epoch validation that picks the best epoch.

Metric: :class:`dlcv.seg_metrics.ConfusionMatrix` (a torchmetrics Metric summed over DDP ranks;
the engine's evaluation sampler gives every validation image to exactly one rank, so no image is
counted twice). Each epoch logs ``val/miou`` (the checkpoint monitor, higher is better),
``val/pixel_acc`` and ``val/iou_<class>`` for the six scored classes. A class absent from both the
prediction and the truth of the whole set has no IoU: it is logged as NaN in its own column and
left out of ``val/miou`` (the mean over the present classes); the official
``mean_iou_evaluate.py`` would print ``nan`` for the mean in that case (see
:mod:`dlcv.seg_metrics`). On the real validation set all six classes are present and the two
means are the same number.

Padding: where the random zoom-out of :func:`dlcv.data.augment.joint_geometric` shows area outside
the source image, the mask gets :data:`IGNORE` and those pixels are left out of the loss (they are
not data; labelling them "unknown" would teach "black border = unknown").
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric

from dlcv.data import augment as aug
from dlcv.data.masks import CLASS_NAMES, EVAL_CLASSES, NUM_CLASSES
from dlcv.errors import ConfigError
from dlcv.graded.models import TTA_MODES, segment_scores
from dlcv.models.segmentation import build_segmenter
from dlcv.seg_iou import iou_from_confusion
from dlcv.seg_metrics import ConfusionMatrix
from dlcv.tasks.base import Task

IGNORE = 255  # mask value of augmentation padding; ignored by the losses
LOSSES = ("ce", "focal")


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0,
               ignore_index: int = IGNORE) -> torch.Tensor:
    """Multi-class focal loss (Lin et al. 2017) without the alpha weights: the mean over the
    non-ignored pixels of ``-(1 - p_t)^gamma log p_t``; gamma = 0 is exactly cross entropy.
    Computed in float32 whatever the autocast dtype (log-probabilities of confident pixels
    underflow in bf16)."""
    logp = F.log_softmax(logits.float(), dim=1)
    valid = target != ignore_index
    safe = torch.where(valid, target, torch.zeros_like(target))
    logpt = logp.gather(1, safe.unsqueeze(1)).squeeze(1)
    weight = (1 - logpt.exp()).clamp_min(0).pow(gamma) if gamma else 1.0
    loss = -(weight * logpt)
    return (loss * valid).sum() / valid.sum().clamp_min(1)


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, name: str, gamma: float) -> torch.Tensor:
    if name == "ce":
        return F.cross_entropy(logits.float(), target, ignore_index=IGNORE)
    if name == "focal":
        return focal_loss(logits, target, gamma)
    raise ValueError(f"unknown loss {name!r}; known: {LOSSES}")


def augment_pair(x: torch.Tensor, y: torch.Tensor, acfg, crop: int, generator: torch.Generator):
    """Float images in [0, 1] (N,3,H,W) and uint8 masks (N,H,W) -> the same with one random geometry
    per sample (zoom, crop of `crop` px, flips, 90-degree turns; padding -> IGNORE in the mask),
    after an optional colour jitter of the image alone. `crop` 0 keeps the input size."""
    out_size = crop or None
    if acfg.enabled:
        if acfg.jitter > 0:  # before the geometry, so that padding stays black (and ignored)
            x = aug.color_jitter(x, generator, brightness=acfg.jitter, contrast=acfg.jitter,
                                 saturation=acfg.jitter, hue=acfg.jitter / 8, p=acfg.jitter_p)
        x, y = aug.joint_geometric(x, y, generator, out_size=out_size, scale=tuple(acfg.scale),
                                   hflip_p=acfg.hflip, vflip_p=acfg.vflip, rot90=acfg.rot90, mask_fill=IGNORE)
    elif crop and tuple(x.shape[-2:]) != (crop, crop):  # no augmentation, but a crop was asked for
        x, y = aug.joint_geometric(x, y, generator, out_size=crop, scale=(1.0, 1.0), hflip_p=0.0, vflip_p=0.0,
                                   rot90=False, mask_fill=IGNORE)
    return x, y


class SegmentationTask(Task):
    def __init__(self, config: dict, inference: bool = False):
        super().__init__(config)
        mcfg = self.cfg.model
        if self.cfg.loss.name not in LOSSES:
            raise ValueError(f"unknown loss {self.cfg.loss.name!r}; known: {LOSSES}")
        if mcfg.aux_loss_weight < 0:
            raise ValueError(f"model.aux_loss_weight must be >= 0, got {mcfg.aux_loss_weight}")
        if self.cfg.eval.tta not in TTA_MODES or not self.cfg.eval.tta_scales or min(self.cfg.eval.tta_scales) <= 0:
            raise ConfigError(f"eval.tta must be one of {', '.join(TTA_MODES)} and eval.tta_scales positive "
                              f"numbers; got {self.cfg.eval.tta!r}, {list(self.cfg.eval.tta_scales)}")
        # the TTA of validation: "none" for the per-epoch validation (it picks the best epoch and
        # stays comparable across runs); the job sets cfg.eval.tta for the final evaluation
        self.eval_tta = "none"
        # inference: the weights come from the checkpoint; never fetch pretrained files again
        self.segmenter = build_segmenter(mcfg.name, NUM_CLASSES, "none" if inference else mcfg.pretrained,
                                         aux_loss=mcfg.aux_loss_weight > 0, dropout=mcfg.dropout)
        self.train_loss, self.val_loss = MeanMetric(), MeanMetric()
        self.val_confusion = ConfusionMatrix()
        self.last_confusion: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.segmenter(x)

    def on_after_batch_transfer(self, batch, dataloader_idx):
        x, y = batch
        if self.trainer is not None and self.trainer.training:
            x, y = augment_pair(x.float().div_(255), y, self.cfg.augment, self.cfg.data.crop,
                                self.augment_generator(x.device))
        # evaluation keeps uint8 images: the Segmenter normalises them itself
        return self.to_device_format(x), y.long()

    def training_step(self, batch, batch_idx):
        x, y = batch
        lcfg, weight = self.cfg.loss, self.cfg.model.aux_loss_weight
        if weight > 0:
            logits, aux = self.segmenter(x, with_aux=True)
            loss = (segmentation_loss(logits, y, lcfg.name, lcfg.focal_gamma)
                    + weight * segmentation_loss(aux, y, lcfg.name, lcfg.focal_gamma))
        else:
            loss = segmentation_loss(self.segmenter(x), y, lcfg.name, lcfg.focal_gamma)
        self.check_finite(loss)
        self.train_loss.update(loss.detach(), weight=len(y))
        self.log("train/loss", self.train_loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        if self.eval_tta == "none":
            logits = self.segmenter(x)
            loss = segmentation_loss(logits, y, self.cfg.loss.name, self.cfg.loss.focal_gamma)
        else:  # mean softmax of the TTA views; the loss is the cross entropy of that mean
            logits = segment_scores(self.segmenter, x, self.eval_tta, self.cfg.eval.tta_scales)
            loss = F.nll_loss(logits.clamp_min(1e-8).log(), y, ignore_index=IGNORE)
        self.val_loss.update(loss, weight=len(y))
        self.val_confusion.update(logits.argmax(1), y)
        self.log("val/loss", self.val_loss, on_step=False, on_epoch=True)

    def on_validation_epoch_end(self):
        # compute() sums the matrix over every rank: every process gets the same numbers
        cm = self.val_confusion.compute()
        self.val_confusion.reset()
        self.last_confusion = cm.cpu()
        result = iou_from_confusion(self.last_confusion)
        # identical on every rank already; sync_dist only keeps Lightning's DDP check quiet (mean of equals)
        values = {"val/miou": result["miou"], "val/pixel_acc": float(cm.diag().sum()) / max(1, int(cm.sum()))}
        values.update({f"val/iou_{CLASS_NAMES[i]}": result["iou"][i] for i in range(EVAL_CLASSES)})  # nan: absent
        self.log_dict(values, sync_dist=True)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if self.cfg.trainer.compile and stage == "fit":
            self.segmenter.net.compile()  # in place: parameter names (and checkpoints) stay the same
