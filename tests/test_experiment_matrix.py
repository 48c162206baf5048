"""The experiment matrix: every config under ``configs/`` is a row of one of the paper's tables
(or says what else it is), and a short real run of it shows the property that makes it that row.

Each classification config is trained for a few iterations through ``tools/train_cls.py``'s
``main()`` on generated data (shrunk with overrides: 32 px crops, batch 16, MODEL.DEVICE cpu;
depth, method, beta, variant, context probability and dataset kind are the config's own),
and the row property is asserted from what the run logged (``metrics.json``, one row per
iteration with ``LOG_PERIOD 1``; ``config.yaml``):

* context fraction: within a binomial bound of ``CONTEXT_PROB`` over all samples, and
  exactly 0 where the row has no context samples;
* mean true-class target, per iteration: 1 (hard), 0.9 (LS 0.1), and for ALS exactly
  ``(1 - c) * (beta * o + 1 - beta) + c / K`` with ``o`` the batch's own logged mean
  objectness and ``c`` its context fraction (the formula of the paper, section 3);
* painted pixels in 'mask' rows (> 0 somewhere, 0 in rows that paint nothing);
* mixed batches in CutMix / Mixup rows (every batch at MIX_PROB 1, true-class mass between
  1 - partner share and 1);
* the schedule the header states (iterations, lr steps, lr), computed from the stated
  dataset size by the trainer's own epoch arithmetic and found, as written, in the header.

Detection configs are fine-tuned for 2 iterations through ``tools/train_det.py`` and
evaluated; the recipe each states is checked against its solver and input settings.
A config missing from ``ROWS`` fails: new configs join the matrix by being in ``configs/``.
"""

import glob
import json
import math
import os
from dataclasses import dataclass, field
from typing import Optional, Tuple

import pytest
from detectron2.config import get_cfg
from detectron2.engine import default_argument_parser

from als_d2.config import add_als_config
from als_d2.data.datasets.builtin import register_synthetic_imagenet
from als_d2.engine.detection import add_transfer_config
from als_d2.engine.schedule import apply_epoch_schedule

from tiny_data import load_tool, tiny_det_opts, write_synthetic_imagenet

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(REPO, "configs")

# the paper's training-set sizes (figure 4): images with boxes, and 'mask' samples (one per object)
IMAGENET_BOXED = 474_000
IMAGENET_MASK = 528_000
# The defining values of the rows, as the paper ("One size doesn't fit all: adaptive label
# smoothing") states them, and the baselines' from their own papers:
PAPER_LS_ALPHA = 0.1  # Section 1 / Figure 1: "a fixed label of 1 or 0.9 in the case of label
# smoothing"; Section 3: alpha / (K - 1) on the other classes (LS_STYLE "paper")
PAPER_BETAS = (1.0, 0.75, 0.5)  # Section 3 (beta) and Table 2: "A. L. S. (beta = ...)"
PAPER_CONTEXT_PROB = 0.15  # Section 4.1: context-only images, "We sample about 15% of the time"
CUTMIX_ALPHA, CUTMIX_PROB = 1.0, 1.0  # Yun et al. 2019, Section 3.1: "we set alpha to 1"; every
# batch mixed in their ImageNet runs
MIXUP_ALPHA = 0.2  # Zhang et al. 2017, Section 3.1 (ImageNet): alpha = 0.2
NUM_CLASSES = 5  # of the generated data
ITERS = 4
BATCH = 16


@dataclass
class Row:
    """What makes a config its row. ``target``: hard | ls | als | mix; ``schedule``:
    (dataset size the header states, MAX_ITER, STEPS) at the config's own batch."""

    paper: str
    target: str
    beta: float = 1.0
    context: float = 0.0
    mask: bool = False
    depth: int = 50
    schedule: Optional[Tuple[int, int, Tuple[int, ...]]] = None
    lr: float = 0.1
    kind: str = "cls"
    extra: dict = field(default_factory=dict)
    recipe: str = "paper"  # "tvrecipe": torchvision's new recipe (configs/tvrecipe/)


