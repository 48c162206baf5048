"""The paper's epoch schedule turned into detectron2 iterations, and linear lr scaling."""

import json
import os

import pytest

from als_d2.config import ConfigError, check_als_config
from als_d2.engine import apply_epoch_schedule

from tiny_data import DEMO_R18, als_cfg, register_tiny


def r50_cfg(*opts):
    """configs/als_r50.yaml with ``KEY VALUE`` overrides."""
    return als_cfg("configs/als_r50.yaml", *opts)


@pytest.mark.parametrize("size", [474_000, 528_000])  # the paper's boxed and 'mask' sets (approx.)
def test_paper_schedule_in_iterations(size):
    cfg = apply_epoch_schedule(r50_cfg(), size)
    per_epoch = size / 256
    assert cfg.SOLVER.MAX_ITER == round(300 * per_epoch)
    assert list(cfg.SOLVER.STEPS) == [
        round(75 * per_epoch),
        round(150 * per_epoch),
        round(225 * per_epoch),
    ]
    assert cfg.SOLVER.BASE_LR == pytest.approx(0.1)
    assert cfg.SOLVER.CHECKPOINT_PERIOD == round(5 * per_epoch)
    assert cfg.TEST.EVAL_PERIOD == round(25 * per_epoch)


def test_linear_lr_scaling_and_batch():
    cfg = apply_epoch_schedule(r50_cfg("SOLVER.IMS_PER_BATCH", 1024), 1_000_000)
    assert cfg.SOLVER.BASE_LR == pytest.approx(0.4)
    assert cfg.SOLVER.MAX_ITER == round(300 * 1_000_000 / 1024)
    # applying twice does not scale twice
    again = apply_epoch_schedule(cfg, 1_000_000)
    assert (
        again.SOLVER.BASE_LR == pytest.approx(0.4) and again.SOLVER.MAX_ITER == cfg.SOLVER.MAX_ITER
    )


