"""``ResNetRes5ROIHeads``: detectron2's C4 box head for ResNets of every depth."""

from detectron2.modeling.backbone.resnet import BasicBlock, ResNet
from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY, Res5ROIHeads
from torch import nn

__all__ = ["ResNetRes5ROIHeads"]


@ROI_HEADS_REGISTRY.register()
class ResNetRes5ROIHeads(Res5ROIHeads):
    """Res5ROIHeads whose res5 matches ``build_resnet_backbone``'s res5 for any depth:
    BasicBlocks for R18 (2 blocks) / R34 (3), d2's bottleneck res5 for R50 and deeper.
    Output: N x (RES2_OUT_CHANNELS * 8) x R/2 x R/2 for N boxes pooled at R x R."""

    @classmethod
    def _build_res5_block(cls, cfg):
        depth = cfg.MODEL.RESNETS.DEPTH
        if depth not in (18, 34):
            return super()._build_res5_block(cfg)
        out_channels = cfg.MODEL.RESNETS.RES2_OUT_CHANNELS * 8
        num_blocks = {18: 2, 34: 3}[depth]
        blocks = ResNet.make_stage(
            BasicBlock,
            num_blocks,
            stride_per_block=[2] + [1] * (num_blocks - 1),
            in_channels=out_channels // 2,
            out_channels=out_channels,
            norm=cfg.MODEL.RESNETS.NORM,
        )
        return nn.Sequential(*blocks), out_channels
