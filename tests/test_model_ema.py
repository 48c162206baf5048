"""MODEL_EMA (engine/ema.py): torchvision's decay adjustment and the EMA recursion by hand,
exact resume of raw and averaged weights, the average's metrics from training, --eval-only
and eval_cls --ema against an independent count."""

import os

import pytest
import torch
from detectron2.utils.env import seed_all_rng
from torch import nn

from als_d2.engine import ClassificationTrainer
from als_d2.engine.ema import ModelEMA, ema_decay, run_epochs

from test_train_cls import _StopAfter, small_cfg, tiny  # noqa: F401  (tiny: the fixture)
from tiny_data import assert_same_final_weights, counted_top1, load_tool

EMA = ("MODEL_EMA.ENABLED", True, "MODEL_EMA.DECAY", 0.9, "MODEL_EMA.STEPS", 2)
# the backbone cut at res3 (as tiny_train_cls_opts): seconds, not tens of seconds
EMA += ("MODEL.RESNETS.OUT_FEATURES", ["res3"], "MODEL.CLASSIFIER.IN_FEATURE", "res3")


def test_decay_is_torchvisions_adjustment():
    # torchvision's recipe: decay 0.99998, 8 GPUs x 128 images, update every 32 steps, 600 epochs
    adjust = 8 * 128 * 32 / 600
    assert ema_decay(0.99998, 1024, 32, 600) == pytest.approx(1 - 2e-5 * adjust, abs=1e-12)
    assert ema_decay(0.99998, 1024, 32, 600) == pytest.approx(0.998907733, abs=1e-9)
    assert ema_decay(0.9, 1024, 32, 600) == 0.0  # alpha capped at 1: the average is a copy
    assert ema_decay(1.0, 256, 1, 90) == 1.0


def test_run_epochs(tiny):  # noqa: F811
    cfg = small_cfg(tiny, "unused", "SOLVER.MAX_ITER", 30)
    assert run_epochs(cfg, 24) == pytest.approx(30 * 8 / 24)
    cfg.SOLVER.EPOCHS, cfg.SOLVER.MAX_ITER = 7, 40000
    assert run_epochs(cfg, 24) == 7.0


@pytest.mark.parametrize("warmup_reset", [True, False])
def test_average_is_the_recursion_by_hand(warmup_reset):
    """8 SGD steps on Linear + BatchNorm; updates after iterations 1, 3, 5, 7 (STEPS 2); the
    first update (and with WARMUP_RESET every update of the 3 warm-up iterations) copies, the
    others are d * avg + (1 - d) * w, for parameters and BN buffers alike (the integer batch
    counter truncated)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    d = 0.7
    hook = ModelEMA(model, decay=d, steps=2, warmup_iters=3, warmup_reset=warmup_reset)
    expected, n = None, 0
    for it in range(8):
        loss = model(torch.randn(5, 3) * (it + 1)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        hook.update(it)
        if (it + 1) % 2 == 0:
            w = {k: v.detach().double().clone() for k, v in model.state_dict().items()}
            if n == 0:
                expected = w
            else:
                expected = {k: d * expected[k] + (1 - d) * w[k] for k in w}
                expected["1.num_batches_tracked"] = expected["1.num_batches_tracked"].trunc()
            n = 0 if warmup_reset and it < 3 else n + 1
    got = hook.ema.module.state_dict()
    assert int(hook.ema.n_averaged) == n == (3 if warmup_reset else 4)
    for k, v in expected.items():
        torch.testing.assert_close(got[k].double(), v, rtol=0, atol=1e-6, msg=k)
    # the average differs from the last weights (it is not a copy)
    assert not torch.allclose(got["0.weight"], model.state_dict()["0.weight"])


def _ema_state(trainer):
    return {k: v.detach().clone() for k, v in trainer.model_ema.ema.state_dict().items()}


def test_resume_with_ema_is_exact(tiny, tmp_path):  # noqa: F811
    """Killed after iteration 5, resumed from the checkpoint of iteration 3: raw weights and
    the average (and its counter) equal the uninterrupted run's, bitwise."""
    opts = EMA + ("SOLVER.MAX_ITER", 8, "SOLVER.CHECKPOINT_PERIOD", 4, "SOLVER.WARMUP_ITERS", 2)
    opts += ("MODEL.ALS.METHOD", "mixup_cutmix", "MODEL.ALS.MIX_TARGET", "als")
    opts += ("DATASETS.TEST", ())  # no evaluation: the weights are compared
    seed_all_rng(3)
    full = ClassificationTrainer(small_cfg(tiny, str(tmp_path / "full"), *opts))
    full.resume_or_load(resume=False)
    full.train()

    cfg = small_cfg(tiny, str(tmp_path / "killed"), *opts)
    seed_all_rng(3)
    killed = ClassificationTrainer(cfg)
    killed.register_hooks([_StopAfter(5)])
    killed.resume_or_load(resume=False)
    with pytest.raises(RuntimeError, match="simulated kill"):
        killed.train()
    saved = torch.load(tmp_path / "killed" / "model_0000003.pth", weights_only=True)
    assert int(saved["model_ema"]["n_averaged"]) == 1  # updates after 1 (warm-up: reset), 3

    seed_all_rng(1234)
    resumed = ClassificationTrainer(cfg)
    resumed.resume_or_load(resume=True)
    assert resumed.start_iter == 4
    resumed.train()
    assert_same_final_weights(str(tmp_path / "full"), str(tmp_path / "killed"), 7)
    expected, got = _ema_state(full), _ema_state(resumed)
    assert int(got["n_averaged"]) == 3
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0, msg=key)
    final = torch.load(tmp_path / "killed" / "model_final.pth", weights_only=True)["model_ema"]
    for key in expected:
        torch.testing.assert_close(final[key], expected[key], rtol=0, atol=0, msg=key)
    # the average is not the raw model
    raw = resumed.model.state_dict()["head.weight"]
    assert not torch.equal(got["module.head.weight"], raw)


