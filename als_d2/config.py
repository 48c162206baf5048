"""``add_als_config(cfg)``: the config keys of als-d2 (each commented where it is defined),
and their validation.

Validation (``ValueError`` naming the key, before anything is trained):
:func:`check_als_config` checks ranges, choices and conflicts between keys (any machine),
:func:`check_device` that ``MODEL.DEVICE`` exists on this machine,
:func:`check_datasets_registered` that every dataset ``DATASETS.TRAIN`` / ``TEST`` names
is registered, and
:func:`check_training_dicts` (at trainer start, from the loaded training dicts) what the
config asks of the data.
"""

import difflib
import logging
import os
from typing import Dict, List, Optional, Sequence

import torch
from detectron2.config import CfgNode as CN

AMP_PRECISIONS = ("auto", "bf16", "fp16")
# detectron2's get_cfg() defaults: a SOLVER.MAX_ITER / STEPS that differs was set by the user
D2_DEFAULT_MAX_ITER = 40000
D2_DEFAULT_STEPS = (30000,)


def add_als_config(cfg: CN) -> None:
    """Add als-d2's keys to a detectron2 config (in place), as d2 projects do. Defaults are
    the paper's ImageNet ResNet-50 setting where it gives one (appendix A.3)."""
    _C = cfg

    _C.MODEL.CLASSIFIER = CN()
    # Number of classes K of the linear head; 0 = the class count of the registered
    # DATASETS.TRAIN (logged at start-up). ImageNet rows: 1000; OpenImages rows: their subset's.
    _C.MODEL.CLASSIFIER.NUM_CLASSES = 1000
    # Backbone feature (one of MODEL.RESNETS.OUT_FEATURES) that is average-pooled into the head.
    _C.MODEL.CLASSIFIER.IN_FEATURE = "res5"
    # Run the classifier in channels_last memory format (faster convolutions on some GPUs/CPUs).
    _C.MODEL.CHANNELS_LAST = False

    _C.MODEL.ALS = CN()
    # Training targets, a name in als_d2.modeling.targets.TARGET_REGISTRY: "hard" (one-hot;
    # table 2 "Hard Label"), "ls" (label smoothing; "Label Smoothing"), "als" (adaptive label
    # smoothing, alpha = 1 - objectness; the "A. L. S." rows), "cutmix" (table 1/2 "CutMix"),
    # "mixup" (baseline), "cutmix_als" (box-aware CutMix with ALS, not in the paper),
    # "mixup_cutmix" (torchvision's recipe: Mixup or CutMix per batch, of MIX_TARGET targets).
    _C.MODEL.ALS.METHOD = "hard"
    # Label smoothing alpha in [0, 1] of "ls" (and of UNBOXED_TARGET "ls"); the paper's 0.1.
    _C.MODEL.ALS.LS_ALPHA = 0.1
    # Label smoothing convention: "paper" (1 - alpha on the true class, alpha / (K - 1)
    # elsewhere; Szegedy et al., the paper's formula) or "torch" (F.cross_entropy's
    # label_smoothing: alpha / K on every class).
    _C.MODEL.ALS.LS_STYLE = "paper"
    # ALS blend in [0, 1]: target = BETA * ALS + (1 - BETA) * hard (paper eq. 6); 0 = hard.
    # Table 2 rows "A. L. S. (beta = 1 / 0.75 / 0.5)".
    _C.MODEL.ALS.BETA = 1.0
    # Target of samples whose objectness is unknown (images without boxes, e.g. on the
    # all-images set): "hard" | "ls" | "uniform".
    _C.MODEL.ALS.UNBOXED_TARGET = "hard"
    # Beta(a, a) parameter a > 0 of the mixing ratio of mixup / cutmix / cutmix_als
    # (CutMix row: 1.0; Mixup baseline: 0.2).
    _C.MODEL.ALS.MIX_ALPHA = 1.0
    # Probability in [0, 1] that a batch is mixed (mixing methods only).
    _C.MODEL.ALS.MIX_PROB = 1.0
    # mixup_cutmix: Beta(a, a) parameter a >= 0 of Mixup's lam (torchvision's recipe: 0.2);
    # 0 = Mixup is never chosen.
    _C.MODEL.ALS.MIXUP_ALPHA = 0.2
    # mixup_cutmix: Beta(a, a) parameter a >= 0 of CutMix's lam (torchvision's recipe: 1.0);
    # 0 = CutMix is never chosen.
    _C.MODEL.ALS.CUTMIX_ALPHA = 1.0
    # mixup_cutmix: the per-sample targets that are mixed: "hard", "ls" (LS_ALPHA, LS_STYLE;
    # "torch" style = torchvision's label_smoothing on the mixed target) or "als" (Mixup of
    # ALS targets, box-aware CutMix with ALS; needs boxes).
    _C.MODEL.ALS.MIX_TARGET = "hard"

    _C.MODEL_EMA = CN()
    # Keep an exponential moving average of the weights (torchvision's --model-ema; engine/ema.py),
    # saved in checkpoints ("model_ema") and evaluated next to the raw model ("ema/" results).
    _C.MODEL_EMA.ENABLED = False
    # EMA decay in [0, 1] before torchvision's adjustment for batch and period:
    # 1 - min(1, (1 - DECAY) * SOLVER.IMS_PER_BATCH * STEPS / epochs) is used (logged).
    _C.MODEL_EMA.DECAY = 0.99998
    # Iterations between two updates of the average, >= 1 (torchvision's --model-ema-steps).
    _C.MODEL_EMA.STEPS = 32
    # During the lr warm-up (SOLVER.WARMUP_ITERS) the average restarts as a copy of the weights
    # after every update (torchvision's reset of n_averaged), and averages after it.
    _C.MODEL_EMA.WARMUP_RESET = True

    _C.INPUT.CLS = CN()
    # Side of the square training / evaluation crop, pixels.
    _C.INPUT.CLS.CROP_SIZE = 224
    # RandomResizedCrop's area fraction range (min, max) in (0, 1] (torchvision semantics).
    _C.INPUT.CLS.CROP_SCALE = (0.08, 1.0)
    # RandomResizedCrop's aspect ratio range (min, max), > 0.
    _C.INPUT.CLS.CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)
    # Evaluation: shorter side resized to this (pixels, >= the evaluation crop), then a
    # centre crop.
    _C.INPUT.CLS.TEST_RESIZE = 256
    # Side of the evaluation centre crop, pixels; 0 = CROP_SIZE (torchvision's new recipe
    # trains at 176 and evaluates at 224 after resizing to 232).
    _C.INPUT.CLS.TEST_CROP_SIZE = 0
    # Probability in [0, 1] of a horizontal flip in training.
    _C.INPUT.CLS.HFLIP_PROB = 0.5
    # Colour jitter strengths (brightness, contrast, saturation), each >= 0; [] = off.
    _C.INPUT.CLS.COLOR_JITTER = (0.4, 0.4, 0.4)
    # Standard deviation of AlexNet's PCA lighting noise; 0 = off.
    _C.INPUT.CLS.LIGHTING_STD = 0.1
    # Strong augmentation after the crop, flip, colour jitter and lighting (training only;
    # als_d2/data/strong_augment.py): "" = none, "ta_wide" = TrivialAugmentWide, "ra" =
    # RandAugment; torchvision's op lists and magnitude bins, objectness kept exact.
    _C.INPUT.CLS.AUTO_AUGMENT = ""
    # RandAugment: number of ops applied in sequence (>= 0; torchvision's default 2).
    _C.INPUT.CLS.RA_NUM_OPS = 2
    # RandAugment: magnitude bin of every op, in [0, AUTO_AUGMENT_BINS) (torchvision's 9).
    _C.INPUT.CLS.RA_MAGNITUDE = 9
    # TrivialAugmentWide / RandAugment: number of magnitude bins (>= 2; torchvision's 31).
    _C.INPUT.CLS.AUTO_AUGMENT_BINS = 31
    # TrivialAugmentWide / RandAugment: "nearest" or "bilinear" resampling of the geometric
    # ops (torchvision's classification reference passes bilinear).
    _C.INPUT.CLS.AUTO_AUGMENT_INTERP = "bilinear"
    # Probability in [0, 1] of RandomErasing, last (torchvision's new recipe: 0.1; 0 = off);
    # the erased rectangle is filled with the pixel mean and leaves the object region.
    _C.INPUT.CLS.RANDOM_ERASING = 0.0
    # Training-set variant, one of als_d2.data.mapper.VARIANTS: "none"; "mask" (one sample
    # per annotated object, the other objects painted with the pixel mean; table 2
    # "A. L. S. (mask)"); "context" (the 'mask' set plus context-only samples; table 2
    # "A. L. S. (Context)").
    _C.INPUT.CLS.VARIANT = "none"
    # 'context' variant: probability in [0, 1) that a training sample has every object
    # painted out and a uniform target (the paper's 0.15); the others are 'mask' samples.
    _C.INPUT.CLS.CONTEXT_PROB = 0.15
    # Evaluation: an image that cannot be decoded is skipped (warned, and counted in the
    # evaluator's num_skipped) instead of raising ImageDecodeError. Training always skips
    # such images (data/skipped_samples).
    _C.INPUT.CLS.SKIP_UNREADABLE_EVAL = False

    # Training length in epochs when > 0: SOLVER.MAX_ITER / STEPS / WARMUP_ITERS are then
    # derived at start-up from the training set size and IMS_PER_BATCH (engine/schedule.py),
    # and setting MAX_ITER or STEPS as well is an error. 0 = train SOLVER.MAX_ITER iterations.
    # The paper's ImageNet rows: 300.
    _C.SOLVER.EPOCHS = 0
    # Epochs (each in (0, EPOCHS)) at which the lr is multiplied by SOLVER.GAMMA; the paper's
    # ImageNet rows: (75, 150, 225).
    _C.SOLVER.STEPS_EPOCHS = ()
    # Linear warmup length in epochs (the paper: none).
    _C.SOLVER.WARMUP_EPOCHS = 0.0
    # Linear lr scaling: BASE_LR is the lr at this batch size and scales with IMS_PER_BATCH
    # (the paper: lr 0.1 at batch 256); 0 = no scaling. Not together with
    # SOLVER.REFERENCE_WORLD_SIZE, detectron2's own scaling of BASE_LR.
    _C.SOLVER.LR_REFERENCE_BATCH = 0
    # Checkpoint period in epochs when > 0 (overrides SOLVER.CHECKPOINT_PERIOD).
    _C.SOLVER.CHECKPOINT_PERIOD_EPOCHS = 0.0
    # Evaluation period in epochs when > 0 (overrides TEST.EVAL_PERIOD).
    _C.TEST.EVAL_PERIOD_EPOCHS = 0.0
    # Evaluation batch size, per process.
    _C.TEST.IMS_PER_BATCH = 64
    # Iterations between metrics.json / console writes (detectron2 writes every 20).
    _C.LOG_PERIOD = 20
    if not hasattr(_C.SOLVER, "AMP"):
        _C.SOLVER.AMP = CN({"ENABLED": False})
    # Autocast dtype with SOLVER.AMP.ENABLED: "auto" (bf16 on GPUs that have it, else fp16;
    # on a CPU bf16 only where it is native, else float32), "bf16" or "fp16" (grad scaler).
    _C.SOLVER.AMP.PRECISION = "auto"


