"""Image classification (P1 models A/B, P2 Office-Home fine-tuning): cross entropy, accuracy,
per-class accuracy and the confusion matrix, with torchmetrics (correct under DDP)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from dlcv.data.augment.classify import classify_augment
from dlcv.data.augment.mix import mix_batch
from dlcv.models.classifiers import MODELS, build_classifier
from dlcv.optim import build_optimizer, layerwise_lr_scales
from dlcv.tasks.base import Task


class ClassificationTask(Task):
    def __init__(self, config: dict, inference: bool = False):
        super().__init__(config)
        mcfg = self.cfg.model
        if inference:  # the weights come from the checkpoint: never fetch pretrained files again
            mcfg.pretrained = "none"
        self.augment = classify_augment(self.cfg.augment)
        self.model = build_classifier(mcfg)
        n = mcfg.num_classes
        self.train_loss, self.val_loss = MeanMetric(), MeanMetric()
        self.train_acc = MulticlassAccuracy(n, average="micro")
        self.val_acc = MulticlassAccuracy(n, average="micro")
        self.val_confusion = MulticlassConfusionMatrix(n)

    def forward(self, x):
        return self.model(x)

    def on_after_batch_transfer(self, batch, dataloader_idx):
        x, y = batch
        mix = self.cfg.mix
        mixing = mix.mixup_alpha > 0 or mix.cutmix_alpha > 0
        if self.trainer is not None and self.trainer.training and (self.cfg.augment != "none" or mixing):
            generator = self.augment_generator(x.device)
            x = self.augment(x.float().div_(255), generator)
            if mixing:  # y becomes soft targets (N, classes)
                x, y = mix_batch(x, y, self.cfg.model.num_classes, generator, mix.mixup_alpha, mix.cutmix_alpha,
                                 mix.prob, mix.switch_prob)
        return self.to_device_format(x), y

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.cfg.label_smoothing)  # y: labels or soft targets
        self.check_finite(loss)
        labels = y.argmax(1) if y.dim() == 2 else y  # mixed: the larger share
        self.train_loss.update(loss.detach(), weight=len(y))
        self.train_acc.update(logits.detach().argmax(1), labels)
        self.log("train/loss", self.train_loss, on_step=False, on_epoch=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.model(x)
        self.val_loss.update(F.cross_entropy(logits, y, reduction="none"))
        preds = logits.argmax(1)
        self.val_acc.update(preds, y)
        self.val_confusion.update(preds, y)
        self.log("val/loss", self.val_loss, on_step=False, on_epoch=True)
        self.log("val/acc", self.val_acc, on_step=False, on_epoch=True)

    def on_validation_epoch_end(self):
        # the matrix is for `evaluate`; per-epoch it is only reset (Lightning resets logged metrics)
        self.last_confusion = self.val_confusion.compute().cpu()
        self.val_confusion.reset()

    def lr_scales(self) -> dict[str, float] | None:
        """Per-parameter LR multipliers (names as in the model) when the config asks for a head /
        backbone split or layer-wise decay; None = one lr for every parameter."""
        o = self.cfg.optim
        if o.backbone_lr_scale == 1.0 and o.layer_decay == 1.0:
            return None
        names = [n for n, _ in self.model.named_parameters()]  # frozen ones too: depths are architectural
        return layerwise_lr_scales(o, names, MODELS[self.cfg.model.name].layer_id)

    def configure_optimizers(self):
        conf = super().configure_optimizers()
        scales = self.lr_scales()
        if scales is None:
            return conf
        # The base built the per-step schedule (a LambdaLR multiplier); the optimizer is rebuilt with
        # one group per LR multiplier under the same multiplier, which scales every group's initial lr
        # alike: the head / backbone / layer ratios hold at every step.
        optimizer = build_optimizer(self.cfg.optim, self.model.named_parameters(), lr_scales=scales)
        multiplier = conf["lr_scheduler"]["scheduler"].lr_lambdas[0]
        conf["optimizer"] = optimizer
        conf["lr_scheduler"]["scheduler"] = torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)
        return conf

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if self.cfg.trainer.compile and stage == "fit":
            self.model.compile()  # in place: parameter names (and checkpoints) stay the same