R50_BOXED = (IMAGENET_BOXED, 555_469, (138_867, 277_734, 416_602))
R50_MASK = (IMAGENET_MASK, 618_750, (154_688, 309_375, 464_062))
OPENIMAGES = (None, 618_750, (154_688, 309_375, 464_062))  # fixed in iterations, any subset size
JWYANG = (
    2 * 117_266,
    146_583,
    (58_633, 117_266),
)  # train2017 kept by d2 + flips, 10 epochs, batch 16
D2_1X = (None, 90_000, (60_000, 80_000))
TVRECIPE_SCHEDULE = (IMAGENET_BOXED, 277_734, ())  # 600 epochs at batch 1024, cosine
# torchvision's new recipe for ResNet-50 (pytorch/vision issue 3995 and the ResNet-50 line of
# references/classification/README.md): --batch-size 128 x 8 GPUs --lr 0.5 --lr-scheduler
# cosineannealinglr --lr-warmup-epochs 5 --lr-warmup-method linear (--lr-warmup-decay 0.01)
# --auto-augment ta_wide --epochs 600 --random-erase 0.1 --weight-decay 0.00002
# --norm-weight-decay 0.0 --label-smoothing 0.1 --mixup-alpha 0.2 --cutmix-alpha 1.0
# --train-crop-size 176 --model-ema (--model-ema-steps 32 --model-ema-decay 0.99998)
# --val-resize-size 232 (--val-crop-size 224, --interpolation bilinear)
TVRECIPE = {
    "MODEL.RESNETS.DEPTH": 50,
    "MODEL.ALS.METHOD": "mixup_cutmix",
    "MODEL.ALS.MIXUP_ALPHA": 0.2,
    "MODEL.ALS.CUTMIX_ALPHA": 1.0,
    "MODEL.ALS.MIX_PROB": 1.0,
    "MODEL_EMA.ENABLED": True,
    "MODEL_EMA.DECAY": 0.99998,
    "MODEL_EMA.STEPS": 32,
    "INPUT.CLS.CROP_SIZE": 176,
    "INPUT.CLS.TEST_RESIZE": 232,
    "INPUT.CLS.TEST_CROP_SIZE": 224,
    "INPUT.CLS.AUTO_AUGMENT": "ta_wide",
    "INPUT.CLS.AUTO_AUGMENT_BINS": 31,
    "INPUT.CLS.AUTO_AUGMENT_INTERP": "bilinear",
    "INPUT.CLS.RANDOM_ERASING": 0.1,
    "INPUT.CLS.COLOR_JITTER": (),
    "INPUT.CLS.LIGHTING_STD": 0.0,
    "INPUT.CLS.VARIANT": "none",
    "SOLVER.IMS_PER_BATCH": 1024,
    "SOLVER.BASE_LR": 0.5,
    "SOLVER.LR_REFERENCE_BATCH": 1024,
    "SOLVER.MOMENTUM": 0.9,
    "SOLVER.WEIGHT_DECAY": 0.00002,
    "SOLVER.WEIGHT_DECAY_NORM": 0.0,
    "SOLVER.LR_SCHEDULER_NAME": "WarmupCosineLR",
    "SOLVER.EPOCHS": 600,
    "SOLVER.WARMUP_EPOCHS": 5.0,
    "SOLVER.WARMUP_METHOD": "linear",
    "SOLVER.WARMUP_FACTOR": 0.01,
    "DATASETS.TRAIN": ("imagenet_train_boxed",),
}
# what each tvrecipe row mixes: the published recipe's label smoothing, none, or ALS
TVRECIPE_TARGETS = {
    "hard": {"MODEL.ALS.MIX_TARGET": "hard"},
    "ls": {"MODEL.ALS.MIX_TARGET": "ls", "MODEL.ALS.LS_ALPHA": 0.1, "MODEL.ALS.LS_STYLE": "torch"},
    "als": {"MODEL.ALS.MIX_TARGET": "als", "MODEL.ALS.BETA": 1.0},
}

