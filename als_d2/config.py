"""``add_als_config(cfg)``: the config keys of als-d2, and their validation.

Keys (defaults are the paper's ImageNet ResNet-50 setting where it gives one):

MODEL.CLASSIFIER   NUM_CLASSES (0 = the class count of the registered training set, logged),
                   IN_FEATURE (backbone feature pooled into the head)
MODEL.ALS          METHOD: hard | ls | als | cutmix | mixup | cutmix_als
                   LS_ALPHA: uniform label smoothing alpha (paper: 0.1)
                   LS_STYLE: "paper" (1-alpha on the true class, alpha/(K-1) elsewhere)
                             | "torch" (torch's label_smoothing: alpha/K on every class)
                   BETA: ALS blend, target = BETA * ALS + (1 - BETA) * hard, in [0, 1]
                   UNBOXED_TARGET: target of samples whose objectness is unknown
                             (images without boxes): hard | ls | uniform
                   MIX_ALPHA: Beta(a, a) parameter of the CutMix/Mixup ratio
                   MIX_PROB: probability that a batch is mixed
MODEL.CHANNELS_LAST
INPUT.CLS          CROP_SIZE (output side, pixels), CROP_SCALE / CROP_RATIO
                   (RandomResizedCrop, torchvision semantics), TEST_RESIZE (shorter
                   side before the centre crop), HFLIP_PROB, COLOR_JITTER
                   (brightness, contrast, saturation; [] = off), LIGHTING_STD (AlexNet
                   PCA lighting; 0 = off)
                   VARIANT: none | mask | context
                   CONTEXT_PROB: probability that a training sample has every object
                   painted out and a uniform target ('context' variant; paper: 0.15); on
                   the 'mask' set the other samples are 'mask' samples
                   SKIP_UNREADABLE_EVAL: evaluation maps an image that cannot be decoded
                   to None (skipped, counted) instead of raising ImageDecodeError;
                   training always skips such images
TEST               IMS_PER_BATCH: evaluation batch size (per process)
LOG_PERIOD         iterations between metrics.json / console writes (detectron2's 20)
SOLVER             EPOCHS, STEPS_EPOCHS, WARMUP_EPOCHS: the schedule in epochs; when
                   EPOCHS > 0, MAX_ITER / STEPS / WARMUP_ITERS are derived from the
                   training set size and IMS_PER_BATCH at start-up (setting MAX_ITER or
                   STEPS away from detectron2's defaults next to EPOCHS > 0 is an error:
                   SOLVER.EPOCHS 0 trains MAX_ITER iterations)
                   CHECKPOINT_PERIOD_EPOCHS (and TEST.EVAL_PERIOD_EPOCHS): periods in
                   epochs when > 0, overriding the iteration periods
                   LR_REFERENCE_BATCH: BASE_LR is the lr at this batch size and scales
                   linearly with IMS_PER_BATCH (0 = no scaling)
                   AMP.PRECISION: auto | bf16 | fp16 (with SOLVER.AMP.ENABLED)

Validation (``ValueError`` naming the key, before anything is trained):
:func:`check_als_config` checks ranges, choices and conflicts between keys (any
machine), :func:`check_device` that ``MODEL.DEVICE`` exists on this machine, and
:func:`check_training_dicts` (at trainer start, from the loaded training dicts) what the
config asks of the data: ``INPUT.CLS.VARIANT mask`` needs ``target_object`` in every
dict, ``context`` and ``MODEL.ALS.METHOD als / cutmix_als`` need boxes, labels must be
below ``MODEL.CLASSIFIER.NUM_CLASSES``.
"""
import logging
from typing import Dict, Optional, Sequence

import torch
from detectron2.config import CfgNode as CN

METHODS = ("hard", "ls", "als", "cutmix", "mixup", "cutmix_als")
LS_STYLES = ("paper", "torch")
UNBOXED_TARGETS = ("hard", "ls", "uniform")
VARIANTS = ("none", "mask", "context")
AMP_PRECISIONS = ("auto", "bf16", "fp16")
# detectron2's get_cfg() defaults: a SOLVER.MAX_ITER / STEPS that differs was set by the user
D2_DEFAULT_MAX_ITER = 40000
D2_DEFAULT_STEPS = (30000,)


