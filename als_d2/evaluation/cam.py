"""Class activation maps (Zhou et al. 2016) of ``ImageClassifier`` and their overlays.

For a classifier ``logits = W @ avgpool(F) + b`` with last feature map ``F`` (C x h x w,
the model's ``in_feature``, e.g. res5), the CAM of class c is ``sum_ch W[c, ch] F[ch]``
(h x w). Here it is passed through ReLU, bilinearly upsampled to the input image size
and divided by its maximum, so each map lies in [0, 1] (all zeros when the class has
no positive evidence anywhere). A 1 x 1 feature map (e.g. a stride-32 ResNet at a 32 px
crop) gives one value per image: its "CAM" is a flat tint, which
:func:`draw_cam_figures` says in a warning and on the figure.

:func:`draw_cam_figures` draws the figures of ``tools/visualize_cam.py`` and of the demo
from a config as the models were trained and evaluated (its test transform and crop).
"""

import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.nn import functional as F

__all__ = [
    "cams_from_features",
    "class_activation_maps",
    "overlay_cam",
    "cam_grid",
    "draw_cam_figures",
    "flat_cam_note",
    "scatter_data",
]

logger = logging.getLogger(__name__)


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
        ``{"cams": N x H x W float32 in [0, 1], "class_ids": N, "probs": N x K,
        "feature_size": (h, w) of the feature map}`` on CPU. The model is run in eval mode
        (and put back in its previous mode).
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
    return {
        "cams": cams.cpu(),
        "class_ids": ids.cpu(),
        "probs": probs.cpu(),
        "feature_size": tuple(int(v) for v in features.shape[-2:]),
    }


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
    note: Optional[str] = None,
) -> np.ndarray:
    """A figure like the paper's figures 6-8: one row per image, the input in the first
    column, then one column per model.

    Args:
        images: R inputs (H x W x 3 uint8 RGB); row_titles: R captions of the inputs.
        columns: per model ``(name, R overlays, R captions)``.
        note: a line under the grid (e.g. :func:`flat_cam_note`).

    Returns:
        the figure as an H x W x 3 uint8 RGB array.
    """
    from .plots import _new_figure, figure_to_array

    rows, cols = len(images), 1 + len(columns)
    fig = _new_figure(cell_inches * cols, cell_inches * rows + (0.9 if note else 0.4))
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
    if note:
        import textwrap

        text = "\n".join(textwrap.wrap(note, width=int(16 * cell_inches * cols)))
        fig.text(0.5, 0.005, text, ha="center", va="bottom", fontsize=6, color="#a02020")
        fig.tight_layout(pad=0.3, rect=(0, 0.5 / (cell_inches * rows + 0.9), 1, 1))
    else:
        fig.tight_layout(pad=0.3)
    return figure_to_array(fig)


def flat_cam_note(feature: str, size: Tuple[int, int], crop: int) -> Optional[str]:
    """The note for CAMs of an ``h x w`` feature map at a ``crop`` px input: None when the
    map has more than one cell, else why the CAMs are flat tints."""
    if size[0] * size[1] > 1:
        return None
    return (
        f"the {feature} feature map is {size[0]}x{size[1]} at a {crop} px evaluation crop: each "
        "CAM is one value, a flat tint over the image that locates nothing; CAMs need a crop "
        "giving res5 at least 2x2 (64 px for a ResNet), where a model trained at "
        f"{crop} px is a different classifier (check its accuracy there with eval_cls.py)"
    )


@torch.no_grad()
def scatter_data(model, loader, max_samples: int) -> Dict[str, np.ndarray]:
    """Confidence (max probability), objectness (NaN: unknown) and correctness of up to
    ``max_samples`` images of ``loader`` (e.g. ``ClassificationTrainer.build_test_loader(cfg,
    dataset)``: the evaluation's images, test transform and crop), in its order."""
    conf, obj, correct = [], [], []
    m = getattr(model, "module", model)
    was_training = m.training
    m.eval()
    try:
        for batch in loader:
            probs = torch.stack([o["probs"] for o in model(batch)]).float().cpu()
            labels = torch.as_tensor([x["label"] for x in batch])
            conf.append(probs.max(dim=1).values.numpy())
            correct.append((probs.argmax(dim=1) == labels).numpy())
            obj.append(
                np.array(
                    [x["objectness"] if x.get("has_boxes") else np.nan for x in batch],
                    dtype=float,
                )
            )
            if sum(len(c) for c in conf) >= max_samples:
                break
    finally:
        m.train(was_training)
    cat = {
        "confidence": np.concatenate(conf),
        "objectness": np.concatenate(obj),
        "correct": np.concatenate(correct),
    }
    return {k: v[:max_samples] for k, v in cat.items()}