ROWS = {
    "hard_r50.yaml": Row("Table 2 / Table 1: Hard Label", "hard", schedule=R50_BOXED),
    "ls_r50.yaml": Row("Table 2 / Table 1: Label Smoothing", "ls", schedule=R50_BOXED),
    "als_r50.yaml": Row(
        "Table 2: A. L. S. (beta = 1); Table 1: A. L. S.", "als", schedule=R50_BOXED
    ),
    "als_b075_r50.yaml": Row(
        "Table 2: A. L. S. (beta = 0.75)", "als", beta=0.75, schedule=R50_BOXED
    ),
    "als_b050_r50.yaml": Row("Table 2: A. L. S. (beta = 0.5)", "als", beta=0.5, schedule=R50_BOXED),
    "als_mask_r50.yaml": Row("Table 2: A. L. S. (mask)", "als", mask=True, schedule=R50_MASK),
    "als_context_r50.yaml": Row(
        "Table 2: A. L. S. (Context)",
        "als",
        mask=True,
        context=PAPER_CONTEXT_PROB,
        schedule=R50_MASK,
    ),
    "cutmix_r50.yaml": Row("Table 2 / Table 1: CutMix", "mix", schedule=R50_BOXED),
    "mixup_r50.yaml": Row("baseline Mixup (related work)", "mix", schedule=R50_BOXED),
    "hard_r101.yaml": Row("Table 3 (R101): Hard Label", "hard", depth=101, schedule=R50_BOXED),
    "ls_r101.yaml": Row("Table 3 (R101): Label Smoothing", "ls", depth=101, schedule=R50_BOXED),
    "als_r101.yaml": Row("Table 3 (R101): A. L. S.", "als", depth=101, schedule=R50_BOXED),
    "openimages/hard_r50.yaml": Row(
        "Table 6 (OpenImages): Hard Label", "hard", mask=True, schedule=OPENIMAGES
    ),
    "openimages/ls_r50.yaml": Row(
        "Table 6 (OpenImages): Label Smoothing", "ls", mask=True, schedule=OPENIMAGES
    ),
    "openimages/cutmix_r50.yaml": Row(
        "Table 6 (OpenImages): CutMix", "mix", mask=True, schedule=OPENIMAGES
    ),
    "openimages/als_r50.yaml": Row(
        "Table 6 (OpenImages): A. L. S.", "als", mask=True, schedule=OPENIMAGES
    ),
    "openimages/als_context_r50.yaml": Row(
        "Table 6 (OpenImages): A. L. S. (Context)",
        "als",
        mask=True,
        context=PAPER_CONTEXT_PROB,
        schedule=OPENIMAGES,
    ),
    "tvrecipe/hard_r50.yaml": Row(
        "torchvision's new recipe (not a paper row): no smoothing",
        "hard",
        schedule=TVRECIPE_SCHEDULE,
        recipe="tvrecipe",
    ),
    "tvrecipe/ls_r50.yaml": Row(
        "torchvision's new recipe (not a paper row): label smoothing 0.1, as published",
        "ls",
        schedule=TVRECIPE_SCHEDULE,
        recipe="tvrecipe",
    ),
    "tvrecipe/als_r50.yaml": Row(
        "torchvision's new recipe (not a paper row): ALS in place of label smoothing",
        "als",
        schedule=TVRECIPE_SCHEDULE,
        recipe="tvrecipe",
    ),
    "demo/hard_r18.yaml": Row("demo (not a paper row): hard", "hard", depth=18),
    "demo/ls_r18.yaml": Row("demo (not a paper row): LS", "ls", depth=18),
    "demo/als_r18.yaml": Row("demo (not a paper row): ALS", "als", depth=18),
}
# detection recipes: (schedule, lr); the demos state no schedule
RECIPES = {"jwyang": (JWYANG, 0.01), "detectron2": (D2_1X, 0.02), "demo": (None, 0.1)}


def _det_row(paper: str, recipe: str, depth: int = 50) -> Row:
    """A detection config's row: the schedule and lr of ``recipe`` (:data:`RECIPES`)."""
    schedule, lr = RECIPES[recipe]
    return Row(paper, recipe, depth=depth, schedule=schedule, lr=lr, kind="det")


DETECTION_ROWS = {
    "COCO-Detection/" + rel: row
    for rel, row in {
        "faster_rcnn_R_50_C4_paper.yaml": _det_row("Tables 4 / 7", "jwyang"),
        "faster_rcnn_R_50_C4_paper_syncbn.yaml": _det_row("Tables 4 / 7, SyncBN variant", "jwyang"),
        "faster_rcnn_R_101_C4_paper.yaml": _det_row("R101 transfer", "jwyang", depth=101),
        "faster_rcnn_R_50_C4_1x.yaml": _det_row("d2 recipe", "detectron2"),
        "faster_rcnn_R_50_C4_1x_syncbn.yaml": _det_row("d2 recipe", "detectron2"),
        "faster_rcnn_R_50_FPN_1x.yaml": _det_row("d2 recipe", "detectron2"),
        "faster_rcnn_R_50_FPN_1x_syncbn.yaml": _det_row("d2 recipe", "detectron2"),
        "faster_rcnn_R_101_C4_1x.yaml": _det_row("d2 recipe", "detectron2", depth=101),
        "faster_rcnn_R_101_FPN_1x.yaml": _det_row("d2 recipe", "detectron2", depth=101),
        "demo/faster_rcnn_R18_C4_cpu.yaml": _det_row("demo (not a paper row)", "demo", depth=18),
        "demo/faster_rcnn_R18_FPN_cpu.yaml": _det_row("demo (not a paper row)", "demo", depth=18),
    }.items()
}


