"""Class activation maps (Zhou et al. 2016) of ``ImageClassifier`` and their overlays.

For a classifier ``logits = W @ avgpool(F) + b`` with last feature map ``F`` (C x h x w,
the model's ``in_feature``, e.g. res5), the CAM of class c is ``sum_ch W[c, ch] F[ch]``
(h x w). Here it is passed through ReLU, bilinearly upsampled to the input image size
and divided by its maximum, so each map lies in [0, 1] (all zeros when the class has
no positive evidence anywhere).
"""

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.nn import functional as F

__all__ = ["cams_from_features", "class_activation_maps", "overlay_cam", "cam_grid"]


def cams_from_features(
    features: torch.Tensor, weight: torch.Tensor, class_ids: torch.Tensor, size: Tuple[int, int]
) -> torch.Tensor:
    """CAMs from features N x C x h x w, head weight K x C and class ids N: N x H x W
    in [0, 1] (``size`` = (H, W)), as described in the module docstring."""
    cam = torch.einsum("nc,nchw->nhw", weight[class_ids].to(features.dtype), features)
    cam = F.interpolate(
        cam.clamp(min=0)[:, None], size=tuple(size), mode="bilinear", align_corners=False
    )[:, 0]
    peak = cam.flatten(1).max(dim=1).values.view(-1, 1, 1)
    return torch.where(
        peak > 0, cam / peak.clamp(min=torch.finfo(cam.dtype).tiny), torch.zeros_like(cam)
    )


@torch.no_grad()
def class_activation_maps(
    model, batched_inputs: List[Dict], class_ids: Optional[Sequence[int]] = None
) -> Dict[str, torch.Tensor]:
    """CAMs of an ``ImageClassifier`` (or a DDP-wrapped one) for a d2-style batch.

    Args:
        batched_inputs: dicts with ``image`` (3 x H x W uint8, same size in the batch).
        class_ids: N classes to explain; None: the predicted (argmax) classes.

    Returns:
        ``{"cams": N x H x W float32 in [0, 1], "class_ids": N, "probs": N x K}`` on CPU.
        The model is run in eval mode (and put back in its previous mode).
    """
    m = getattr(model, "module", model)
    was_training = m.training
    m.eval()
    try:
        images = m.preprocess_image(batched_inputs)
        features = m.backbone(images)[m.in_feature].float()
        logits = m.head(torch.flatten(F.adaptive_avg_pool2d(features, 1), 1)).float()
        probs = logits.softmax(dim=1)
        ids = (
            probs.argmax(dim=1)
            if class_ids is None
            else torch.as_tensor(class_ids, device=probs.device).long()
        )
        cams = cams_from_features(features, m.head.weight.float(), ids, images.shape[-2:])
    finally:
        m.train(was_training)
    return {"cams": cams.cpu(), "class_ids": ids.cpu(), "probs": probs.cpu()}


def overlay_cam(
    image: np.ndarray, cam: np.ndarray, alpha: float = 0.5, cmap: str = "jet"
) -> np.ndarray:
    """Blend an H x W x 3 uint8 RGB image with an H x W map in [0, 1] coloured by ``cmap``:
    ``(1 - alpha) * image + alpha * colour(cam)``, H x W x 3 uint8."""
    import matplotlib

    colour = matplotlib.colormaps[cmap](np.clip(np.asarray(cam, dtype=np.float64), 0.0, 1.0))[
        ..., :3
    ]
    out = (1.0 - alpha) * np.asarray(image, dtype=np.float64) / 255.0 + alpha * colour
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


def cam_grid(
    images: Sequence[np.ndarray],
    row_titles: Sequence[str],
    columns: Sequence[Tuple[str, Sequence[np.ndarray], Sequence[str]]],
    cell_inches: float = 1.9,
) -> np.ndarray:
    """A figure like the paper's figures 6-8: one row per image, the input in the first
    column, then one column per model.

    Args:
        images: R inputs (H x W x 3 uint8 RGB); row_titles: R captions of the inputs.
        columns: per model ``(name, R overlays, R captions)``.

    Returns:
        the figure as an H x W x 3 uint8 RGB array.
    """
    from .plots import _new_figure, figure_to_array

    rows, cols = len(images), 1 + len(columns)
    fig = _new_figure(cell_inches * cols, cell_inches * rows + 0.4)
    axes = fig.subplots(rows, cols, squeeze=False)
    for r in range(rows):
        cells = [(images[r], row_titles[r], "input")] + [(c[1][r], c[2][r], c[0]) for c in columns]
        for col, (img, caption, name) in enumerate(cells):
            ax = axes[r, col]
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(caption, fontsize=7, labelpad=2)
            if r == 0:
                ax.set_title(name, fontsize=8)
    fig.tight_layout(pad=0.3)
    return figure_to_array(fig)