class ConfigError(ValueError):
    """A config key whose value cannot work (the message names the key); the tools report
    it in one line, without a traceback."""


def _fail(key: str, value, why: str):
    raise ConfigError(f"config key {key} = {value!r}: {why}")


def check_device(cfg: CN) -> None:
    """``MODEL.DEVICE`` must name a device this machine has (e.g. ``cuda`` needs CUDA)."""
    name = cfg.MODEL.DEVICE
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError) as e:
        _fail("MODEL.DEVICE", name, f"not a torch device ({e})")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            built = "for CUDA " + torch.version.cuda if torch.version.cuda else "without CUDA"
            _fail(
                "MODEL.DEVICE",
                name,
                f"CUDA is not available here (torch {torch.__version__} built {built}, "
                f"{torch.cuda.device_count()} visible device(s)); use MODEL.DEVICE cpu",
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            _fail(
                "MODEL.DEVICE", name, f"only {torch.cuda.device_count()} CUDA device(s) are visible"
            )
    elif device.type != "cpu":
        backend = getattr(torch.backends, device.type, None) or getattr(torch, device.type, None)
        available = getattr(backend, "is_available", None)
        if available is not None and not available():
            _fail("MODEL.DEVICE", name, f"{device.type} is not available on this machine")


def check_datasets_registered(
    cfg: CN, keys: Sequence[str] = ("DATASETS.TRAIN", "DATASETS.TEST")
) -> None:
    """Every dataset name of the config ``keys`` is registered in detectron2's
    ``DatasetCatalog`` (checked at start-up: a misspelled test set would otherwise be found
    after training). The error names the key, the unknown name and its close matches."""
    from detectron2.data import DatasetCatalog

    known = DatasetCatalog.list()
    for key in keys:
        names = cfg
        for part in key.split("."):
            names = names[part]
        for name in names:
            if name in known:
                continue
            close = difflib.get_close_matches(name, known, n=3)
            hint = (
                f"did you mean {', '.join(repr(c) for c in close)}?"
                if close
                else f"{len(known)} names are registered (DatasetCatalog.list())"
            )
            _fail(key, tuple(names), f"dataset {name!r} is not registered; {hint}")


def check_als_config(cfg: CN) -> None:
    """Stop before training on out-of-range or conflicting values, naming the key.
    (What the machine offers is :func:`check_device`'s business.)"""
    _check_model(cfg)
    if not 0.0 <= cfg.MODEL_EMA.DECAY <= 1.0:
        _fail("MODEL_EMA.DECAY", cfg.MODEL_EMA.DECAY, "must be in [0, 1]")
    if cfg.MODEL_EMA.STEPS < 1:
        _fail("MODEL_EMA.STEPS", cfg.MODEL_EMA.STEPS, "must be >= 1 (iterations between updates)")
    check_backbone_outputs(cfg)
    _check_input(cfg)
    _check_schedule(cfg)
    for key, value in (
        ("SOLVER.WARMUP_EPOCHS", cfg.SOLVER.WARMUP_EPOCHS),
        ("SOLVER.CHECKPOINT_PERIOD_EPOCHS", cfg.SOLVER.CHECKPOINT_PERIOD_EPOCHS),
        ("TEST.EVAL_PERIOD_EPOCHS", cfg.TEST.EVAL_PERIOD_EPOCHS),
        ("TEST.EVAL_PERIOD", cfg.TEST.EVAL_PERIOD),
        ("DATALOADER.NUM_WORKERS", cfg.DATALOADER.NUM_WORKERS),
        ("INPUT.CLS.LIGHTING_STD", cfg.INPUT.CLS.LIGHTING_STD),
    ):
        if value < 0:
            _fail(key, value, "must be >= 0")
    for key, value in (
        ("SOLVER.IMS_PER_BATCH", cfg.SOLVER.IMS_PER_BATCH),
        ("TEST.IMS_PER_BATCH", cfg.TEST.IMS_PER_BATCH),
        ("SOLVER.BASE_LR", cfg.SOLVER.BASE_LR),
        ("LOG_PERIOD", cfg.LOG_PERIOD),
    ):
        if value <= 0:
            _fail(key, value, "must be > 0")
    if cfg.SOLVER.CHECKPOINT_PERIOD_EPOCHS == 0 and cfg.SOLVER.CHECKPOINT_PERIOD <= 0:
        _fail(
            "SOLVER.CHECKPOINT_PERIOD",
            cfg.SOLVER.CHECKPOINT_PERIOD,
            "must be > 0 (iterations between checkpoints)",
        )


def _check_choices(*keys_values_choices) -> None:
    for key, value, choices in keys_values_choices:
        if value not in choices:
            _fail(key, value, f"expected one of {tuple(choices)}")


def _check_model(cfg: CN) -> None:
    """MODEL.ALS, MODEL.CLASSIFIER."""
    # the names are defined where they are used (imported here: no import cycle with config)
    from .modeling.targets import LS_STYLES, SAMPLE_TARGETS, TARGET_REGISTRY, UNBOXED_TARGETS

    als = cfg.MODEL.ALS
    _check_choices(
        ("MODEL.ALS.METHOD", als.METHOD, [name for name, _ in TARGET_REGISTRY]),
        ("MODEL.ALS.LS_STYLE", als.LS_STYLE, LS_STYLES),
        ("MODEL.ALS.UNBOXED_TARGET", als.UNBOXED_TARGET, UNBOXED_TARGETS),
        ("MODEL.ALS.MIX_TARGET", als.MIX_TARGET, SAMPLE_TARGETS),
    )
    for key, value in (
        ("MODEL.ALS.LS_ALPHA", als.LS_ALPHA),
        ("MODEL.ALS.BETA", als.BETA),
        ("MODEL.ALS.MIX_PROB", als.MIX_PROB),
    ):
        if not 0.0 <= value <= 1.0:
            _fail(key, value, "must be in [0, 1]")
    if als.MIX_ALPHA <= 0.0:
        _fail("MODEL.ALS.MIX_ALPHA", als.MIX_ALPHA, "must be > 0")
    for key, value in (
        ("MODEL.ALS.MIXUP_ALPHA", als.MIXUP_ALPHA),
        ("MODEL.ALS.CUTMIX_ALPHA", als.CUTMIX_ALPHA),
    ):
        if value < 0.0:
            _fail(key, value, "must be >= 0 (0: never chosen)")
    if als.METHOD == "mixup_cutmix" and als.MIXUP_ALPHA == 0.0 and als.CUTMIX_ALPHA == 0.0:
        _fail(
            "MODEL.ALS.MIXUP_ALPHA",
            als.MIXUP_ALPHA,
            "and MODEL.ALS.CUTMIX_ALPHA are both 0: mixup_cutmix would never mix; set one > 0 "
            "or MODEL.ALS.METHOD to the unmixed targets (hard, ls, als)",
        )
    num_classes = cfg.MODEL.CLASSIFIER.NUM_CLASSES
    if num_classes < 2 and num_classes != 0:
        _fail(
            "MODEL.CLASSIFIER.NUM_CLASSES",
            num_classes,
            "must be >= 2 (or 0: the class count of the training set)",
        )
    feature = cfg.MODEL.CLASSIFIER.IN_FEATURE
    if feature not in cfg.MODEL.RESNETS.OUT_FEATURES:
        _fail(
            "MODEL.CLASSIFIER.IN_FEATURE",
            feature,
            f"must be one of MODEL.RESNETS.OUT_FEATURES {list(cfg.MODEL.RESNETS.OUT_FEATURES)}",
        )


def check_backbone_outputs(cfg: CN) -> None:
    """``MODEL.RESNETS.OUT_FEATURES`` must be ``[MODEL.CLASSIFIER.IN_FEATURE]``: the
    classifier pools that one feature, and a stage built for another output (res5 beside
    res4) gets no gradient, which DDP rejects at the second iteration."""
    outputs = list(cfg.MODEL.RESNETS.OUT_FEATURES)
    feature = cfg.MODEL.CLASSIFIER.IN_FEATURE
    unused = [name for name in outputs if name != feature]
    if unused:
        raise ConfigError(
            f"config keys MODEL.RESNETS.OUT_FEATURES = {outputs} and MODEL.CLASSIFIER.IN_FEATURE"
            f" = {feature!r}: the classifier uses only {feature}, not {unused} (unused "
            f"parameters make DDP fail); set MODEL.RESNETS.OUT_FEATURES ['{feature}']"
        )


def _check_input(cfg: CN) -> None:
    """INPUT.CLS, INPUT.FORMAT."""
    from .data.mapper import VARIANTS

    inp = cfg.INPUT.CLS
    _check_choices(
        ("INPUT.CLS.VARIANT", inp.VARIANT, VARIANTS),
        ("INPUT.FORMAT", cfg.INPUT.FORMAT, ("RGB", "BGR")),
    )
    if not 0.0 <= inp.CONTEXT_PROB < 1.0:
        _fail("INPUT.CLS.CONTEXT_PROB", inp.CONTEXT_PROB, "must be in [0, 1)")
    if not 0.0 <= inp.HFLIP_PROB <= 1.0:
        _fail("INPUT.CLS.HFLIP_PROB", inp.HFLIP_PROB, "must be in [0, 1]")
    if inp.CROP_SIZE <= 0:
        _fail("INPUT.CLS.CROP_SIZE", inp.CROP_SIZE, "must be > 0")
    if inp.TEST_CROP_SIZE < 0:
        _fail("INPUT.CLS.TEST_CROP_SIZE", inp.TEST_CROP_SIZE, "must be >= 0 (0: CROP_SIZE)")
    test_crop = inp.TEST_CROP_SIZE or inp.CROP_SIZE
    if inp.TEST_RESIZE < test_crop:
        _fail(
            "INPUT.CLS.TEST_RESIZE",
            inp.TEST_RESIZE,
            f"must be >= the evaluation crop ({test_crop}: INPUT.CLS.TEST_CROP_SIZE, 0 = "
            "CROP_SIZE)",
        )
    lo, hi = inp.CROP_SCALE
    if not 0.0 < lo <= hi <= 1.0:
        _fail("INPUT.CLS.CROP_SCALE", inp.CROP_SCALE, "must satisfy 0 < min <= max <= 1")
    lo, hi = inp.CROP_RATIO
    if not 0.0 < lo <= hi:
        _fail("INPUT.CLS.CROP_RATIO", inp.CROP_RATIO, "must satisfy 0 < min <= max")
    if len(inp.COLOR_JITTER) not in (0, 3) or any(v < 0 for v in inp.COLOR_JITTER):
        _fail(
            "INPUT.CLS.COLOR_JITTER",
            inp.COLOR_JITTER,
            "must be [] or [brightness, contrast, saturation] >= 0",
        )
    _check_strong_augmentation(inp)


def _check_strong_augmentation(inp: CN) -> None:
    """INPUT.CLS.AUTO_AUGMENT and its keys, INPUT.CLS.RANDOM_ERASING."""
    from .data.strong_augment import AUTO_AUGMENT_POLICIES, INTERPOLATIONS

    _check_choices(
        ("INPUT.CLS.AUTO_AUGMENT", inp.AUTO_AUGMENT, AUTO_AUGMENT_POLICIES),
        ("INPUT.CLS.AUTO_AUGMENT_INTERP", inp.AUTO_AUGMENT_INTERP, INTERPOLATIONS),
    )
    if not (isinstance(inp.AUTO_AUGMENT_BINS, int) and inp.AUTO_AUGMENT_BINS >= 2):
        _fail("INPUT.CLS.AUTO_AUGMENT_BINS", inp.AUTO_AUGMENT_BINS, "must be an integer >= 2")
    if not (isinstance(inp.RA_NUM_OPS, int) and inp.RA_NUM_OPS >= 0):
        _fail("INPUT.CLS.RA_NUM_OPS", inp.RA_NUM_OPS, "must be an integer >= 0")
    if not (isinstance(inp.RA_MAGNITUDE, int) and 0 <= inp.RA_MAGNITUDE < inp.AUTO_AUGMENT_BINS):
        _fail(
            "INPUT.CLS.RA_MAGNITUDE",
            inp.RA_MAGNITUDE,
            f"must be an integer in [0, INPUT.CLS.AUTO_AUGMENT_BINS = {inp.AUTO_AUGMENT_BINS})",
        )
    if not 0.0 <= inp.RANDOM_ERASING <= 1.0:
        _fail("INPUT.CLS.RANDOM_ERASING", inp.RANDOM_ERASING, "must be in [0, 1]")


def _check_schedule(cfg: CN) -> None:
    """The epoch / iteration schedule, lr scaling, AMP."""
    solver = cfg.SOLVER
    _check_choices(("SOLVER.AMP.PRECISION", solver.AMP.PRECISION, AMP_PRECISIONS))
    if solver.EPOCHS < 0:
        _fail("SOLVER.EPOCHS", solver.EPOCHS, "must be >= 0")
    if solver.EPOCHS == 0 and solver.MAX_ITER <= 0:
        _fail("SOLVER.MAX_ITER", solver.MAX_ITER, "must be > 0 (or set SOLVER.EPOCHS)")
    if solver.EPOCHS > 0:
        if any(not 0 < e < solver.EPOCHS for e in solver.STEPS_EPOCHS):
            _fail(
                "SOLVER.STEPS_EPOCHS",
                solver.STEPS_EPOCHS,
                f"each must be in (0, SOLVER.EPOCHS={solver.EPOCHS})",
            )
        # apply_epoch_schedule derives MAX_ITER / STEPS from EPOCHS and overwrites them: an
        # iteration schedule set next to an epoch schedule would be silently ignored
        for key, value, default in (
            ("SOLVER.MAX_ITER", solver.MAX_ITER, D2_DEFAULT_MAX_ITER),
            ("SOLVER.STEPS", tuple(solver.STEPS), D2_DEFAULT_STEPS),
        ):
            if value != default:
                _fail(
                    key,
                    value if key == "SOLVER.MAX_ITER" else list(value),
                    f"conflicts with SOLVER.EPOCHS = {solver.EPOCHS} (an epoch schedule derives "
                    "SOLVER.MAX_ITER and SOLVER.STEPS and would overwrite it): set SOLVER.EPOCHS "
                    "0 to train MAX_ITER iterations (with SOLVER.STEPS), or leave "
                    "SOLVER.MAX_ITER / SOLVER.STEPS unset and use SOLVER.EPOCHS / "
                    "SOLVER.STEPS_EPOCHS",
                )
    if solver.LR_REFERENCE_BATCH > 0 and solver.REFERENCE_WORLD_SIZE > 0:
        # both scale BASE_LR (ours by the batch size, detectron2's auto_scale_workers by the
        # number of processes): together the lr would be scaled twice
        _fail(
            "SOLVER.LR_REFERENCE_BATCH",
            solver.LR_REFERENCE_BATCH,
            f"conflicts with SOLVER.REFERENCE_WORLD_SIZE = {solver.REFERENCE_WORLD_SIZE}: "
            "both scale SOLVER.BASE_LR; set one of them to 0",
        )


def _has_boxes(d: dict) -> bool:
    return bool(d.get("annotations"))


def check_training_dicts(cfg: CN, datasets: Dict[str, Sequence[dict]]) -> None:
    """What the config asks of the training data, checked on the loaded dicts
    (``{dataset name: dicts}``) before training; ``ValueError`` naming key and dataset:

    - ``INPUT.CLS.VARIANT mask``: every dict has ``target_object`` (the 'mask' set, one
      dict per object, e.g. ``imagenet_train_boxed_mask``);
    - ``INPUT.CLS.VARIANT context`` and a method that needs boxes (als, cutmix_als,
      mixup_cutmix with ``MODEL.ALS.MIX_TARGET als``): boxes
      (``annotations``) in every training dataset;
    - every ``label`` is an int in [0, ``MODEL.CLASSIFIER.NUM_CLASSES``);
    - a dataset whose metadata has ``num_classes`` (ImageNet, OpenImages: set when it is
      loaded) has exactly ``MODEL.CLASSIFIER.NUM_CLASSES`` classes (an OpenImages subset's
      count depends on the rules and the copy: the paper's 480 is not guaranteed).
    """
    from detectron2.data import MetadataCatalog

    from .modeling.targets import TARGET_REGISTRY, method_needs_boxes

    variant, method = cfg.INPUT.CLS.VARIANT, cfg.MODEL.ALS.METHOD
    needs = method in TARGET_REGISTRY and method_needs_boxes(method, cfg.MODEL.ALS.MIX_TARGET)
    num_classes = cfg.MODEL.CLASSIFIER.NUM_CLASSES
    for name, dicts in datasets.items():
        if variant == "none" and any("target_object" in d for d in dicts):
            _fail(
                "INPUT.CLS.VARIANT",
                variant,
                f"dataset {name!r} (DATASETS.TRAIN) is a 'mask' set (its dicts have "
                "'target_object', so the mapper paints the other objects): set "
                "INPUT.CLS.VARIANT mask (or context, the paper's 'context' rows), or train on a "
                "set without 'target_object'",
            )
        if variant == "mask":
            missing = sum(1 for d in dicts if "target_object" not in d)
            if missing:
                _fail(
                    "INPUT.CLS.VARIANT",
                    variant,
                    "needs training dicts with 'target_object' (one per annotated object, e.g. "
                    f"imagenet_train_boxed_mask), but {missing} of the {len(dicts)} dicts of "
                    f"dataset {name!r} have none",
                )
        needs_boxes = [
            k
            for k, v in (
                ("INPUT.CLS.VARIANT", variant == "context"),
                ("MODEL.ALS.METHOD", needs),
            )
            if v
        ]
        if needs_boxes and not any(_has_boxes(d) for d in dicts):
            key = needs_boxes[0]
            _fail(
                key,
                variant if key == "INPUT.CLS.VARIANT" else method,
                f"needs bounding boxes, but no dict of dataset {name!r} has 'annotations' "
                "(use a boxed set, e.g. imagenet_train_boxed)",
            )
        metadata = MetadataCatalog.get(name) if name in MetadataCatalog else {}
        known = metadata.get("num_classes", None)
        if known is not None and known != num_classes:
            _fail(
                "MODEL.CLASSIFIER.NUM_CLASSES",
                num_classes,
                f"dataset {name!r} has {known} classes (its metadata, from the files it was "
                f"loaded from): set MODEL.CLASSIFIER.NUM_CLASSES {known}",
            )
        bad = [
            d.get("label")
            for d in dicts
            if not isinstance(d.get("label"), int) or not 0 <= d["label"] < num_classes
        ]
        if bad:
            _fail(
                "MODEL.CLASSIFIER.NUM_CLASSES",
                num_classes,
                f"dataset {name!r} has {len(bad)} dict(s) whose 'label' is not in "
                f"[0, {num_classes}) (e.g. {bad[0]!r})",
            )


def metadata_num_classes(name: str, load: bool = True) -> Optional[int]:
    """The class count detectron2's metadata records for the registered dataset ``name``:
    ``num_classes``, else ``len(thing_classes)``; with ``load``, the dataset is loaded first
    when neither is set yet (the ImageNet / OpenImages readers set them when they load).
    None when unknown. The one place the project reads a dataset's class count."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    def recorded():
        meta = MetadataCatalog.get(name)
        count = getattr(meta, "num_classes", None)
        if count is None and getattr(meta, "thing_classes", None):
            count = len(meta.thing_classes)
        return None if count is None else int(count)

    count = recorded()
    if count is None and load:
        DatasetCatalog.get(name)
        count = recorded()
    return count


def dataset_num_classes(
    names: Sequence[str], datasets: Optional[Dict[str, Sequence[dict]]] = None
) -> int:
    """The class count of the registered datasets ``names`` (:func:`metadata_num_classes`;
    those in ``datasets`` are loaded already). ``ConfigError`` when they disagree or none is
    known."""
    counts = {}
    for name in names:
        known = metadata_num_classes(name, load=not (datasets and name in datasets))
        if known is not None:
            counts[name] = known
    if not counts:
        _fail(
            "MODEL.CLASSIFIER.NUM_CLASSES",
            0,
            f"the class count of {list(names)} is not recorded in their metadata: "
            "set it explicitly",
        )
    if len(set(counts.values())) > 1:
        _fail(
            "MODEL.CLASSIFIER.NUM_CLASSES",
            0,
            f"the training sets disagree on the class count: {counts}",
        )
    return next(iter(counts.values()))


def check_eval_num_classes(cfg: CN, dataset: str, dicts: Optional[Sequence[dict]] = None) -> int:
    """The class count of the evaluated ``dataset`` (its metadata's ``num_classes``, else
    ``len(thing_classes)``, else its max label + 1, a lower bound), checked against
    ``MODEL.CLASSIFIER.NUM_CLASSES``: ``ValueError`` naming the key and the dataset when the
    model's outputs cannot be the dataset's classes. Returns the count found."""
    from detectron2.data import DatasetCatalog

    num_classes = cfg.MODEL.CLASSIFIER.NUM_CLASSES
    count = metadata_num_classes(dataset, load=dicts is None)
    if count is not None:
        if int(count) != num_classes:
            _fail(
                "MODEL.CLASSIFIER.NUM_CLASSES",
                num_classes,
                f"the evaluated dataset {dataset!r} has {count} classes (its metadata): the "
                f"model would score {num_classes} classes; set MODEL.CLASSIFIER.NUM_CLASSES "
                f"{count} (and evaluate a checkpoint trained for {count} classes)",
            )
        return count
    if dicts is None:
        dicts = DatasetCatalog.get(dataset)
    labels = [d.get("label") for d in dicts if isinstance(d.get("label"), int)]
    top = max(labels) + 1 if labels else 0
    if top > num_classes:
        _fail(
            "MODEL.CLASSIFIER.NUM_CLASSES",
            num_classes,
            f"the evaluated dataset {dataset!r} has labels up to {top - 1} (at least {top} "
            "classes): set MODEL.CLASSIFIER.NUM_CLASSES to its class count",
        )
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


def _config_keys(node: CN, prefix: str = "") -> List[str]:
    """Every full key of ``node`` (``MODEL.ALS.BETA``, ...)."""
    keys = []
    for name, value in node.items():
        keys += _config_keys(value, f"{prefix}{name}.") if isinstance(value, CN) else []
        keys.append(prefix + name)
    return keys


def _unknown_key(cfg: CN, key: str, where: str) -> ConfigError:
    close = difflib.get_close_matches(key, _config_keys(cfg), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else "no key of that name exists"
    return ConfigError(f"config key {key} ({where}) does not exist; {hint}")


def merge_config(cfg: CN, config_file: str, opts: Sequence = ()) -> CN:
    """``cfg.merge_from_file(config_file)`` then ``cfg.merge_from_list(opts)`` (in place),
    with the user's mistakes as a one-line :class:`ConfigError`: no or a missing
    ``--config-file``, YAML that does not parse, an unknown key (naming the closest one),
    a value of the wrong type, an override without its value."""
    import yaml

    if not config_file:
        raise ConfigError("--config-file is missing: give the YAML config of the run")
    if "://" not in config_file and not os.path.isfile(config_file):  # URLs: PathManager's
        raise ConfigError(f"--config-file {config_file}: no such file")
    try:
        cfg.merge_from_file(config_file)
    except KeyError as e:
        key = str(e.args[0] if e.args else e).split(": ", 1)[-1].strip()
        raise _unknown_key(cfg, key, f"in {config_file} or a _BASE_ it names") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"--config-file {config_file}: {' '.join(str(e).split())}") from None
    except (OSError, ValueError, TypeError, AssertionError) as e:
        raise ConfigError(f"--config-file {config_file}: {e}") from None
    opts = list(opts)
    if len(opts) % 2:
        raise ConfigError(f"config override {opts[-1]} has no value: overrides are KEY VALUE pairs")
    keys = set(_config_keys(cfg))
    for key, value in zip(opts[0::2], opts[1::2]):
        known = key in keys or cfg.key_is_deprecated(key) or cfg.key_is_renamed(key)
        if not known:
            raise _unknown_key(cfg, key, "on the command line")
        try:
            cfg.merge_from_list([key, value])
        except (ValueError, TypeError, AssertionError, KeyError) as e:
            why = " ".join(str(e.args[0] if e.args else e).split())
            if key in keys:
                old = cfg
                for part in key.split("."):
                    old = old[part]
                why = f"expected a value of type {type(old).__name__} (now {old!r})"
            raise ConfigError(f"config key {key} = {value!r}: {why}") from None
    return cfg


def load_als_config(config_file: str, opts: Sequence = ()) -> CN:
    """detectron2's defaults + als-d2's keys + ``config_file`` + ``KEY VALUE`` overrides
    (:func:`merge_config`), frozen and checked (``check_als_config``, ``check_device``,
    ``check_datasets_registered``): what the tools start from."""
    from detectron2.config import get_cfg

    cfg = get_cfg()
    add_als_config(cfg)
    merge_config(cfg, config_file, opts)
    cfg.freeze()
    check_als_config(cfg)
    check_device(cfg)
    check_datasets_registered(cfg)
    return resolve_num_classes(cfg)