def _is_base(rel: str) -> bool:
    return os.path.basename(rel).startswith("Base-")


ALL_CONFIGS = sorted(
    os.path.relpath(p, CONFIGS)
    for p in glob.glob(os.path.join(CONFIGS, "**", "*.yaml"), recursive=True)
)


def test_every_config_is_a_row():
    """A config joins the matrix by being in configs/: one without a row fails here."""
    rows = dict(ROWS, **DETECTION_ROWS)
    missing = [rel for rel in ALL_CONFIGS if not _is_base(rel) and rel not in rows]
    assert not missing, f"configs without a row in tests/test_experiment_matrix.py: {missing}"
    stale = [rel for rel in rows if rel not in ALL_CONFIGS]
    assert not stale, f"rows without a config: {stale}"


def test_readme_table_lists_every_config():
    readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    absent = [rel for rel in ALL_CONFIGS if not _is_base(rel) and f"`{rel}`" not in readme]
    assert not absent, f"configs missing from the README's config table: {absent}"


def _header_chain(rel: str) -> str:
    """The comment headers of a config and of its _BASE_ chain, concatenated."""
    text, path = "", os.path.join(CONFIGS, rel)
    while path:
        lines = open(path, encoding="utf-8").read().splitlines()
        text += "\n".join(line for line in lines if line.lstrip().startswith("#")) + "\n"
        base = [
            line.split(":", 1)[1].strip().strip('"') for line in lines if line.startswith("_BASE_:")
        ]
        path = os.path.normpath(os.path.join(os.path.dirname(path), base[0])) if base else None
    return text


def _cls_cfg(rel: str):
    cfg = get_cfg()
    add_als_config(cfg)
    cfg.merge_from_file(os.path.join(CONFIGS, rel))
    return cfg


@pytest.mark.parametrize(
    "rel", sorted(r for r in ROWS if ROWS[r].schedule and ROWS[r].recipe == "paper")
)
def test_classification_schedule_is_the_stated_one(rel):
    row = ROWS[rel]
    size, max_iter, steps = row.schedule
    cfg = _cls_cfg(rel)
    assert cfg.SOLVER.IMS_PER_BATCH == 256 and cfg.MODEL.RESNETS.DEPTH == row.depth
    derived = apply_epoch_schedule(
        cfg, size if size else 1_000_000
    )  # OpenImages: in iterations, any size
    assert derived.SOLVER.MAX_ITER == max_iter and tuple(derived.SOLVER.STEPS) == steps
    assert derived.SOLVER.BASE_LR == pytest.approx(row.lr) and derived.SOLVER.GAMMA == 0.1
    if size:  # 300 epochs, steps at 75 / 150 / 225, independently of the code's arithmetic
        assert max_iter == round(300 * size / 256)
        assert all(abs(s - e * size / 256) <= 0.5 for s, e in zip(steps, (75, 150, 225)))
    header = _header_chain(rel)
    for number in (max_iter, *steps):
        assert f"{number:,}" in header, f"{rel}: its header does not state {number:,}"


