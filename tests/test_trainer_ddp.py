"""ClassificationTrainer in 2 CPU processes over gloo (spawned by the test itself): the ranks
train, checkpoint and evaluate with one set of BatchNorm statistics."""

import hashlib
import json
import math
import os

import als_d2  # noqa: F401  (first: spawned workers unpickle detectron2 objects)
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WORLD = 2
STAT = "als/mean_true_class_target"  # differs between the ranks' halves of a batch


def _bn_worker(rank, init_file, out_dir, dicts):
    import als_d2  # noqa: F401

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    from tiny_data import register_dicts, tiny_cls_cfg

    from als_d2.checkpoint import ClassifierCheckpointer
    from als_d2.engine import ClassificationTrainer

    register_dicts("tiny_ddp_bn", dicts, 4)
    cfg = tiny_cls_cfg(
        "tiny_ddp_bn",
        os.path.join(out_dir, "train"),
        "SOLVER.MAX_ITER", 4,
        "SOLVER.STEPS", (),
        "SOLVER.CHECKPOINT_PERIOD", 1000,
        "MODEL.RESNETS.NORM", "BN",
        "LOG_PERIOD", 1,
        "MODEL.ALS.METHOD", "als",
        "MODEL_EMA.ENABLED", True,
        "MODEL_EMA.STEPS", 1,
    )  # fmt: skip
    trainer = ClassificationTrainer(cfg)
    trainer.resume_or_load(resume=False)
    during = trainer.train()  # the evaluation after the last iteration (rank 0; {} elsewhere)
    buffers = {
        k: v.flatten().tolist()
        for k, v in trainer.model.module.state_dict().items()
        if "running_" in k
    }
    # the saved checkpoint, evaluated by a fresh model on both ranks
    model = ClassificationTrainer.build_model(cfg)
    ClassifierCheckpointer(model).load(os.path.join(cfg.OUTPUT_DIR, "model_final.pth"))
    saved = ClassificationTrainer.test(cfg, model)
    # the moving average: its checkpoint entry evaluated by a fresh model on both ranks
    from als_d2.checkpoint.file_io import safe_torch_load
    from als_d2.engine.ema import EMA_CHECKPOINT_KEY, load_ema_weights

    ema_model = ClassificationTrainer.build_model(cfg)
    checkpoint = safe_torch_load(os.path.join(cfg.OUTPUT_DIR, "model_final.pth"))
    load_ema_weights(ema_model, checkpoint[EMA_CHECKPOINT_KEY])
    saved_ema = ClassificationTrainer.test_ema(cfg, ema_model)
    # a digest per tensor of the average (bitwise equality across ranks, no 11M floats in JSON)
    ema = {
        k: hashlib.sha256(v.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
        for k, v in trainer.model_ema.ema.module.state_dict().items()
    }
    # what this rank's model put for its own part of the batch (first value of each iteration)
    own = {}
    for value, iteration in trainer.storage.history(STAT).values():
        own.setdefault(int(iteration), value)
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(
            {
                "buffers": buffers,
                "during": during,
                "saved": saved,
                "saved_ema": saved_ema,
                "ema": ema,
                "own": own,
            },
            f,
        )
    dist.barrier()  # no rank tears gloo down while its peer still talks to it (SIGABRT)
    dist.destroy_process_group()


def _assert_same_results(results, expected):
    """Equal evaluation results (NaN where a metric is undefined, e.g. a constant input)."""
    assert results and results.keys() == expected.keys()
    for task in results:
        for name, value in results[task].items():
            other = expected[task][name]
            both_nan = math.isnan(value) and math.isnan(other)
            assert both_nan or math.isclose(value, other, rel_tol=1e-6, abs_tol=1e-9), name


def test_ranks_share_batchnorm_statistics_and_evaluate_the_checkpoint(tmp_path):
    from tiny_data import write_color_objects

    dicts = write_color_objects(str(tmp_path / "data"))
    mp.spawn(
        _bn_worker, args=(str(tmp_path / "init"), str(tmp_path), dicts), nprocs=WORLD, join=True
    )
    ranks = []
    for r in range(WORLD):
        with open(tmp_path / f"rank{r}.json") as f:
            ranks.append(json.load(f))
    buffers = [r["buffers"] for r in ranks]
    assert buffers[0] and buffers[0].keys() == buffers[1].keys()
    # each rank saw other samples: without the broadcast its running statistics would differ
    for key in buffers[0]:
        assert buffers[0][key] == buffers[1][key], key
    during, saved = ranks[0]["during"], ranks[0]["saved"]
    # the EMA (MODEL_EMA, every step): one average on both ranks (rank 0's BN buffers), and
    # its evaluation during training is that of the checkpoint's "model_ema" entry
    emas = [r["ema"] for r in ranks]
    assert emas[0] and emas[0].keys() == emas[1].keys()
    for key in emas[0]:
        assert emas[0][key] == emas[1][key], key
    assert during.keys() >= {"ema"}
    during_ema = during.pop("ema")
    _assert_same_results(during, saved)
    _assert_same_results(during_ema, ranks[0]["saved_ema"])

    # als/* in metrics.json describe the whole batch: the mean of the ranks' halves
    with open(tmp_path / "train" / "metrics.json") as f:
        logged = {r["iteration"]: r[STAT] for r in map(json.loads, f) if STAT in r}
    own = [{int(k): v for k, v in r["own"].items()} for r in ranks]
    assert logged.keys() == own[0].keys() == own[1].keys() == set(range(4))
    for i in logged:
        assert math.isclose(logged[i], (own[0][i] + own[1][i]) / 2, rel_tol=1e-6), i
    assert any(not math.isclose(own[0][i], own[1][i], rel_tol=1e-3) for i in logged)
