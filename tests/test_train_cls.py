"""ClassificationTrainer end to end on CPU: every method learns, resume is exact, eval works."""

import json
import multiprocessing
import os
import shutil

import pytest
import torch
from detectron2.engine import HookBase
from detectron2.utils.env import seed_all_rng
from detectron2.utils.events import EventStorage

from als_d2.engine import ClassificationTrainer

from tiny_data import assert_same_final_weights, counted_top1, register_tiny, tiny_cls_cfg


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return register_tiny(str(tmp_path_factory.mktemp("tiny")))


def small_cfg(dataset: str, output_dir: str, *opts):
    """:func:`tiny_cls_cfg` for 30 iterations without lr steps or periodic checkpoints."""
    return tiny_cls_cfg(
        dataset,
        output_dir,
        "SOLVER.MAX_ITER", 30,
        "SOLVER.STEPS", (),
        "SOLVER.CHECKPOINT_PERIOD", 1000,
        *opts,
    )  # fmt: skip


def losses_from(output_dir):
    with open(os.path.join(output_dir, "metrics.json")) as f:
        rows = [json.loads(line) for line in f]
    return [r["total_loss"] for r in rows if "total_loss" in r]


def fixed_batch_loss(trainer, batch) -> float:
    """Training loss of one fixed batch (same seed for the batch-level mixing draws)."""
    model = trainer.model
    model.train()
    torch.manual_seed(0)
    with EventStorage(), torch.no_grad():
        return model(batch)["loss_cls"].item()


@pytest.mark.parametrize("method", ["hard", "ls", "als", "cutmix", "mixup", "cutmix_als"])
def test_training_lowers_the_loss(tiny, tmp_path, method):
    # an easy, stable setting: larger crops, no colour jitter (the classes are colours)
    cfg = small_cfg(
        tiny,
        str(tmp_path),
        "MODEL.ALS.METHOD",
        method,
        "SOLVER.MAX_ITER",
        20,
        "SOLVER.BASE_LR",
        0.01,
        "SOLVER.IMS_PER_BATCH",
        16,
        "INPUT.CLS.CROP_SCALE",
        (0.35, 1.0),
        "INPUT.CLS.COLOR_JITTER",
        [],
        "INPUT.CLS.LIGHTING_STD",
        0.0,
    )
    trainer = ClassificationTrainer(cfg)
    trainer.resume_or_load(resume=False)
    batch = next(iter(trainer.build_train_loader(cfg, seed=99)))
    before = fixed_batch_loss(trainer, batch)
    trainer.train()
    after = fixed_batch_loss(trainer, batch)
    assert after < before, (before, after)
    losses = losses_from(str(tmp_path))  # d2's JSONWriter: every 20 iterations, window medians
    assert losses and all(l == l for l in losses)
    assert os.path.exists(os.path.join(str(tmp_path), "model_final.pth"))


class _StopAfter(HookBase):
    def __init__(self, iteration):
        self.iteration = iteration

    def after_step(self):
        if self.trainer.iter == self.iteration:
            raise RuntimeError("simulated kill")


def _final_state(trainer):
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_matches_uninterrupted_run(tiny, tmp_path, workers):
    opts = (
        "MODEL.ALS.METHOD",
        "als",
        "INPUT.CLS.VARIANT",
        "context",
        "INPUT.CLS.CONTEXT_PROB",
        0.3,
        "SOLVER.MAX_ITER",
        8,
        "SOLVER.CHECKPOINT_PERIOD",
        4,
        "SOLVER.STEPS",
        (6,),
        "DATALOADER.NUM_WORKERS",
        workers,
    )
    seed_all_rng(3)  # what default_setup does with cfg.SEED: the same initial weights in both runs
    full = ClassificationTrainer(small_cfg(tiny, str(tmp_path / "full"), *opts))
    full.resume_or_load(resume=False)
    full.train()

    cfg = small_cfg(tiny, str(tmp_path / "killed"), *opts)
    seed_all_rng(3)
    children = set(multiprocessing.active_children())
    killed = ClassificationTrainer(cfg)
    killed.register_hooks([_StopAfter(5)])  # dies after iteration 5; last checkpoint: iteration 3
    killed.resume_or_load(resume=False)
    with pytest.raises(RuntimeError, match="simulated kill"):
        killed.train()
    assert os.path.exists(tmp_path / "killed" / "model_0000003.pth")
    # the killed run's loader workers have ended with it, the trainer still referenced
    assert set(multiprocessing.active_children()) <= children

    seed_all_rng(
        1234
    )  # the resumed run's initial weights don't matter: the checkpoint replaces them
    resumed = ClassificationTrainer(cfg)
    resumed.resume_or_load(resume=True)
    assert resumed.start_iter == 4
    resumed.train()

    expected, got = _final_state(full), _final_state(resumed)
    assert expected.keys() == got.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0, msg=key)
    assert (
        resumed.optimizer.state_dict()["param_groups"][0]["lr"]
        == full.optimizer.state_dict()["param_groups"][0]["lr"]
    )