@pytest.mark.parametrize("rel", sorted(r for r in ROWS if ROWS[r].recipe == "tvrecipe"))
def test_tvrecipe_schedule_is_the_stated_one(rel):
    """600 epochs of the 474k boxed images at batch 1024, 5 of them warm-up, cosine; the EMA
    decay torchvision's adjustment gives, computed here from its formula."""
    size, max_iter, steps = ROWS[rel].schedule
    derived = apply_epoch_schedule(_cls_cfg(rel), size)
    s = derived.SOLVER
    assert (s.MAX_ITER, tuple(s.STEPS)) == (max_iter, steps) == (round(600 * size / 1024), ())
    assert s.WARMUP_ITERS == round(5 * size / 1024) == 2_314
    assert s.BASE_LR == pytest.approx(0.5)
    # references/classification/train.py: adjust = world_size * batch_size * steps / epochs
    alpha = min(1.0, (1 - 0.99998) * (8 * 128 * 32 / 600))
    header = _header_chain(rel)
    for text in (f"{max_iter:,}", "2,314", f"{1 - alpha:.8f}"):
        assert text in header, f"{rel}: its header does not state {text}"
    assert "Differs from torchvision's recipe:" in header


def _paper_values(rel: str, row: Row) -> dict:
    """The config values that make ``rel`` its row, from the paper's literals above (and
    torchvision's for the tvrecipe rows)."""
    if row.recipe == "tvrecipe":
        return dict(TVRECIPE, **TVRECIPE_TARGETS[row.target])
    if row.target == "mix":
        method = "mixup" if "mixup" in rel else "cutmix"
    else:
        method = row.target
    values = {
        "MODEL.ALS.METHOD": method,
        "MODEL.RESNETS.DEPTH": row.depth,
        "INPUT.CLS.VARIANT": "context" if row.context else ("mask" if row.mask else "none"),
    }
    if method == "ls":
        values.update({"MODEL.ALS.LS_ALPHA": PAPER_LS_ALPHA, "MODEL.ALS.LS_STYLE": "paper"})
    if method == "als":
        assert row.beta in PAPER_BETAS, row
        values["MODEL.ALS.BETA"] = row.beta
    if row.context:
        values["INPUT.CLS.CONTEXT_PROB"] = PAPER_CONTEXT_PROB
    if method == "cutmix":
        values.update({"MODEL.ALS.MIX_ALPHA": CUTMIX_ALPHA, "MODEL.ALS.MIX_PROB": CUTMIX_PROB})
    if method == "mixup":
        values.update({"MODEL.ALS.MIX_ALPHA": MIXUP_ALPHA, "MODEL.ALS.MIX_PROB": 1.0})
    if row.schedule and row.schedule[0] in (IMAGENET_BOXED, IMAGENET_MASK):
        # Figure 4: the boxed images (0.474M), or the 'mask' set (one object each, 0.528M)
        boxed = row.schedule[0] == IMAGENET_BOXED
        values["DATASETS.TRAIN"] = (
            ("imagenet_train_boxed",) if boxed else ("imagenet_train_boxed_mask",)
        )
    return values


@pytest.mark.parametrize("rel", sorted(ROWS))
def test_classification_row_has_the_papers_values(rel):
    """Exactly the paper's values (the short runs below check them statistically only)."""
    cfg = _cls_cfg(rel)
    expected = _paper_values(rel, ROWS[rel])
    got = {key: _get(cfg, key) for key in expected}
    assert got == expected


def _get(cfg, key: str):
    for part in key.split("."):
        cfg = cfg[part]
    return tuple(cfg) if isinstance(cfg, list) else cfg