def test_iteration_schedule_left_alone_without_epochs():
    cfg = apply_epoch_schedule(
        r50_cfg("SOLVER.EPOCHS", 0, "SOLVER.MAX_ITER", 123, "SOLVER.LR_REFERENCE_BATCH", 0), 10
    )
    assert cfg.SOLVER.MAX_ITER == 123 and cfg.SOLVER.BASE_LR == pytest.approx(0.1)


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("MODEL.ALS.BETA", 1.5, "MODEL.ALS.BETA"),
        ("MODEL.ALS.METHOD", "focal", "MODEL.ALS.METHOD"),
        ("INPUT.CLS.CONTEXT_PROB", 1.0, "INPUT.CLS.CONTEXT_PROB"),
        ("SOLVER.STEPS_EPOCHS", (75, 400), "SOLVER.STEPS_EPOCHS"),
        ("SOLVER.AMP.PRECISION", "fp8", "SOLVER.AMP.PRECISION"),
    ],
)
def test_bad_values_name_the_key(key, value, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        check_als_config(r50_cfg(key, value))


@pytest.mark.parametrize(
    "config",
    ["configs/als_r50.yaml", "configs/demo/Base-Demo-R18.yaml"],
)
@pytest.mark.parametrize(
    "key,value",
    [("SOLVER.MAX_ITER", 30), ("SOLVER.STEPS", (20,)), ("SOLVER.STEPS", ())],
)
def test_iteration_schedule_next_to_epochs_is_an_error(config, key, value):
    """EPOCHS > 0 derives MAX_ITER / STEPS and would overwrite them: a MAX_ITER or STEPS
    set away from detectron2's default next to it stops, naming both keys and the fix."""
    cfg = als_cfg(config)
    assert cfg.SOLVER.EPOCHS > 0
    check_als_config(cfg)  # the config as shipped is fine
    cfg.merge_from_list([key, value])
    with pytest.raises(ValueError) as info:
        check_als_config(cfg)
    message = str(info.value)
    assert f"config key {key} = " in message and "SOLVER.EPOCHS" in message
    assert "set SOLVER.EPOCHS 0 to train MAX_ITER iterations" in message
    cfg.merge_from_list(["SOLVER.EPOCHS", 0, "SOLVER.MAX_ITER", 30])
    check_als_config(cfg)  # an iteration schedule with EPOCHS 0 is fine


@pytest.mark.parametrize(
    "config",
    [
        "configs/openimages/als_r50.yaml",
        "configs/demo/als_r18.yaml",
        "configs/als_r50.yaml",
        "configs/hard_r101.yaml",
    ],
)
def test_shipped_configs_pass_the_schedule_check(config):
    cfg = als_cfg(config)
    check_als_config(cfg)


def test_two_lr_scalings_together_are_an_error():
    """SOLVER.REFERENCE_WORLD_SIZE (detectron2's auto_scale_workers) and LR_REFERENCE_BATCH
    both scale BASE_LR: each alone does it once, together the lr would be scaled twice."""
    from detectron2.engine import DefaultTrainer

    by_workers = DefaultTrainer.auto_scale_workers(
        r50_cfg("SOLVER.REFERENCE_WORLD_SIZE", 1, "SOLVER.LR_REFERENCE_BATCH", 0), 2
    )
    by_batch = apply_epoch_schedule(r50_cfg("SOLVER.IMS_PER_BATCH", 512), 1000)
    assert by_workers.SOLVER.BASE_LR == pytest.approx(0.2) == by_batch.SOLVER.BASE_LR
    both = r50_cfg("SOLVER.REFERENCE_WORLD_SIZE", 1)
    assert both.SOLVER.LR_REFERENCE_BATCH == 256  # the shipped configs' linear scaling
    with pytest.raises(ValueError) as info:
        check_als_config(both)
    message = str(info.value)
    assert "SOLVER.LR_REFERENCE_BATCH" in message and "SOLVER.REFERENCE_WORLD_SIZE" in message
    check_als_config(r50_cfg("SOLVER.REFERENCE_WORLD_SIZE", 1, "SOLVER.LR_REFERENCE_BATCH", 0))
    check_als_config(r50_cfg())


def _lr_rows(output_dir):
    with open(os.path.join(output_dir, "metrics.json")) as f:
        rows = [json.loads(line) for line in f]
    return {r["iteration"]: r["lr"] for r in rows if "lr" in r}


def test_iteration_schedule_follows_the_set_steps(tmp_path):
    # SOLVER.EPOCHS 0 as the demo configs advise, WARMUP_ITERS as the configs set it
    from als_d2.engine import ClassificationTrainer

    name = register_tiny(str(tmp_path / "data"))
    cfg = als_cfg(
        DEMO_R18,
        "DATASETS.TRAIN", (name,),
        "DATASETS.TEST", (),
        "OUTPUT_DIR", str(tmp_path / "run"),
        "MODEL.CLASSIFIER.NUM_CLASSES", 4,
        "INPUT.CLS.CROP_SIZE", 32,
        "SOLVER.EPOCHS", 0,
        "SOLVER.MAX_ITER", 6,
        "SOLVER.STEPS", (2, 4),
        "SOLVER.IMS_PER_BATCH", 4,
        "SOLVER.BASE_LR", 0.05,
        "SOLVER.LR_REFERENCE_BATCH", 0,
        "SOLVER.CHECKPOINT_PERIOD_EPOCHS", 0.0,
        "SOLVER.CHECKPOINT_PERIOD", 1000,
        "TEST.EVAL_PERIOD", 0,
        "LOG_PERIOD", 1,
    )  # fmt: skip
    trainer = ClassificationTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    logged = _lr_rows(cfg.OUTPUT_DIR)
    # the lr of iteration i: BASE_LR x GAMMA ** (steps reached), no warm-up
    expected = {i: 0.05 * 0.1 ** sum(s <= i for s in (2, 4)) for i in range(6)}
    assert logged.keys() == expected.keys()
    for i in expected:
        assert logged[i] == pytest.approx(expected[i], rel=1e-9), (i, logged)


def test_warmup_of_the_whole_run_is_an_error():
    opts = ("SOLVER.EPOCHS", 0, "SOLVER.MAX_ITER", 100, "SOLVER.LR_REFERENCE_BATCH", 0)
    assert apply_epoch_schedule(r50_cfg(*opts, "SOLVER.WARMUP_ITERS", 99), 10_240)
    with pytest.raises(ConfigError, match=r"WARMUP_ITERS = 100: not below SOLVER\.MAX_ITER"):
        apply_epoch_schedule(r50_cfg(*opts, "SOLVER.WARMUP_ITERS", 100), 10_240)
