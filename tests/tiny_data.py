"""A tiny classification dataset with boxes, written as PNG files and registered directly
in detectron2's catalog (independent of the ImageNet readers)."""

import importlib.util
import os
import sys
import uuid
from typing import List

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from PIL import Image

COLORS = [(220, 40, 40), (40, 200, 40), (40, 60, 220), (220, 200, 40)]


def write_color_objects(
    root: str, num_classes: int = 4, per_class: int = 6, size=(48, 40), seed: int = 0
) -> List[dict]:
    """Each image: a grey noisy background and one or two rectangles in the class colour.

    Returns d2 dicts (file_name, image_id, height, width, label, annotations XYXY_ABS).
    """
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    w, h = size
    dicts = []
    for label in range(num_classes):
        for i in range(per_class):
            img = rng.integers(90, 140, (h, w, 3), dtype=np.uint8)
            anns = []
            for _ in range(int(rng.integers(1, 3))):
                bw, bh = int(rng.integers(8, w // 2)), int(rng.integers(8, h // 2))
                x0, y0 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
                img[y0 : y0 + bh, x0 : x0 + bw] = COLORS[label % len(COLORS)]
                anns.append(
                    {
                        "bbox": [x0, y0, x0 + bw, y0 + bh],
                        "bbox_mode": BoxMode.XYXY_ABS,
                        "category_id": label,
                    }
                )
            path = os.path.join(root, f"c{label}_{i}.png")
            Image.fromarray(img).save(path)
            dicts.append(
                {
                    "file_name": path,
                    "image_id": f"c{label}_{i}",
                    "height": h,
                    "width": w,
                    "label": label,
                    "annotations": anns,
                }
            )
    return dicts


def register_tiny(root: str, **kwargs) -> str:
    """Write the dataset under ``root`` and register it under a fresh name; return the name."""
    dicts = write_color_objects(root, **kwargs)
    name = f"tiny_{uuid.uuid4().hex[:8]}"
    register_dicts(name, dicts, kwargs.get("num_classes", 4))
    return name


def register_dicts(name: str, dicts: List[dict], num_classes: int) -> None:
    DatasetCatalog.register(name, lambda: [dict(d) for d in dicts])
    MetadataCatalog.get(name).set(
        thing_classes=[f"class{i}" for i in range(num_classes)], evaluator_type="classification"
    )


def load_tool(name: str):
    """Import ``tools/<name>.py`` as a module (the tools are scripts, not a package), with
    ``tools/`` on ``sys.path`` as when the script runs (its sibling ``tool_args``)."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if os.path.join(repo, "tools") not in sys.path:
        sys.path.insert(0, os.path.join(repo, "tools"))
    spec = importlib.util.spec_from_file_location(name, os.path.join(repo, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_train_cls_opts(max_iter: int, checkpoint_period: int) -> List[str]:
    """``KEY VALUE`` overrides of ``tools/train_cls.py`` on configs/demo's R18 for exact-resume
    tests: 4 classes, the backbone cut at res3, 32 px crops, ALS targets, ``max_iter`` steps
    of 8 images (lr x0.1 at 25), a checkpoint every ``checkpoint_period`` steps, no
    evaluation, no loader workers, SEED 3."""
    return [
        "MODEL.CLASSIFIER.NUM_CLASSES", "4",
        "MODEL.RESNETS.OUT_FEATURES", '["res3"]',
        "MODEL.CLASSIFIER.IN_FEATURE", "res3",
        "INPUT.CLS.CROP_SIZE", "32",
        "INPUT.CLS.TEST_RESIZE", "36",
        "MODEL.ALS.METHOD", "als",
        "SOLVER.EPOCHS", "0",
        "SOLVER.MAX_ITER", str(max_iter),
        "SOLVER.STEPS", "(25,)",
        "SOLVER.WARMUP_ITERS", "3",
        "SOLVER.IMS_PER_BATCH", "8",
        "SOLVER.BASE_LR", "0.05",
        "SOLVER.LR_REFERENCE_BATCH", "0",
        "SOLVER.CHECKPOINT_PERIOD", str(checkpoint_period),
        "SOLVER.CHECKPOINT_PERIOD_EPOCHS", "0.0",
        "TEST.EVAL_PERIOD", "0",
        "DATALOADER.NUM_WORKERS", "0",
        "SEED", "3",
    ]  # fmt: skip
