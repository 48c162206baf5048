"""A tiny COCO-format detection dataset, written to disk and registered with detectron2's
``register_coco_instances`` (the path a user's own COCO-format data takes).

Images: noisy grey JPEGs with 1-3 filled rectangles, one colour per category.
"""

import json
import os
import uuid
from typing import Tuple

import als_d2  # noqa: F401  (detectron2 bootstrap first)
import numpy as np
from detectron2.data.datasets import register_coco_instances
from PIL import Image

CATEGORIES = [(1, "red", (220, 40, 40)), (2, "green", (40, 200, 40)), (3, "blue", (40, 60, 220))]


def write_coco_dataset(
    root: str,
    num_images: int = 8,
    size: Tuple[int, int] = (128, 96),
    seed: int = 0,
    empty_images: int = 0,
    image_root: str = None,
    json_path: str = None,
    all_coco_categories: bool = False,
) -> Tuple[str, str]:
    """Write ``num_images`` JPEGs (W x H = ``size``) under ``image_root`` (default
    ``root/images``) and their annotations to ``json_path`` (default ``root/instances.json``;
    COCO instances format: boxes XYWH in pixels, ``iscrowd`` 0, category ids 1-3). The last
    ``empty_images`` images have no annotation (detectron2 drops them from training with
    DATALOADER.FILTER_EMPTY_ANNOTATIONS). ``all_coco_categories``: list COCO's 80 categories
    (ids 1-3 are used), as detectron2's builtin ``coco_2017_*`` metadata requires.
    Returns (json path, image root)."""
    rng = np.random.default_rng(seed)
    image_root = image_root or os.path.join(root, "images")
    os.makedirs(image_root, exist_ok=True)
    w, h = size
    images, annotations = [], []
    for i in range(num_images):
        img = rng.integers(100, 150, (h, w, 3), dtype=np.uint8)
        if i < num_images - empty_images:
            for _ in range(int(rng.integers(1, 4))):
                cat_id, _, colour = CATEGORIES[int(rng.integers(0, len(CATEGORIES)))]
                bw, bh = int(rng.integers(w // 6, w // 2)), int(rng.integers(h // 6, h // 2))
                x0, y0 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
                img[y0 : y0 + bh, x0 : x0 + bw] = colour
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": i + 1,
                        "category_id": cat_id,
                        "bbox": [x0, y0, bw, bh],
                        "area": bw * bh,
                        "iscrowd": 0,
                    }
                )
        file_name = f"{i:04d}.jpg"
        Image.fromarray(img).save(os.path.join(image_root, file_name), quality=95)
        images.append({"id": i + 1, "file_name": file_name, "width": w, "height": h})
    if all_coco_categories:
        from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES

        categories = [
            {"id": c["id"], "name": c["name"], "supercategory": "coco"}
            for c in COCO_CATEGORIES
            if c["isthing"]
        ]
    else:
        categories = [
            {"id": cid, "name": name, "supercategory": "shape"} for cid, name, _ in CATEGORIES
        ]
    json_path = json_path or os.path.join(root, "instances.json")
    os.makedirs(os.path.dirname(json_path), exist_ok=True)
    with open(json_path, "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    return json_path, image_root


def write_builtin_coco(datasets_root: str, train_images: int = 6, val_images: int = 3) -> None:
    """Write ``coco/train2017``, ``coco/val2017`` and
    ``coco/annotations/instances_{train,val}2017.json`` under ``datasets_root``: what
    detectron2's builtin ``coco_2017_train``/``coco_2017_val`` read when
    ``$DETECTRON2_DATASETS`` is ``datasets_root``."""
    coco = os.path.join(datasets_root, "coco")
    for split, n, seed in (("train2017", train_images, 0), ("val2017", val_images, 1)):
        write_coco_dataset(
            coco,
            num_images=n,
            seed=seed,
            image_root=os.path.join(coco, split),
            json_path=os.path.join(coco, "annotations", f"instances_{split}.json"),
            all_coco_categories=True,
        )


def register_coco_split(root: str, **kwargs) -> str:
    """Write a dataset under ``root`` and register it under a fresh name; return the name."""
    json_path, image_root = write_coco_dataset(root, **kwargs)
    name = f"coco_tiny_{uuid.uuid4().hex[:8]}"
    register_coco_instances(name, {}, json_path, image_root)
    return name