def add_als_config(cfg: CN) -> None:
    """Add als-d2's keys to a detectron2 config (in place), as d2 projects do."""
    cfg.MODEL.CLASSIFIER = CN()
    cfg.MODEL.CLASSIFIER.NUM_CLASSES = 1000
    cfg.MODEL.CLASSIFIER.IN_FEATURE = "res5"
    cfg.MODEL.CHANNELS_LAST = False

    cfg.MODEL.ALS = CN()
    cfg.MODEL.ALS.METHOD = "hard"
    cfg.MODEL.ALS.LS_ALPHA = 0.1
    cfg.MODEL.ALS.LS_STYLE = "paper"
    cfg.MODEL.ALS.BETA = 1.0
    cfg.MODEL.ALS.UNBOXED_TARGET = "hard"
    cfg.MODEL.ALS.MIX_ALPHA = 1.0
    cfg.MODEL.ALS.MIX_PROB = 1.0

    cfg.INPUT.CLS = CN()
    cfg.INPUT.CLS.CROP_SIZE = 224
    cfg.INPUT.CLS.CROP_SCALE = (0.08, 1.0)
    cfg.INPUT.CLS.CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)
    cfg.INPUT.CLS.TEST_RESIZE = 256
    cfg.INPUT.CLS.HFLIP_PROB = 0.5
    cfg.INPUT.CLS.COLOR_JITTER = (0.4, 0.4, 0.4)
    cfg.INPUT.CLS.LIGHTING_STD = 0.1
    cfg.INPUT.CLS.VARIANT = "none"
    cfg.INPUT.CLS.CONTEXT_PROB = 0.15
    cfg.INPUT.CLS.SKIP_UNREADABLE_EVAL = False

    cfg.SOLVER.EPOCHS = 0
    cfg.SOLVER.STEPS_EPOCHS = ()
    cfg.SOLVER.WARMUP_EPOCHS = 0.0
    cfg.SOLVER.LR_REFERENCE_BATCH = 0
    cfg.SOLVER.CHECKPOINT_PERIOD_EPOCHS = 0.0
    cfg.TEST.EVAL_PERIOD_EPOCHS = 0.0
    cfg.TEST.IMS_PER_BATCH = 64
    cfg.LOG_PERIOD = 20
    if not hasattr(cfg.SOLVER, "AMP"):
        cfg.SOLVER.AMP = CN({"ENABLED": False})
    cfg.SOLVER.AMP.PRECISION = "auto"


def _fail(key: str, value, why: str):
    raise ValueError(f"config key {key} = {value!r}: {why}")