def test_resume_with_random_seed_matches_uninterrupted_run(tiny, tmp_path):
    # SEED -1 (every full-scale config): the run draws its data seed; a resume from the run's
    # own checkpoint must continue with that seed, not draw another
    opts = (
        "SEED", -1,
        "MODEL.ALS.METHOD", "cutmix_als",
        "SOLVER.MAX_ITER", 6,
        "SOLVER.CHECKPOINT_PERIOD", 3,
    )  # fmt: skip
    seed_all_rng(5)
    full = ClassificationTrainer(small_cfg(tiny, str(tmp_path / "full"), *opts))
    full.resume_or_load(resume=False)
    full.train()

    resumed_dir = tmp_path / "resumed"  # the run's checkpoint of iteration 2, in a new folder
    resumed_dir.mkdir()
    shutil.copy(tmp_path / "full" / "model_0000002.pth", resumed_dir)
    (resumed_dir / "last_checkpoint").write_text("model_0000002.pth")
    seed_all_rng(1234)  # another draw for SEED -1 than the first run's
    resumed = ClassificationTrainer(small_cfg(tiny, str(resumed_dir), *opts))
    assert resumed.data_seed != full.data_seed
    resumed.resume_or_load(resume=True)
    assert resumed.start_iter == 3
    resumed.train()
    assert_same_final_weights(str(tmp_path / "full"), str(resumed_dir), 5)


def test_eval_only_from_checkpoint(tiny, tmp_path):
    cfg = small_cfg(tiny, str(tmp_path), "SOLVER.MAX_ITER", 5)
    trainer = ClassificationTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    cfg.defrost()
    cfg.MODEL.WEIGHTS = os.path.join(str(tmp_path), "model_final.pth")
    model = ClassificationTrainer.build_model(cfg)
    from detectron2.checkpoint import DetectionCheckpointer

    DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    results = ClassificationTrainer.test(cfg, model)
    # an independent count: run the model on every val sample and compare argmax to the label
    counted, total = counted_top1(model, cfg, tiny)
    assert total == 24
    assert results["classification"]["top1"] == pytest.approx(counted)


def test_bf16_autocast_and_channels_last(tiny, tmp_path):
    cfg = small_cfg(
        tiny,
        str(tmp_path),
        "SOLVER.MAX_ITER",
        4,
        "SOLVER.AMP.ENABLED",
        True,
        "SOLVER.AMP.PRECISION",
        "bf16",
        "MODEL.CHANNELS_LAST",
        True,
        "TEST.EVAL_PERIOD",
        0,
    )
    trainer = ClassificationTrainer(cfg)
    assert trainer._trainer.amp_dtype == torch.bfloat16 and trainer._trainer.grad_scaler is None
    trainer.resume_or_load(resume=False)
    w0 = trainer.model.head.weight.detach().clone()
    trainer.train()
    assert trainer.model.backbone.stem.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.isfinite(trainer.model.head.weight).all() and not torch.equal(
        w0, trainer.model.head.weight
    )
    assert all(l == l for l in losses_from(str(tmp_path)))


def test_lr_scaling_once(tiny, tmp_path):
    """LR_REFERENCE_BATCH scales BASE_LR linearly with IMS_PER_BATCH, in the config and the
    optimizer; next to detectron2's REFERENCE_WORLD_SIZE (which scales it too) it stops."""
    scaled = ("SOLVER.LR_REFERENCE_BATCH", 4)  # BASE_LR 0.05 at batch 4; IMS_PER_BATCH is 8
    trainer = ClassificationTrainer(small_cfg(tiny, str(tmp_path / "a"), *scaled))
    assert trainer.cfg.SOLVER.BASE_LR == pytest.approx(0.1)
    assert all(g["lr"] == pytest.approx(0.1) for g in trainer.optimizer.param_groups)
    both = small_cfg(tiny, str(tmp_path / "b"), *scaled, "SOLVER.REFERENCE_WORLD_SIZE", 1)
    with pytest.raises(ValueError) as info:
        ClassificationTrainer(both)
    message = str(info.value)
    assert "SOLVER.LR_REFERENCE_BATCH" in message and "SOLVER.REFERENCE_WORLD_SIZE" in message
