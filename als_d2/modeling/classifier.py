"""``ImageClassifier``: a detectron2 backbone, global average pooling and a linear head."""

import functools
from typing import Dict, List

import torch
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, Backbone, build_backbone
from detectron2.utils.events import get_event_storage
from torch import nn

from ..structures import TargetBatch, pixel_mean_rgb, stack_images
from .losses import soft_cross_entropy
from .targets import TargetBuilder, build_target_builder

__all__ = ["ImageClassifier"]


@META_ARCH_REGISTRY.register()
class ImageClassifier(nn.Module):
    """Classifies d2-style batches: ``list[dict]`` of the samples of :mod:`als_d2.structures`:
    ``image`` (3xHxW uint8, RGB), and in training ``label`` (int), ``has_boxes`` (bool),
    ``objectness`` (float in [0, 1]), ``context`` (bool) and ``boxes`` (Mx4 XYXY pixels of
    the image, read on the CPU).

    Pixels are normalised with ``pixel_mean``/``pixel_std`` inside the model, so loaders
    move uint8. Training returns ``{"loss_cls": soft-target cross entropy}`` with the
    targets of ``target_builder`` (hard, LS, ALS, CutMix, Mixup, box-aware CutMix);
    inference returns one ``{"logits": K, "probs": K}`` dict per image.
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        in_feature: str,
        num_classes: int,
        pixel_mean,
        pixel_std,
        target_builder: TargetBuilder,
        channels_last: bool = False,
    ):
        super().__init__()
        self.backbone = backbone
        self.in_feature = in_feature
        channels = backbone.output_shape()[in_feature].channels
        self.head = nn.Linear(channels, num_classes)  # torchvision's fc init (nn.Linear's default)
        self.num_classes = num_classes
        self.target_builder = target_builder
        self.channels_last = channels_last
        self.register_buffer(
            "pixel_mean", torch.tensor(pixel_mean, dtype=torch.float32).view(-1, 1, 1), False
        )
        self.register_buffer(
            "pixel_std", torch.tensor(pixel_std, dtype=torch.float32).view(-1, 1, 1), False
        )
        if channels_last:
            self.to(memory_format=torch.channels_last)

    @classmethod
    def from_config(cls, cfg):
        return {
            "backbone": build_backbone(cfg),
            "in_feature": cfg.MODEL.CLASSIFIER.IN_FEATURE,
            "num_classes": cfg.MODEL.CLASSIFIER.NUM_CLASSES,
            # the mapper writes RGB; the config's mean/std are in INPUT.FORMAT's channel order
            "pixel_mean": pixel_mean_rgb(cfg.MODEL.PIXEL_MEAN, cfg.INPUT.FORMAT),
            "pixel_std": pixel_mean_rgb(cfg.MODEL.PIXEL_STD, cfg.INPUT.FORMAT),
            "target_builder": build_target_builder(cfg),
            "channels_last": cfg.MODEL.CHANNELS_LAST,
        }

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def preprocess_image(self, batched_inputs: List[Dict]) -> torch.Tensor:
        """Stack and normalise: N x 3 x H x W float32 on the model's device."""
        images = stack_images([x["image"] for x in batched_inputs]).to(
            self.device, non_blocking=True
        )
        images = (images.float() - self.pixel_mean) / self.pixel_std
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """N x K logits of normalised images."""
        features = self.backbone(images)[self.in_feature]
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(features, 1), 1))

    def forward(self, batched_inputs: List[Dict]):
        images = self.preprocess_image(batched_inputs)
        if not self.training:
            logits = self.logits(images).float()
            probs = logits.softmax(dim=1)
            return [{"logits": l, "probs": p} for l, p in zip(logits, probs)]

        # per-sample values and targets stay on the CPU (box-aware CutMix reads the boxes
        # there); the targets go to the device in one copy, and the logged statistics are
        # read before it, so the forward waits on the device nowhere
        batch = TargetBatch.from_samples(batched_inputs, images)
        images, targets, info = self.target_builder(batch)
        self._log_batch_statistics(batched_inputs, batch, targets, info)
        logits = self.logits(images)
        loss = soft_cross_entropy(logits.float(), targets.to(self.device, non_blocking=True))
        return {"loss_cls": loss}

    def _log_batch_statistics(
        self, batched_inputs: List[Dict], batch: TargetBatch, targets: torch.Tensor, info: Dict
    ) -> None:
        """What this batch trained on, unsmoothed in EventStorage (``metrics.json`` rows):

        * ``als/context_fraction``: fraction of context-only samples;
        * ``als/boxed_fraction``: fraction with boxes (known objectness; context samples
          included);
        * ``als/mean_objectness``: mean objectness over the boxed, non-context samples, read
          from the batch (not from the targets), absent when there are none;
        * ``als/painted_fraction``: mean fraction of the frame painted with the pixel mean;
        * ``als/mean_true_class_target``: mean target mass on the true class;
        * ``als/mixed`` (1.0 / 0.0) and ``als/mix_ratio`` (partner's share, from the
          method's ``info``) for mixing methods;
        * ``als/cutmix`` (1.0 when the batch was mixed by CutMix, else 0.0) for the methods
          that choose per batch (``info["mix_op"]``: mixup_cutmix).

        ``targets`` are still on the CPU: nothing here waits on the device.
        """
        n = len(batched_inputs)
        context = batch.context.tolist()
        known = batch.has_boxes.tolist()
        objectness = [
            float(x["objectness"]) for x, k, c in zip(batched_inputs, known, context) if k and not c
        ]
        true_class = targets.detach().gather(1, batch.labels.to(targets.device)[:, None])
        storage = get_event_storage()
        put = functools.partial(storage.put_scalar, smoothing_hint=False)
        put("als/context_fraction", sum(context) / n)
        put("als/boxed_fraction", sum(known) / n)
        if objectness:
            put("als/mean_objectness", sum(objectness) / len(objectness))
        put(
            "als/painted_fraction",
            sum(float(x.get("painted_fraction", 0.0)) for x in batched_inputs) / n,
        )
        put("als/mean_true_class_target", float(true_class.float().mean()))
        if self.target_builder.mixes:
            mix = info.get("mix_ratio")
            put("als/mixed", 0.0 if mix is None else 1.0)
            put("als/mix_ratio", 0.0 if mix is None else mix)
        if "mix_op" in info:
            put("als/cutmix", 1.0 if info["mix_op"] == "cutmix" else 0.0)