def check_device(cfg: CN) -> None:
    """``MODEL.DEVICE`` must name a device this machine has (e.g. ``cuda`` needs CUDA)."""
    name = cfg.MODEL.DEVICE
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError) as e:
        _fail("MODEL.DEVICE", name, f"not a torch device ({e})")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            built = torch.version.cuda or "without CUDA"
            _fail("MODEL.DEVICE", name, f"CUDA is not available here (torch {torch.__version__} built "
                                        f"{'for CUDA ' + built if torch.version.cuda else built}, "
                                        f"{torch.cuda.device_count()} visible device(s)); use MODEL.DEVICE cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            _fail("MODEL.DEVICE", name, f"only {torch.cuda.device_count()} CUDA device(s) are visible")
    elif device.type != "cpu":
        backend = getattr(torch.backends, device.type, None) or getattr(torch, device.type, None)
        available = getattr(backend, "is_available", None)
        if available is not None and not available():
            _fail("MODEL.DEVICE", name, f"{device.type} is not available on this machine")


def check_als_config(cfg: CN) -> None:
    """Stop before training on out-of-range or conflicting values, naming the key.
    (What the machine offers is :func:`check_device`'s business.)"""
    als, inp = cfg.MODEL.ALS, cfg.INPUT.CLS
    if als.METHOD not in METHODS:
        _fail("MODEL.ALS.METHOD", als.METHOD, f"unknown method; expected one of {METHODS}")
    if als.LS_STYLE not in LS_STYLES:
        _fail("MODEL.ALS.LS_STYLE", als.LS_STYLE, f"expected one of {LS_STYLES}")
    if als.UNBOXED_TARGET not in UNBOXED_TARGETS:
        _fail("MODEL.ALS.UNBOXED_TARGET", als.UNBOXED_TARGET, f"expected one of {UNBOXED_TARGETS}")
    if not 0.0 <= als.LS_ALPHA <= 1.0:
        _fail("MODEL.ALS.LS_ALPHA", als.LS_ALPHA, "must be in [0, 1]")
    if not 0.0 <= als.BETA <= 1.0:
        _fail("MODEL.ALS.BETA", als.BETA, "must be in [0, 1]")
    if als.MIX_ALPHA <= 0.0:
        _fail("MODEL.ALS.MIX_ALPHA", als.MIX_ALPHA, "must be > 0")
    if not 0.0 <= als.MIX_PROB <= 1.0:
        _fail("MODEL.ALS.MIX_PROB", als.MIX_PROB, "must be in [0, 1]")
    if cfg.MODEL.CLASSIFIER.NUM_CLASSES < 2 and cfg.MODEL.CLASSIFIER.NUM_CLASSES != 0:
        _fail("MODEL.CLASSIFIER.NUM_CLASSES", cfg.MODEL.CLASSIFIER.NUM_CLASSES,
              "must be >= 2 (or 0: the class count of the training set)")
    if cfg.LOG_PERIOD <= 0:
        _fail("LOG_PERIOD", cfg.LOG_PERIOD, "must be > 0 (iterations between metric writes)")
    if inp.VARIANT not in VARIANTS:
        _fail("INPUT.CLS.VARIANT", inp.VARIANT, f"expected one of {VARIANTS}")
    if not 0.0 <= inp.CONTEXT_PROB < 1.0:
        _fail("INPUT.CLS.CONTEXT_PROB", inp.CONTEXT_PROB, "must be in [0, 1)")
    if inp.CROP_SIZE <= 0:
        _fail("INPUT.CLS.CROP_SIZE", inp.CROP_SIZE, "must be > 0")
    if inp.TEST_RESIZE < inp.CROP_SIZE:
        _fail("INPUT.CLS.TEST_RESIZE", inp.TEST_RESIZE, f"must be >= INPUT.CLS.CROP_SIZE ({inp.CROP_SIZE})")
    lo, hi = inp.CROP_SCALE
    if not 0.0 < lo <= hi <= 1.0:
        _fail("INPUT.CLS.CROP_SCALE", inp.CROP_SCALE, "must satisfy 0 < min <= max <= 1")
    lo, hi = inp.CROP_RATIO
    if not 0.0 < lo <= hi:
        _fail("INPUT.CLS.CROP_RATIO", inp.CROP_RATIO, "must satisfy 0 < min <= max")
    if not 0.0 <= inp.HFLIP_PROB <= 1.0:
        _fail("INPUT.CLS.HFLIP_PROB", inp.HFLIP_PROB, "must be in [0, 1]")
    if len(inp.COLOR_JITTER) not in (0, 3) or any(v < 0 for v in inp.COLOR_JITTER):
        _fail("INPUT.CLS.COLOR_JITTER", inp.COLOR_JITTER, "must be [] or [brightness, contrast, saturation] >= 0")
    if cfg.SOLVER.AMP.PRECISION not in AMP_PRECISIONS:
        _fail("SOLVER.AMP.PRECISION", cfg.SOLVER.AMP.PRECISION, f"expected one of {AMP_PRECISIONS}")
    if cfg.SOLVER.EPOCHS < 0:
        _fail("SOLVER.EPOCHS", cfg.SOLVER.EPOCHS, "must be >= 0")
    if cfg.SOLVER.EPOCHS > 0 and any(not 0 < e < cfg.SOLVER.EPOCHS for e in cfg.SOLVER.STEPS_EPOCHS):
        _fail("SOLVER.STEPS_EPOCHS", cfg.SOLVER.STEPS_EPOCHS, f"each must be in (0, SOLVER.EPOCHS={cfg.SOLVER.EPOCHS})")
    if cfg.SOLVER.EPOCHS > 0:
        # apply_epoch_schedule derives MAX_ITER / STEPS from EPOCHS and overwrites them: an
        # iteration schedule set next to an epoch schedule would be silently ignored
        for key, value, default in (("SOLVER.MAX_ITER", cfg.SOLVER.MAX_ITER, D2_DEFAULT_MAX_ITER),
                                    ("SOLVER.STEPS", tuple(cfg.SOLVER.STEPS), D2_DEFAULT_STEPS)):
            if value != default:
                _fail(key, value if key == "SOLVER.MAX_ITER" else list(value),
                      f"conflicts with SOLVER.EPOCHS = {cfg.SOLVER.EPOCHS} (an epoch schedule derives "
                      f"SOLVER.MAX_ITER and SOLVER.STEPS and would overwrite it): set SOLVER.EPOCHS 0 to "
                      f"train MAX_ITER iterations (with SOLVER.STEPS), or leave SOLVER.MAX_ITER / "
                      f"SOLVER.STEPS unset and use SOLVER.EPOCHS / SOLVER.STEPS_EPOCHS")
    if cfg.SOLVER.EPOCHS == 0 and cfg.SOLVER.MAX_ITER <= 0:
        _fail("SOLVER.MAX_ITER", cfg.SOLVER.MAX_ITER, "must be > 0 (or set SOLVER.EPOCHS)")
    for key, value in (
        ("SOLVER.WARMUP_EPOCHS", cfg.SOLVER.WARMUP_EPOCHS),
        ("SOLVER.CHECKPOINT_PERIOD_EPOCHS", cfg.SOLVER.CHECKPOINT_PERIOD_EPOCHS),
        ("TEST.EVAL_PERIOD_EPOCHS", cfg.TEST.EVAL_PERIOD_EPOCHS),
        ("TEST.EVAL_PERIOD", cfg.TEST.EVAL_PERIOD),
        ("DATALOADER.NUM_WORKERS", cfg.DATALOADER.NUM_WORKERS),
        ("INPUT.CLS.LIGHTING_STD", inp.LIGHTING_STD),
    ):
        if value < 0:
            _fail(key, value, "must be >= 0")
    for key, value in (
        ("SOLVER.IMS_PER_BATCH", cfg.SOLVER.IMS_PER_BATCH),
        ("TEST.IMS_PER_BATCH", cfg.TEST.IMS_PER_BATCH),
        ("SOLVER.BASE_LR", cfg.SOLVER.BASE_LR),
    ):
        if value <= 0:
            _fail(key, value, "must be > 0")
    if cfg.SOLVER.CHECKPOINT_PERIOD_EPOCHS == 0 and cfg.SOLVER.CHECKPOINT_PERIOD <= 0:
        _fail("SOLVER.CHECKPOINT_PERIOD", cfg.SOLVER.CHECKPOINT_PERIOD, "must be > 0 (iterations between checkpoints)")
    if cfg.INPUT.FORMAT not in ("RGB", "BGR"):
        _fail("INPUT.FORMAT", cfg.INPUT.FORMAT, "the classification pipeline reads RGB or BGR")
    feature = cfg.MODEL.CLASSIFIER.IN_FEATURE
    if feature not in cfg.MODEL.RESNETS.OUT_FEATURES:
        _fail("MODEL.CLASSIFIER.IN_FEATURE", feature,
              f"must be one of MODEL.RESNETS.OUT_FEATURES {list(cfg.MODEL.RESNETS.OUT_FEATURES)}")


BOX_METHODS = ("als", "cutmix_als")


def _has_boxes(d: dict) -> bool:
    return bool(d.get("annotations"))


def check_training_dicts(cfg: CN, datasets: Dict[str, Sequence[dict]]) -> None:
    """What the config asks of the training data, checked on the loaded dicts
    (``{dataset name: dicts}``) before training; ``ValueError`` naming key and dataset:

    - ``INPUT.CLS.VARIANT mask``: every dict has ``target_object`` (the 'mask' set, one
      dict per object, e.g. ``imagenet_train_boxed_mask``);
    - ``INPUT.CLS.VARIANT context`` and ``MODEL.ALS.METHOD als / cutmix_als``: boxes
      (``annotations``) in every training dataset;
    - every ``label`` is an int in [0, ``MODEL.CLASSIFIER.NUM_CLASSES``);
    - a dataset whose metadata has ``num_classes`` (ImageNet, OpenImages: set when it is
      loaded) has exactly ``MODEL.CLASSIFIER.NUM_CLASSES`` classes (an OpenImages subset's
      count depends on the rules and the copy: the paper's 480 is not guaranteed).
    """
    from detectron2.data import MetadataCatalog

    variant, method = cfg.INPUT.CLS.VARIANT, cfg.MODEL.ALS.METHOD
    num_classes = cfg.MODEL.CLASSIFIER.NUM_CLASSES
    for name, dicts in datasets.items():
        if variant == "none" and any("target_object" in d for d in dicts):
            _fail("INPUT.CLS.VARIANT", variant,
                  f"dataset {name!r} (DATASETS.TRAIN) is a 'mask' set (its dicts have 'target_object', "
                  "so the mapper paints the other objects): set INPUT.CLS.VARIANT mask (or context, "
                  "the paper's 'context' rows), or train on a set without 'target_object'")
        if variant == "mask":
            missing = sum(1 for d in dicts if "target_object" not in d)
            if missing:
                _fail("INPUT.CLS.VARIANT", variant,
                      f"needs training dicts with 'target_object' (one per annotated object, e.g. "
                      f"imagenet_train_boxed_mask), but {missing} of the {len(dicts)} dicts of dataset "
                      f"{name!r} have none")
        needs_boxes = [k for k, v in (("INPUT.CLS.VARIANT", variant == "context"),
                                      ("MODEL.ALS.METHOD", method in BOX_METHODS)) if v]
        if needs_boxes and not any(_has_boxes(d) for d in dicts):
            key = needs_boxes[0]
            _fail(key, variant if key == "INPUT.CLS.VARIANT" else method,
                  f"needs bounding boxes, but no dict of dataset {name!r} has 'annotations' "
                  "(use a boxed set, e.g. imagenet_train_boxed)")
        known = getattr(MetadataCatalog.get(name), "num_classes", None) if name in MetadataCatalog else None
        if known is not None and known != num_classes:
            _fail("MODEL.CLASSIFIER.NUM_CLASSES", num_classes,
                  f"dataset {name!r} has {known} classes (its metadata, from the files it was loaded "
                  f"from): set MODEL.CLASSIFIER.NUM_CLASSES {known}")
        bad = [d.get("label") for d in dicts
               if not isinstance(d.get("label"), int) or not 0 <= d["label"] < num_classes]
        if bad:
            _fail("MODEL.CLASSIFIER.NUM_CLASSES", num_classes,
                  f"dataset {name!r} has {len(bad)} dict(s) whose 'label' is not in [0, {num_classes}) "
                  f"(e.g. {bad[0]!r})")


def dataset_num_classes(names: Sequence[str], datasets: Optional[Dict[str, Sequence[dict]]] = None) -> int:
    """The class count of the registered datasets ``names`` (their metadata's
    ``num_classes``, else ``len(thing_classes)``; loaded first when neither is set yet).
    ``ValueError`` when they disagree or none is known."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    counts = {}
    for name in names:
        meta = MetadataCatalog.get(name)
        known = getattr(meta, "num_classes", None)
        if known is None and not (datasets and name in datasets):
            DatasetCatalog.get(name)  # ImageNet / OpenImages set their metadata when loaded
            known = getattr(meta, "num_classes", None)
        if known is None and getattr(meta, "thing_classes", None):
            known = len(meta.thing_classes)
        if known is not None:
            counts[name] = int(known)
    if not counts:
        _fail("MODEL.CLASSIFIER.NUM_CLASSES", 0,
              f"the class count of {list(names)} is not recorded in their metadata: set it explicitly")
    if len(set(counts.values())) > 1:
        _fail("MODEL.CLASSIFIER.NUM_CLASSES", 0, f"the training sets disagree on the class count: {counts}")
    return next(iter(counts.values()))


def check_eval_num_classes(cfg: CN, dataset: str, dicts: Optional[Sequence[dict]] = None) -> int:
    """The class count of the evaluated ``dataset`` (its metadata's ``num_classes``, else
    ``len(thing_classes)``, else its max label + 1, a lower bound), checked against
    ``MODEL.CLASSIFIER.NUM_CLASSES``: ``ValueError`` naming the key and the dataset when the
    model's outputs cannot be the dataset's classes. Returns the count found."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    num_classes = cfg.MODEL.CLASSIFIER.NUM_CLASSES

    def known():
        meta = MetadataCatalog.get(dataset)
        count = getattr(meta, "num_classes", None)
        if count is None and getattr(meta, "thing_classes", None):
            count = len(meta.thing_classes)
        return count

    count = known()
    if count is None and dicts is None:
        dicts = DatasetCatalog.get(dataset)  # ImageNet / OpenImages set their metadata when loaded
        count = known()
    if count is not None:
        if int(count) != num_classes:
            _fail("MODEL.CLASSIFIER.NUM_CLASSES", num_classes,
                  f"the evaluated dataset {dataset!r} has {count} classes (its metadata): the model "
                  f"would score {num_classes} classes; set MODEL.CLASSIFIER.NUM_CLASSES {count} "
                  f"(and evaluate a checkpoint trained for {count} classes)")
        return int(count)
    labels = [d.get("label") for d in dicts if isinstance(d.get("label"), int)]
    top = max(labels) + 1 if labels else 0
    if top > num_classes:
        _fail("MODEL.CLASSIFIER.NUM_CLASSES", num_classes,
              f"the evaluated dataset {dataset!r} has labels up to {top - 1} (at least {top} classes): "
              f"set MODEL.CLASSIFIER.NUM_CLASSES to its class count")
    return top


def resolve_num_classes(cfg: CN, datasets: Optional[Dict[str, Sequence[dict]]] = None) -> CN:
    """``cfg`` with ``MODEL.CLASSIFIER.NUM_CLASSES 0`` replaced by the class count of
    ``DATASETS.TRAIN`` (logged); ``cfg`` itself when it is already set."""
    if cfg.MODEL.CLASSIFIER.NUM_CLASSES != 0:
        return cfg
    num = dataset_num_classes(cfg.DATASETS.TRAIN, datasets)
    logging.getLogger(__name__).info(
        f"MODEL.CLASSIFIER.NUM_CLASSES 0 -> {num}: the class count of {tuple(cfg.DATASETS.TRAIN)}"
    )
    cfg = cfg.clone()
    frozen = cfg.is_frozen()
    cfg.defrost()
    cfg.MODEL.CLASSIFIER.NUM_CLASSES = num
    if frozen:
        cfg.freeze()
    return cfg


def load_als_config(config_file: str, opts: Sequence = ()) -> CN:
    """detectron2's defaults + als-d2's keys + ``config_file`` + ``KEY VALUE`` overrides,
    frozen and checked (``check_als_config``, ``check_device``): what the tools start from."""
    from detectron2.config import get_cfg

    cfg = get_cfg()
    add_als_config(cfg)
    cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts))
    cfg.freeze()
    check_als_config(cfg)
    check_device(cfg)
    return resolve_num_classes(cfg)
