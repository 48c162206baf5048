"""Distributed pieces in 2 CPU processes over gloo (spawned by the test itself): the
training sampler's sharding, the evaluator's gather, and DDP training in sync."""

import json
import os

import als_d2  # noqa: F401  (first: spawned workers unpickle detectron2 objects)
import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WORLD = 2


def _outputs(n=10, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    probs = torch.rand(n, k, generator=g).softmax(dim=1)
    labels = torch.randint(0, k, (n,), generator=g)
    return probs, labels


def _evaluate(indices, distributed):
    from als_d2.evaluation import ClassificationEvaluator

    probs, labels = _outputs()
    ev = ClassificationEvaluator("synthetic", distributed=distributed)
    ev.reset()
    for i in indices:
        ev.process([{"label": int(labels[i])}], [{"probs": probs[i]}])
    return ev.evaluate()


def _worker(rank, init_file, out_dir, dicts):
    import als_d2  # noqa: F401

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    from detectron2.data.samplers import InferenceSampler

    from als_d2.data.build import PositionedTrainingSampler

    out = {}
    it = iter(PositionedTrainingSampler(7, seed=5))
    out["stream"] = [next(it) for _ in range(10)]
    it = iter(PositionedTrainingSampler(7, seed=5, start=3))
    out["stream_from_3"] = [next(it) for _ in range(4)]
    indices = list(InferenceSampler(10))
    out["eval_indices"] = indices
    out["eval"] = _evaluate(indices, distributed=True)

    # DDP training of the classifier on CPU processes: weights stay identical across ranks.
    from tiny_data import register_dicts
    from test_train_cls import small_cfg

    from als_d2.engine import ClassificationTrainer

    register_dicts("tiny_ddp", dicts, 4)
    trainer = ClassificationTrainer(
        small_cfg("tiny_ddp", os.path.join(out_dir, "train"), "SOLVER.MAX_ITER", 3)
    )
    trainer.resume_or_load(resume=False)
    trainer.train()
    out["head"] = trainer.model.module.head.weight.detach().flatten()[:50].tolist()
    out["ddp"] = type(trainer.model).__name__
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(out, f)
    dist.barrier()  # no rank tears gloo down while its peer still talks to it (SIGABRT)
    dist.destroy_process_group()


def test_two_process_gloo_matches_single_process(tmp_path):
    from tiny_data import write_color_objects

    from als_d2.data.build import PositionedTrainingSampler

    dicts = write_color_objects(str(tmp_path / "data"))
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path), dicts), nprocs=WORLD, join=True)
    ranks = []
    for r in range(WORLD):
        with open(tmp_path / f"rank{r}.json") as f:
            ranks.append(json.load(f))

    # sampler: the ranks' streams interleave into the single-process stream, no overlap
    it = iter(PositionedTrainingSampler(7, seed=5))
    single = [next(it) for _ in range(10 * WORLD)]
    merged = sorted([tuple(x) for r in ranks for x in r["stream"]], key=lambda x: x[1])
    assert merged == [tuple(x) for x in single]
    # resuming at element 3 of each rank's stream continues exactly where it was
    for r in ranks:
        assert r["stream_from_3"] == r["stream"][3:7]

    # evaluator: the shards cover every sample once; the gathered result is the single-process one
    assert sorted(i for r in ranks for i in r["eval_indices"]) == list(range(10))
    assert ranks[0]["eval"] == json.loads(json.dumps(_evaluate(range(10), distributed=False)))
    assert ranks[1]["eval"] == {}

    # DDP: both ranks trained the same wrapped model
    assert ranks[0]["ddp"] == "DistributedDataParallel"
    np.testing.assert_array_equal(ranks[0]["head"], ranks[1]["head"])
