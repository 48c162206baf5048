#!/usr/bin/env python
"""`make demo`: the most complete real end-to-end path als-d2 has today.

Today: the environment report, then one real training step and one inference pass of a
small detectron2 ResNet classifier stem on CPU (the full demo, ALS vs hard labels on a
generated context-biased ImageNet, lands with the demo issue).
"""
import argparse
import time

import als_d2  # noqa: F401  (detectron2 bootstrap first)
import torch
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_resnet_backbone

from als_d2.env import collect, format_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller and faster")
    args = parser.parse_args()
    print(format_rows(collect()))

    cfg = get_cfg()
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.RESNETS.STRIDE_IN_1X1 = False
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res5"]
    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    cfg.MODEL.RESNETS.NORM = "BN"
    backbone = build_resnet_backbone(cfg, ShapeSpec(channels=3))
    head = torch.nn.Linear(backbone.output_shape()["res5"].channels, 10)
    opt = torch.optim.SGD(list(backbone.parameters()) + list(head.parameters()), lr=0.01, momentum=0.9)
    size = 64 if args.quick else 112
    images, labels = torch.randn(8, 3, size, size), torch.randint(0, 10, (8,))
    t0 = time.perf_counter()
    losses = []
    for _ in range(3):
        logits = head(backbone(images)["res5"].mean(dim=(2, 3)))
        loss = torch.nn.functional.cross_entropy(logits, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    print(f"\nd2 ResNet-18 classifier, 3 SGD steps on one batch of 8 at {size}px: "
          f"loss {losses[0]:.3f} -> {losses[-1]:.3f} ({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