def _class_name(names, k: int) -> str:
    return str(names[k]) if names is not None and 0 <= k < len(names) else str(k)


def draw_cam_figures(
    cfg,
    checkpoints: Sequence[str],
    names: Sequence[str],
    dataset: str,
    output: str,
    *,
    num_images: int = 8,
    indices: Optional[Sequence[int]] = None,
    scatter_samples: int = 2000,
    alpha: float = 0.5,
) -> Dict:
    """The CAM grid and the confidence-vs-objectness scatter of several checkpoints, at
    ``cfg``'s test transform (``INPUT.CLS.TEST_RESIZE``, evaluation crop: give the config
    the models were trained and evaluated with). Checkpoints load strictly
    (:class:`~als_d2.checkpoint.EvaluationCheckpointer`).

    Returns:
        ``{"files": {"cam_grid": PNG path, "scatter": PNG path (with scatter_samples >
        0)}, "scatter": [per checkpoint the :func:`scatter_data` arrays], "feature_size":
        (h, w), "note": :func:`flat_cam_note` or None}``; a 1 x 1 feature map is also a
        logged warning.
    """
    from detectron2.data import MetadataCatalog
    from detectron2.utils.file_io import PathManager

    from ..checkpoint.evaluation import EvaluationCheckpointer
    from ..data.build import build_cls_test_loader, load_dataset_dicts
    from ..data.mapper import ClassificationDatasetMapper
    from ..data.transforms import eval_crop_size
    from ..engine import ClassificationTrainer
    from .plots import objectness_scatter, save_png

    dicts = load_dataset_dicts([dataset])  # once: its index messages once, for every checkpoint
    if indices is None:
        count = min(num_images, len(dicts))
        indices = sorted(set(np.linspace(0, len(dicts) - 1, count).round().astype(int).tolist()))
    mapper = ClassificationDatasetMapper(cfg, is_train=False)
    mapped = [mapper(dicts[i]) for i in indices]
    # the loader of ClassificationTrainer.build_test_loader, on the dicts loaded above
    loader = build_cls_test_loader(
        dicts,
        mapper,
        batch_size=cfg.TEST.IMS_PER_BATCH,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
        skip_unreadable=cfg.INPUT.CLS.SKIP_UNREADABLE_EVAL,
    )
    classes = MetadataCatalog.get(dataset).get("thing_classes", None)
    images = [x["image"].permute(1, 2, 0).numpy() for x in mapped]
    row_titles = []
    for x in mapped:
        obj = f"{x['objectness']:.2f}" if x.get("has_boxes") else "?"
        row_titles.append(f"{_class_name(classes, x['label'])}, obj {obj}")

    columns, panels, size = [], [], None
    for path, name in zip(checkpoints, names):
        model = ClassificationTrainer.build_model(cfg)
        EvaluationCheckpointer(model).load(path)
        out = class_activation_maps(model, mapped)
        size = out["feature_size"]
        overlays = [overlay_cam(img, cam.numpy(), alpha) for img, cam in zip(images, out["cams"])]
        captions = [
            f"{_class_name(classes, int(c))} ({float(p[c]):.2f})"
            for c, p in zip(out["class_ids"], out["probs"])
        ]
        columns.append((name, overlays, captions))
        if scatter_samples > 0:
            panels.append(scatter_data(model, loader, scatter_samples))
        del model

    crop = eval_crop_size(cfg)
    note = flat_cam_note(cfg.MODEL.CLASSIFIER.IN_FEATURE, size, crop)
    if note:
        logger.warning(f"CAMs on {dataset}: {note}")
    PathManager.mkdirs(output)
    files = {"cam_grid": os.path.join(output, "cam_grid.png")}
    save_png(cam_grid(images, row_titles, columns, note=note), files["cam_grid"])
    if panels:
        files["scatter"] = os.path.join(output, "confidence_vs_objectness.png")
        titles = [f"{n}, {dataset} ({crop} px)" for n in names]
        save_png(objectness_scatter(panels, titles), files["scatter"])
    for path in files.values():
        logger.info(f"wrote {path}")
    return {"files": files, "scatter": panels, "feature_size": size, "note": note}