def _top1(model, cfg, dataset):
    """Top-1 (%) counted here (:func:`tiny_data.counted_top1`)."""
    return counted_top1(model, cfg, dataset)[0]


def test_ema_metrics_are_reported(tiny, tmp_path):  # noqa: F811
    """Training's evaluation, --eval-only and eval_cls --ema report the average's top-1,
    equal to a count over its predictions (and the raw model's as before)."""
    out = str(tmp_path / "run")
    cfg = small_cfg(tiny, out, *EMA, "SOLVER.MAX_ITER", 6, "SOLVER.BASE_LR", 0.2)
    trainer = ClassificationTrainer(cfg)
    trainer.resume_or_load(resume=False)
    results = trainer.train()
    ema_top1 = _top1(trainer.model_ema.ema.module, cfg, tiny)
    assert results["ema"]["classification"]["top1"] == pytest.approx(ema_top1)
    assert results["classification"]["top1"] == pytest.approx(_top1(trainer.model, cfg, tiny))
    logged = trainer.storage.latest()
    assert logged["ema/classification/top1"][0] == pytest.approx(ema_top1)
    assert os.path.isdir(os.path.join(out, "inference_ema", tiny))

    from als_d2.checkpoint import ClassifierCheckpointer
    from als_d2.engine.launch import evaluate_weights

    cfg.defrost()
    cfg.MODEL.WEIGHTS = os.path.join(out, "model_final.pth")
    cfg.OUTPUT_DIR = str(tmp_path / "eval_only")
    res = evaluate_weights(cfg, ClassificationTrainer, ClassifierCheckpointer)
    assert res["ema"]["classification"]["top1"] == pytest.approx(ema_top1)
    assert res["classification"] == pytest.approx(results["classification"], nan_ok=True)

    tool = load_tool("eval_cls")
    got = tool.evaluate_checkpoints(
        cfg, [cfg.MODEL.WEIGHTS], ["run"], [tiny], str(tmp_path / "eval"), ema=True
    )
    assert got[("run_ema", tiny)]["top1"] == pytest.approx(ema_top1)
    assert got[("run", tiny)]["top1"] == pytest.approx(results["classification"]["top1"])

    plain = str(tmp_path / "plain")  # a run without the average: --ema says so in one line
    cfg_plain = small_cfg(tiny, plain, *EMA[6:], "SOLVER.MAX_ITER", 1, "DATASETS.TEST", ())
    ClassificationTrainer(cfg_plain).train()
    with pytest.raises(SystemExit, match="has no model_ema"):
        tool.evaluate_checkpoints(
            cfg, [os.path.join(plain, "model_final.pth")], ["p"], [tiny], plain + "_e", ema=True
        )


def test_ema_config_keys_are_checked(tiny):  # noqa: F811
    from als_d2.config import check_als_config

    with pytest.raises(ValueError, match=r"MODEL_EMA\.DECAY"):
        check_als_config(small_cfg(tiny, "unused", "MODEL_EMA.DECAY", 1.5))
    with pytest.raises(ValueError, match=r"MODEL_EMA\.STEPS"):
        check_als_config(small_cfg(tiny, "unused", "MODEL_EMA.STEPS", 0))