@pytest.mark.parametrize("rel", sorted(r for r in DETECTION_ROWS if DETECTION_ROWS[r].schedule))
def test_detection_schedule_is_the_stated_one(rel):
    row = DETECTION_ROWS[rel]
    size, max_iter, steps = row.schedule
    cfg = get_cfg()
    add_transfer_config(cfg)
    cfg.merge_from_file(os.path.join(CONFIGS, rel))
    assert cfg.TRANSFER.RECIPE == row.target
    s = cfg.SOLVER
    assert (s.MAX_ITER, tuple(s.STEPS), s.BASE_LR, s.IMS_PER_BATCH) == (max_iter, steps, row.lr, 16)
    assert cfg.MODEL.RESNETS.DEPTH == row.depth
    if (
        row.target == "jwyang"
    ):  # 10 epochs of train2017 + flips, x0.1 after epochs 4 and 8, no warm-up
        assert max_iter == math.ceil(10 * size / 16)
        assert steps == tuple(e * size // 16 for e in (4, 8))
        assert s.WARMUP_ITERS == 0
        assert (cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN) == ((600,), 1000)
        assert (cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST) == (600, 1000)
        assert cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE == 128
        assert cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION == 7
        assert [list(x) for x in cfg.MODEL.ANCHOR_GENERATOR.SIZES] == [[64, 128, 256, 512]]
    header = _header_chain(rel)
    for number in (max_iter, *steps):
        assert f"{number:,}" in header or str(number) in header, (
            f"{rel}: header does not state {number}"
        )


# ---------------------------------------------------------------- short real runs


@pytest.fixture(scope="module")
def matrix_data(tmp_path_factory):
    """Generated ImageNet-style data (every train image boxed; 1-3 objects each, so the
    'mask' set paints) and a COCO split, registered as ``matrix_imagenet_*`` / ``matrix_coco_*``."""
    root = str(tmp_path_factory.mktemp("matrix") / "synthetic_imagenet")
    write_synthetic_imagenet(
        root,
        num_classes=NUM_CLASSES,
        train_per_class=12,
        image_size=(48, 72),
        coco_train=6,
        coco_val=3,
    )
    register_synthetic_imagenet(root, prefix="matrix")
    return root


def _train_set(cfg) -> str:
    mask = cfg.INPUT.CLS.VARIANT in ("mask", "context") and any(
        "mask" in n for n in cfg.DATASETS.TRAIN
    )
    return "matrix_imagenet_train_boxed_mask" if mask else "matrix_imagenet_train_boxed"


def _metrics(output_dir: str):
    with open(os.path.join(output_dir, "metrics.json")) as f:
        return [r for r in (json.loads(line) for line in f) if "als/mean_true_class_target" in r]


def _binomial_p_value(k: int, n: int, p: float) -> float:
    """Two-sided exact binomial test: probability of an outcome at most as likely as k."""
    pmf = [math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(n + 1)]
    return sum(q for q in pmf if q <= pmf[k] * (1 + 1e-9))


@pytest.fixture(scope="module")
def train_cls():
    return load_tool("train_cls")


@pytest.fixture(scope="module")
def train_det():
    return load_tool("train_det")


@pytest.mark.parametrize("rel", sorted(ROWS))
def test_classification_row_trains_as_its_row(rel, matrix_data, train_cls, tmp_path):
    row = ROWS[rel]
    cfg = _cls_cfg(rel)
    out = str(tmp_path / "run")
    opts = [
        "DATASETS.TRAIN",
        f"('{_train_set(cfg)}',)",
        "DATASETS.TEST",
        "()",
        "OUTPUT_DIR",
        out,
        "MODEL.DEVICE",
        "cpu",
        "INPUT.CLS.CROP_SIZE",
        "32",
        "INPUT.CLS.TEST_RESIZE",
        "36",
        "INPUT.CLS.TEST_CROP_SIZE",
        "0",
        "SOLVER.IMS_PER_BATCH",
        str(BATCH),
        "SOLVER.EPOCHS",
        "0",
        "SOLVER.MAX_ITER",
        str(ITERS),
        "SOLVER.STEPS",
        "()",
        "SOLVER.WARMUP_ITERS",
        "0",
        "SOLVER.CHECKPOINT_PERIOD_EPOCHS",
        "0.0",
        "SOLVER.CHECKPOINT_PERIOD",
        "1000",
        "TEST.EVAL_PERIOD_EPOCHS",
        "0.0",
        "TEST.EVAL_PERIOD",
        "0",
        "DATALOADER.NUM_WORKERS",
        "0",
        "LOG_PERIOD",
        "1",
        "SEED",
        "7",
    ]
    if cfg.MODEL.CLASSIFIER.NUM_CLASSES != 0:  # 0 (OpenImages): taken from the training set
        opts += ["MODEL.CLASSIFIER.NUM_CLASSES", str(NUM_CLASSES)]
    if row.recipe == "tvrecipe":
        # every sample's own target, unmixed (Mixup/CutMix: tests/test_mixup_cutmix.py), with
        # the recipe's TrivialAugment and erasing on half the samples: ALS reads the
        # objectness left after them
        opts += ["MODEL.ALS.MIX_PROB", "0.0", "INPUT.CLS.RANDOM_ERASING", "0.5"]
    args = default_argument_parser().parse_args(
        ["--config-file", os.path.join(CONFIGS, rel), *opts]
    )
    train_cls.main(args)

    logged = get_cfg()
    add_als_config(logged)
    logged.merge_from_file(os.path.join(out, "config.yaml"))  # what the run wrote down
    assert logged.MODEL.RESNETS.DEPTH == row.depth
    assert logged.MODEL.CLASSIFIER.NUM_CLASSES == NUM_CLASSES
    rows = _metrics(out)
    assert [r["iteration"] for r in rows] == list(range(ITERS))
    k = NUM_CLASSES

    # context: a binomial draw at CONTEXT_PROB, or none at all
    contexts = round(sum(r["als/context_fraction"] for r in rows) * BATCH)
    if row.context:
        assert _binomial_p_value(contexts, ITERS * BATCH, row.context) > 1e-6, contexts
        assert contexts > 0
    else:
        assert contexts == 0

    # the true-class target, batch by batch
    for r in rows:
        t, c = r["als/mean_true_class_target"], r["als/context_fraction"]
        if row.target == "hard":
            assert t == pytest.approx(1.0, abs=1e-6)
        elif row.target == "ls" and logged.MODEL.ALS.LS_STYLE == "torch":
            assert t == pytest.approx(0.9 + 0.1 / k, abs=1e-6)  # 0.1 / K on every class
        elif row.target == "ls":
            assert t == pytest.approx(0.9, abs=1e-6)
        elif row.target == "als":
            assert r["als/boxed_fraction"] == 1.0
            o = r.get("als/mean_objectness", 0.0)
            assert 0.0 < o <= 1.0 or c == 1.0
            expected = (1 - c) * (row.beta * o + 1 - row.beta) + c / k
            assert t == pytest.approx(expected, abs=2e-5), (r["iteration"], t, expected)
        else:  # mixing: every batch mixed (MIX_PROB 1), true-class mass in [1 - share, 1]
            assert r["als/mixed"] == 1.0
            share = r["als/mix_ratio"]
            assert 1 - share - 1e-6 <= t <= 1 + 1e-6
    if row.target == "als" and row.beta == 1.0:  # ALS is not hard labels in disguise
        assert min(r["als/mean_true_class_target"] for r in rows) < 0.9
    if row.target == "mix":
        assert any(r["als/mean_true_class_target"] < 1 - 1e-3 for r in rows)

    # painting: 'mask' rows paint the other objects; rows without mask or context paint nothing
    painted = [r["als/painted_fraction"] for r in rows]
    mean = lambda key: sum(r.get(key, 0.0) for r in rows) / len(rows)  # noqa: E731
    print(
        f"[matrix] {rel}: context {contexts}/{ITERS * BATCH}, "
        f"true-class target {mean('als/mean_true_class_target'):.4f}, "
        f"objectness {mean('als/mean_objectness'):.4f}, "
        f"painted {mean('als/painted_fraction'):.4f}, "
        f"mix share {mean('als/mix_ratio'):.4f}"
    )
    if row.mask or row.context:
        assert max(painted) > 0
    else:
        assert max(painted) == 0.0


@pytest.mark.parametrize("rel", sorted(DETECTION_ROWS))
def test_detection_row_fine_tunes(rel, matrix_data, train_det, tmp_path):
    row = DETECTION_ROWS[rel]
    out = str(tmp_path / "run")
    opts = [
        "DATASETS.TRAIN",
        "('matrix_coco_train',)",
        "DATASETS.TEST",
        "('matrix_coco_val',)",
        "OUTPUT_DIR",
        out,
        "MODEL.DEVICE",
        "cpu",
        "MODEL.WEIGHTS",
        "",
        "MODEL.ROI_HEADS.NUM_CLASSES",
        str(NUM_CLASSES),
        "MODEL.RESNETS.NORM",
        "FrozenBN",
        "MODEL.FPN.NORM",
        "",
        "TEST.PRECISE_BN.ENABLED",
        "False",
        *tiny_det_opts(64, 96),
        "SOLVER.WARMUP_ITERS",
        "0",
        "SEED",
        "7",
        "SOLVER.BASE_LR",
        "1e-5",  # random init (no MODEL.WEIGHTS): keep the deep models finite
    ]
    args = default_argument_parser().parse_args(
        ["--config-file", os.path.join(CONFIGS, rel), *opts]
    )
    train_det.main(args)
    record = json.loads(open(os.path.join(out, "transfer_metrics.json")).read())
    assert f"R{row.depth}-" in record["architecture"]
    assert "AP" in record["results"]["bbox"]
    assert record.get("recipe") == row.target
