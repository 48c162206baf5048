"""A tiny classification dataset with boxes, written as PNG files and registered directly
in detectron2's catalog (independent of the ImageNet readers); the small configs, generated
data and checks that several test files share."""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import uuid
from typing import List

import als_d2  # noqa: F401  (first, as every entry point does)
import numpy as np
import torch
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from PIL import Image

from als_d2.config import add_als_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_R18 = "configs/demo/Base-Demo-R18.yaml"
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
    ``tools/`` on ``sys.path`` as when the script runs."""
    if os.path.join(REPO, "tools") not in sys.path:
        sys.path.insert(0, os.path.join(REPO, "tools"))
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "tools", f"{name}.py"))
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


def als_cfg(config_file: str, *opts):
    """detectron2's config with the ALS keys, from ``config_file`` (relative to the repository)
    and ``KEY VALUE`` overrides."""
    cfg = get_cfg()
    add_als_config(cfg)
    cfg.merge_from_file(os.path.join(REPO, config_file))
    cfg.merge_from_list(list(opts))
    return cfg


def tiny_cls_cfg(dataset: str, output_dir: str, *opts):
    """configs/demo's R18 for an in-process ClassificationTrainer on ``dataset`` (train and
    test; a :func:`register_tiny` one): 4 classes, 32 px crops (36 px test resize), epochs off,
    batch 8 at lr 0.05 (unscaled, no warm-up), no periodic evaluation, SEED 3; then ``opts``."""
    return als_cfg(
        DEMO_R18,
        "DATASETS.TRAIN", (dataset,),
        "DATASETS.TEST", (dataset,),
        "OUTPUT_DIR", output_dir,
        "MODEL.CLASSIFIER.NUM_CLASSES", 4,
        "INPUT.CLS.CROP_SIZE", 32,
        "INPUT.CLS.TEST_RESIZE", 36,
        "SOLVER.EPOCHS", 0,
        "SOLVER.WARMUP_ITERS", 0,
        "SOLVER.IMS_PER_BATCH", 8,
        "SOLVER.BASE_LR", 0.05,
        "SOLVER.LR_REFERENCE_BATCH", 0,
        "SOLVER.CHECKPOINT_PERIOD_EPOCHS", 0.0,
        "TEST.EVAL_PERIOD", 0,
        "SEED", 3,
        *opts,
    )  # fmt: skip


def counted_top1(model, cfg, dataset: str):
    """(top-1 in %, samples) of ``model`` on ``dataset``, counted here: the argmax of its
    probabilities against the labels, sample by sample (independent of the evaluator)."""
    from als_d2.engine import ClassificationTrainer

    loader = ClassificationTrainer.build_test_loader(cfg, dataset)
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for batch in loader:
            for x, out in zip(batch, model(batch)):
                correct += int(out["probs"].argmax()) == x["label"]
                total += 1
    return 100.0 * correct / total, total


def tiny_det_opts(min_size: int, max_size: int, *, small_heads: bool = True) -> List[str]:
    """``KEY VALUE`` overrides of ``tools/train_det.py`` for a 2-iteration run: images resized
    to ``min_size`` px (at most ``max_size`` px), 2 per batch, 16 sampled RoIs per image in
    training and 32 proposals per image in evaluation (C4 heads run res5 on every RoI: 512
    RoIs cost a C4 row about 15 s on one CPU thread), no lr steps, no periodic checkpoint, no
    loader workers. ``small_heads=False`` keeps the config's RoI and proposal counts."""
    heads = ["MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "16", "MODEL.RPN.POST_NMS_TOPK_TEST", "32"]
    return (heads if small_heads else []) + [
        "INPUT.MIN_SIZE_TRAIN", f"({min_size},)",
        "INPUT.MAX_SIZE_TRAIN", str(max_size),
        "INPUT.MIN_SIZE_TEST", str(min_size),
        "INPUT.MAX_SIZE_TEST", str(max_size),
        "SOLVER.IMS_PER_BATCH", "2",
        "SOLVER.MAX_ITER", "2",
        "SOLVER.STEPS", "()",
        "SOLVER.CHECKPOINT_PERIOD", "1000",
        "DATALOADER.NUM_WORKERS", "0",
    ]  # fmt: skip


# generate_synthetic_imagenet's sizes for tests: 4 classes, 8 train + 2 val images each, all
# boxed, sides of 48-64 px, no COCO split
TINY_IMAGENET = dict(num_classes=4, train_per_class=8, val_per_class=2, boxed_fraction=1.0)
TINY_IMAGENET.update(image_size=(48, 64), coco_train=0, coco_val=0)


def write_synthetic_imagenet(root: str, **sizes) -> None:
    """The synthetic ImageNet at ``root``: :data:`TINY_IMAGENET`'s sizes, ``sizes`` overriding."""
    from als_d2.data.synthetic import generate_synthetic_imagenet

    generate_synthetic_imagenet(root, **dict(TINY_IMAGENET, **sizes))


def synthetic_imagenet_env(root: str) -> dict:
    """:func:`write_synthetic_imagenet` under ``root/datasets/synthetic_imagenet``; return the
    environment variables a tool run on it needs (DETECTRON2_DATASETS, one thread)."""
    datasets = os.path.join(root, "datasets")
    write_synthetic_imagenet(os.path.join(datasets, "synthetic_imagenet"))
    return dict(
        DETECTRON2_DATASETS=datasets,
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )


def assert_same_final_weights(expected_dir: str, got_dir: str, iteration: int) -> None:
    """``model_final.pth`` of both run folders: saved at ``iteration``, bitwise equal tensors."""
    expected = torch.load(os.path.join(expected_dir, "model_final.pth"), weights_only=True)
    got = torch.load(os.path.join(got_dir, "model_final.pth"), weights_only=True)
    assert expected["iteration"] == got["iteration"] == iteration
    assert expected["model"].keys() == got["model"].keys()
    for key in expected["model"]:
        torch.testing.assert_close(
            got["model"][key], expected["model"][key], rtol=0, atol=0, msg=key
        )


def run_after_builtin_import(built: str, d2: str, body: str) -> dict:
    """Run ``body`` (Python setting a JSON-able ``out``; DatasetCatalog, MetadataCatalog, json
    and os imported) in a fresh interpreter with DETECTRON2_DATASETS=``d2``, after importing
    ``als_d2.data.datasets.builtin`` and only then renaming ``built`` to ``d2``; return ``out``."""
    code = (
        "import json, os, als_d2\n"
        "from detectron2.data import DatasetCatalog, MetadataCatalog\n"
        "import als_d2.data.datasets.builtin\n"
        f"os.rename({built!r}, {d2!r})\n"
        + textwrap.dedent(body)
        + '\nprint("RESULT" + json.dumps(out))\n'
    )
    env = dict(os.environ, DETECTRON2_DATASETS=d2, PYTHONPATH=REPO)
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.split("RESULT", 1)[1])


def amp_cfg(precision: str, enabled: bool = True):
    """A full config with ``SOLVER.AMP`` set (``autocast_dtype``'s input)."""
    cfg = get_cfg()
    add_als_config(cfg)
    cfg.SOLVER.AMP.ENABLED = enabled
    cfg.SOLVER.AMP.PRECISION = precision
    return cfg
