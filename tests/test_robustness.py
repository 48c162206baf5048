"""Bad input of every kind stops early with a message naming its source, or is skipped and
counted: config values, devices and process counts, data that does not fit the config,
skipped training samples, weight files that would run code, crashes during a save,
paths that leave the dataset root, duplicates."""

import json
import multiprocessing as mp
import gzip
import os
import pickle
import re
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from detectron2.structures import BoxMode

from als_d2 import compat
from als_d2.checkpoint import ClassifierCheckpointer, TransferCheckpointer
from als_d2.checkpoint.detection import SafeCheckpointer
from als_d2.checkpoint.file_io import UnsafeWeightsError, WeightsFileError
from als_d2.config import check_als_config, check_device, check_training_dicts
from als_d2.data.build import (
    SKIPPED_KEY,
    SeededMapDataset,
    build_cls_test_loader,
    build_cls_train_loader,
)
from als_d2.data.datasets.loc_files import read_loc_solution_csv
from als_d2.data.mapper import ClassificationDatasetMapper
from als_d2.engine import ClassificationTrainer

from forked_tools import run_tool
import ilsvrc_fixtures as fx
from test_train_cls import small_cfg
from tiny_data import DEMO_R18, als_cfg, load_tool, register_dicts, register_tiny
from tiny_data import write_color_objects

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return register_tiny(str(tmp_path_factory.mktemp("tiny")))


def cls_cfg(*opts):
    """The demo R18 config with ``KEY VALUE`` overrides."""
    return als_cfg(DEMO_R18, *opts)


# ---------------------------------------------------------------------------------------
# Config: out-of-range and conflicting values stop before training, naming the key


@pytest.mark.parametrize(
    "key,value",
    [
        ("MODEL.ALS.BETA", -0.1),
        ("MODEL.ALS.BETA", 1.5),
        ("INPUT.CLS.CONTEXT_PROB", 1.0),
        ("INPUT.CLS.CONTEXT_PROB", -0.2),
        ("MODEL.ALS.METHOD", "focal"),
        ("MODEL.ALS.LS_STYLE", "keras"),
        ("MODEL.ALS.UNBOXED_TARGET", "soft"),
        ("MODEL.ALS.LS_ALPHA", 1.5),
        ("MODEL.ALS.MIX_ALPHA", 0.0),
        ("MODEL.ALS.MIX_PROB", 2.0),
        ("INPUT.CLS.VARIANT", "masked"),
        ("INPUT.CLS.CROP_SIZE", 0),
        ("INPUT.CLS.TEST_RESIZE", 10),
        ("INPUT.CLS.CROP_SCALE", (0.5, 0.1)),
        ("INPUT.CLS.CROP_RATIO", (0.0, 1.0)),
        ("INPUT.CLS.HFLIP_PROB", 1.5),
        ("INPUT.CLS.COLOR_JITTER", (0.4, 0.4)),
        ("INPUT.CLS.LIGHTING_STD", -1.0),
        ("INPUT.FORMAT", "YUV"),
        ("MODEL.CLASSIFIER.NUM_CLASSES", 1),
        ("MODEL.CLASSIFIER.IN_FEATURE", "res4"),
        ("SOLVER.AMP.PRECISION", "fp8"),
        ("SOLVER.EPOCHS", -1),
        ("SOLVER.STEPS_EPOCHS", (10, 40)),
        ("SOLVER.IMS_PER_BATCH", 0),
        ("SOLVER.BASE_LR", 0.0),
        ("SOLVER.WARMUP_EPOCHS", -1.0),
        ("SOLVER.CHECKPOINT_PERIOD_EPOCHS", -1.0),
        ("TEST.IMS_PER_BATCH", 0),
        ("TEST.EVAL_PERIOD", -5),
        ("DATALOADER.NUM_WORKERS", -1),
    ],
)
def test_bad_config_values_name_the_key(key, value):
    cfg = cls_cfg(key, value)
    with pytest.raises(ValueError, match=f"config key {key.replace('.', '[.]')} = "):
        check_als_config(cfg)


def test_iteration_keys_checked_when_the_schedule_is_in_iterations():
    with pytest.raises(ValueError, match=r"SOLVER\.MAX_ITER"):
        check_als_config(cls_cfg("SOLVER.EPOCHS", 0, "SOLVER.MAX_ITER", 0))
    with pytest.raises(ValueError, match=r"SOLVER\.CHECKPOINT_PERIOD = 0"):
        check_als_config(
            cls_cfg("SOLVER.CHECKPOINT_PERIOD_EPOCHS", 0.0, "SOLVER.CHECKPOINT_PERIOD", 0)
        )
    check_als_config(cls_cfg())  # the demo config itself is fine


def test_cuda_device_without_cuda_names_model_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    for name in ("cuda", "cuda:0"):
        with pytest.raises(
            ValueError, match=r"config key MODEL\.DEVICE = '%s': CUDA is not available" % name
        ):
            check_device(cls_cfg("MODEL.DEVICE", name))
    with pytest.raises(ValueError, match=r"MODEL\.DEVICE = 'gpu': not a torch device"):
        check_device(cls_cfg("MODEL.DEVICE", "gpu"))
    check_device(cls_cfg("MODEL.DEVICE", "cpu"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"MODEL\.DEVICE = 'cuda:3': only 1 CUDA device"):
        check_device(cls_cfg("MODEL.DEVICE", "cuda:3"))


def test_tools_and_trainer_check_the_device_first(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"MODEL\.DEVICE"):
        ClassificationTrainer(small_cfg(tiny, str(tmp_path), "MODEL.DEVICE", "cuda"))
    for name in ("train_cls", "train_det"):
        tool = load_tool(name)
        config = (
            "configs/demo/Base-Demo-R18.yaml"
            if name == "train_cls"
            else "configs/COCO-Detection/demo/faster_rcnn_R18_C4_cpu.yaml"
        )
        args = SimpleNamespace(
            config_file=os.path.join(REPO, config),
            opts=["MODEL.DEVICE", "cuda", "OUTPUT_DIR", str(tmp_path)],
        )
        with pytest.raises(ValueError, match=r"MODEL\.DEVICE = 'cuda'"):
            tool.setup(args)
        assert not os.path.exists(
            tmp_path / "config.yaml"
        )  # stopped before default_setup wrote anything


def test_num_gpus_above_the_visible_devices_stops_the_tools(monkeypatch):
    from als_d2.engine.launch import check_processes

    for name in (
        "train_cls",
        "train_det",
        "eval_cls",
    ):  # every launching tool goes through the check
        assert (
            "launch_from_args(main, args)" in open(os.path.join(REPO, "tools", f"{name}.py")).read()
        )
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(SystemExit, match="--num-gpus 4"):
        check_processes(4)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(compat, "launch_supports_cpu_workers", lambda: False)
    with pytest.raises(SystemExit, match="--num-gpus 2"):
        check_processes(2)
    check_processes(1)
    monkeypatch.setattr(compat, "launch_supports_cpu_workers", lambda: True)
    check_processes(2)  # detectron2 main: CPU processes over gloo


# ---------------------------------------------------------------------------------------
# Data that does not fit the config: checked from the loaded dicts at trainer start


def _dicts(n=4, boxes=True, target=False, label=0):
    out = []
    for i in range(n):
        d = {
            "file_name": f"x{i}.png",
            "image_id": f"x{i}",
            "label": label,
            "height": 10,
            "width": 10,
            "annotations": [
                {"bbox": [1, 1, 5, 5], "bbox_mode": BoxMode.XYXY_ABS, "category_id": label}
            ]
            if boxes
            else [],
        }
        if target:
            d["target_object"] = 0
        out.append(d)
    return out


def test_variant_and_method_need_the_right_dicts():
    cfg = cls_cfg("MODEL.CLASSIFIER.NUM_CLASSES", 4)
    check_training_dicts(cfg, {"plain": _dicts()})
    cfg.merge_from_list(["INPUT.CLS.VARIANT", "mask"])
    with pytest.raises(
        ValueError,
        match=r"INPUT\.CLS\.VARIANT = 'mask'.*target_object.*4 of the 4 dicts of dataset 'plain'",
    ):
        check_training_dicts(cfg, {"plain": _dicts()})
    check_training_dicts(cfg, {"mask_set": _dicts(target=True)})
    # a 'mask' set paints whatever the variant says: VARIANT none on it is refused, naming both keys
    cfg = cls_cfg("MODEL.CLASSIFIER.NUM_CLASSES", 4)
    with pytest.raises(
        ValueError, match=r"INPUT\.CLS\.VARIANT = 'none'.*'mask_set' \(DATASETS\.TRAIN\)"
    ):
        check_training_dicts(cfg, {"mask_set": _dicts(target=True)})
    cfg = cls_cfg("MODEL.CLASSIFIER.NUM_CLASSES", 4, "INPUT.CLS.VARIANT", "context")
    check_training_dicts(cfg, {"mask_set": _dicts(target=True)})  # the paper's 'context' rows
    with pytest.raises(
        ValueError, match=r"INPUT\.CLS\.VARIANT = 'context': needs bounding boxes.*'unboxed'"
    ):
        check_training_dicts(cfg, {"boxed": _dicts(), "unboxed": _dicts(boxes=False)})
    cfg = cls_cfg("MODEL.CLASSIFIER.NUM_CLASSES", 4, "MODEL.ALS.METHOD", "als")
    with pytest.raises(ValueError, match=r"MODEL\.ALS\.METHOD = 'als': needs bounding boxes"):
        check_training_dicts(cfg, {"unboxed": _dicts(boxes=False)})
    cfg = cls_cfg("MODEL.CLASSIFIER.NUM_CLASSES", 4)
    with pytest.raises(
        ValueError, match=r"MODEL\.CLASSIFIER\.NUM_CLASSES = 4: dataset 'big'.*e\.g\. 7"
    ):
        check_training_dicts(cfg, {"big": _dicts(label=7)})


def test_num_classes_zero_is_the_training_sets_count():
    from detectron2.data import MetadataCatalog

    from als_d2.config import resolve_num_classes

    MetadataCatalog.get("robustness_seven_classes").set(num_classes=7)
    MetadataCatalog.get("robustness_six_classes").set(thing_classes=[str(i) for i in range(6)])
    cfg = cls_cfg(
        "MODEL.CLASSIFIER.NUM_CLASSES", 0, "DATASETS.TRAIN", ("robustness_seven_classes",)
    )
    check_als_config(cfg)  # 0 is allowed: resolved from the data
    assert resolve_num_classes(cfg).MODEL.CLASSIFIER.NUM_CLASSES == 7
    cfg.merge_from_list(["DATASETS.TRAIN", ("robustness_seven_classes", "robustness_six_classes")])
    with pytest.raises(ValueError, match=r"disagree on the class count"):
        resolve_num_classes(cfg, {"robustness_seven_classes": [], "robustness_six_classes": []})
    cfg = cls_cfg("MODEL.CLASSIFIER.NUM_CLASSES", 1)
    with pytest.raises(ValueError, match=r"NUM_CLASSES = 1: must be >= 2 \(or 0"):
        check_als_config(cfg)


def test_num_classes_must_match_the_datasets_class_count():
    from detectron2.data import MetadataCatalog

    MetadataCatalog.get("robustness_three_classes").set(
        num_classes=3
    )  # as ImageNet/OpenImages loads set it
    MetadataCatalog.get("robustness_four_classes").set(num_classes=4)
    cfg = cls_cfg("MODEL.CLASSIFIER.NUM_CLASSES", 4)
    check_training_dicts(
        cfg, {"robustness_four_classes": _dicts()}
    )  # labels < 3 < 4 but 4 classes: fine
    with pytest.raises(
        ValueError,
        match=r"NUM_CLASSES = 4: dataset 'robustness_three_classes' has 3 classes.*NUM_CLASSES 3",
    ):
        check_training_dicts(
            cfg, {"robustness_three_classes": [d for d in _dicts() if d["label"] < 3]}
        )


def test_trainer_checks_its_dicts_before_building(tmp_path):
    dicts = write_color_objects(str(tmp_path / "data"), per_class=2)
    for d in dicts:
        d["annotations"] = []
    register_dicts("robustness_unboxed", dicts, 4)
    cfg = small_cfg("robustness_unboxed", str(tmp_path / "out"), "INPUT.CLS.VARIANT", "mask")
    with pytest.raises(ValueError, match=r"INPUT\.CLS\.VARIANT = 'mask'.*'robustness_unboxed'"):
        ClassificationTrainer(cfg)
    cfg = small_cfg("robustness_unboxed", str(tmp_path / "out"), "INPUT.CLS.VARIANT", "context")
    with pytest.raises(ValueError, match=r"INPUT\.CLS\.VARIANT = 'context'.*'robustness_unboxed'"):
        ClassificationTrainer(cfg)
    assert not os.path.exists(tmp_path / "out" / "last_checkpoint")


# ---------------------------------------------------------------------------------------
# Skipped training samples: counted in the worker, carried with the batch, summed in storage


def test_seeded_dataset_records_its_skips():
    dicts = [{"file_name": f"f{i}", "i": i} for i in range(10)]
    mapper = lambda d: None if d["i"] % 2 else dict(d)  # noqa: E731
    ds = SeededMapDataset(dicts, mapper, base_seed=5)
    for position in range(20):
        out = ds[(position % 10, position)]
        assert out["i"] % 2 == 0
        assert out[SKIPPED_KEY] == (0 if position % 2 == 0 else out[SKIPPED_KEY]) and out[
            SKIPPED_KEY
        ] >= (position % 2)
    with pytest.raises(RuntimeError, match="skipped 100 samples in a row.*check_dataset"):
        SeededMapDataset(dicts, lambda d: None, 0)[(0, 0)]


def test_evaluation_never_skips_silently():
    loader = build_cls_test_loader([{"file_name": "broken.JPEG"}], lambda d: None, batch_size=1)
    with pytest.raises(RuntimeError, match="broken.JPEG"):
        next(iter(loader))
    # opt-in (INPUT.CLS.SKIP_UNREADABLE_EVAL): dropped from its batch, counted in this process
    dicts = [{"file_name": "ok1.JPEG"}, {"file_name": "broken.JPEG"}, {"file_name": "ok2.JPEG"}]
    mapper = lambda d: None if "broken" in d["file_name"] else dict(d)  # noqa: E731
    loader = build_cls_test_loader(dicts, mapper, batch_size=3, skip_unreadable=True)
    batches = list(loader)
    assert [x["file_name"] for b in batches for x in b] == ["ok1.JPEG", "ok2.JPEG"]
    assert loader.skipped == 1 and sum(x.get(SKIPPED_KEY, 0) for b in batches for x in b) == 1


def _bad_every_few(d):
    return None if d["i"] in (1, 4, 5, 8, 9) else dict(d)


@pytest.mark.parametrize("workers", [0, 2])
def test_evaluation_skips_counted_once_where_batches_arrive(workers):
    """Batches of 2 over 10 samples, 5 unreadable: one batch with a skip, one and the last
    wholly skipped. Every good sample arrives once, no empty batch, and the count of the
    pass (the loader's ``skipped``, and the SKIPPED_KEY its samples carry for the evaluator)
    is 5, with the mapper in the workers or here; a second pass counts afresh."""
    dicts = [{"file_name": f"f{i}", "i": i} for i in range(10)]
    loader = build_cls_test_loader(
        dicts, _bad_every_few, batch_size=2, num_workers=workers, skip_unreadable=True
    )
    for _ in range(2):
        batches = list(loader)
        assert all(batches) and [x["i"] for b in batches for x in b] == [0, 2, 3, 6, 7]
        assert loader.skipped == 5
        assert sum(x.get(SKIPPED_KEY, 0) for b in batches for x in b) == 5


class _SkippingTrainer(ClassificationTrainer):
    """Every 4th training image 'cannot be decoded': the mapper returns None for it."""

    calls = None  # multiprocessing.Value: the mapper's own count of Nones, across workers

    @classmethod
    def build_train_loader(cls, cfg, start_iter=0, dicts=None, seed=None):
        mapper = ClassificationDatasetMapper(cfg, is_train=True)
        bad = {d["file_name"] for d in dicts[::4]}
        calls = cls.calls

        def skipping(d):
            if d["file_name"] in bad:
                with calls.get_lock():
                    calls.value += 1
                return None
            return mapper(d)

        return build_cls_train_loader(
            dicts,
            skipping,
            total_batch_size=cfg.SOLVER.IMS_PER_BATCH,
            seed=seed,
            start_iter=start_iter,
            num_workers=cfg.DATALOADER.NUM_WORKERS,
        )


def _train_skipping(tiny, out_dir, workers):
    _SkippingTrainer.calls = mp.Value("i", 0)
    cfg = small_cfg(
        tiny, out_dir, "SOLVER.MAX_ITER", 5, "DATALOADER.NUM_WORKERS", workers, "DATASETS.TEST", ()
    )
    trainer = _SkippingTrainer(cfg)
    seen_keys = []
    trainer.model.register_forward_pre_hook(
        lambda m, args: seen_keys.extend(k for d in args[0] for k in d)
    )
    trainer.resume_or_load(resume=False)
    trainer.train()
    assert SKIPPED_KEY not in seen_keys and "image" in seen_keys  # the model never sees the count
    history = trainer.storage.history("data/skipped_samples").values()
    with open(os.path.join(out_dir, "metrics.json")) as f:
        logged = [
            json.loads(line)["data/skipped_samples"] for line in f if "data/skipped_samples" in line
        ]
    return [v for v, _ in history], logged, trainer, _SkippingTrainer.calls.value


def test_skipped_samples_reach_event_storage_from_worker_processes(tiny, tmp_path):
    values, logged, trainer, calls = _train_skipping(tiny, str(tmp_path / "w0"), 0)
    assert len(values) == 5 and values == sorted(values)  # cumulative, one value per iteration
    assert values[-1] == calls > 0  # every None of the mapper, no more
    assert logged[-1] == values[-1]  # in metrics.json
    assert trainer._trainer.state_dict()["skipped_samples"] == calls  # kept in checkpoints
    values1, logged1, _, calls1 = _train_skipping(
        tiny, str(tmp_path / "w1"), 1
    )  # mapper in another process
    assert values1 == values and logged1[-1] == logged[-1]
    assert calls1 >= calls  # the worker may have prefetched batches that were never used


# ---------------------------------------------------------------------------------------
# Weight files: never unpickle code, clear errors naming the file


class _Evil:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_files(tmp_path):
    marker = tmp_path / "pwned"
    torch.save(
        {"model": {"weight": torch.zeros(2, 3)}, "extra": _Evil(marker)}, tmp_path / "evil.pth"
    )
    torch.save(
        {"model_state": {"weight": torch.zeros(2, 3)}, "extra": _Evil(marker)},
        tmp_path / "evil.pyth",
    )
    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump(
            {"model": {"weight": np.zeros((2, 3), np.float32)}, "__author__": _Evil(marker)},
            f,
            protocol=2,
        )
    return marker, [str(tmp_path / n) for n in ("evil.pth", "evil.pyth", "evil.pkl")]


@pytest.mark.parametrize(
    "checkpointer", [ClassifierCheckpointer, TransferCheckpointer, SafeCheckpointer]
)
def test_checkpointers_refuse_files_that_run_code(checkpointer, tmp_path):
    marker, paths = _evil_files(tmp_path)
    for path in paths:
        with pytest.raises(
            UnsafeWeightsError, match=f"{path}: refusing to unpickle (posix|os|nt)\\.system"
        ):
            checkpointer(torch.nn.Linear(3, 2)).load(path)
    assert not marker.exists()


def test_model_weights_through_the_trainer_and_eval_only(tiny, tmp_path):
    marker, paths = _evil_files(tmp_path)
    cfg = small_cfg(tiny, str(tmp_path / "out"), "MODEL.WEIGHTS", paths[0])
    trainer = ClassificationTrainer(cfg)
    with pytest.raises(UnsafeWeightsError, match="evil.pth"):
        trainer.resume_or_load(resume=False)
    proc = run_tool(
        [
            "tools/train_cls.py",
            "--config-file",
            "configs/demo/Base-Demo-R18.yaml",
            "--eval-only",
            "MODEL.WEIGHTS",
            paths[2],
            "OUTPUT_DIR",
            str(tmp_path / "eval"),
        ],
        cwd=REPO,
        timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert (
        proc.returncode != 0
        and "UnsafeWeightsError" in proc.stderr
        and "evil.pkl: refusing to unpickle" in proc.stderr
    )
    assert not marker.exists()


def test_truncated_or_foreign_files_name_the_file(tmp_path):
    model = torch.nn.Linear(3, 2)
    ckpt = SafeCheckpointer(model, str(tmp_path))
    ckpt.save("model_0000000")
    data = open(tmp_path / "model_0000000.pth", "rb").read()
    cases = {
        "truncated.pth": data[: len(data) // 2],
        "empty.pth": b"",
        "text.pth": b"hello world\n",
        "truncated.pkl": pickle.dumps({"model": {}})[:5],
        "list.pth": None,
    }
    torch.save([1, 2], tmp_path / "list.pth")
    for name, content in cases.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
        with pytest.raises(WeightsFileError, match=str(tmp_path / name)):
            ClassifierCheckpointer(model).load(str(tmp_path / name))


def test_checkpoint_url_query_of_detectron2_main():
    from urllib.parse import urlparse

    holder = SimpleNamespace(_parsed_url_during_load=urlparse("w.pth?matching_heuristics=True"))
    assert compat.apply_checkpoint_url_queries(holder, {"model": {}})["matching_heuristics"] is True
    holder._parsed_url_during_load = urlparse("w.pth?colour=blue")
    with pytest.raises(ValueError, match="colour"):
        compat.apply_checkpoint_url_queries(holder, {"model": {}})
    assert compat.apply_checkpoint_url_queries(SimpleNamespace(), {"model": {}}) == {
        "model": {}
    }  # v0.6


# ---------------------------------------------------------------------------------------
# Atomic checkpoints


def _tmp_files(folder):
    return [n for n in os.listdir(folder) if n.endswith(".tmp")]


@pytest.mark.parametrize("checkpointer", [ClassifierCheckpointer, TransferCheckpointer])
def test_a_crash_during_save_leaves_the_previous_checkpoint(checkpointer, tmp_path, monkeypatch):
    model = torch.nn.Linear(3, 2)
    ckpt = checkpointer(model, str(tmp_path))
    ckpt.save("model_0000001", iteration=1)
    good = (tmp_path / "model_0000001.pth").read_bytes()
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(tmp_path / "model_0000001.pth").st_mode & 0o777 == 0o666 & ~umask
    with torch.no_grad():
        model.weight += 1

    def crash(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt("killed mid-write")

    with monkeypatch.context() as m:
        m.setattr(torch, "save", crash)
        for name in ("model_0000001", "model_0000002"):  # overwrite the old one, or write a new one
            with pytest.raises(KeyboardInterrupt):
                ckpt.save(name, iteration=2)
    assert (tmp_path / "model_0000001.pth").read_bytes() == good
    assert not (tmp_path / "model_0000002.pth").exists() and not _tmp_files(tmp_path)
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"

    # killed between the model file and last_checkpoint: the previous tag stays valid
    real_replace = os.replace

    def replace(src, dst):
        if str(dst).endswith("last_checkpoint"):
            raise KeyboardInterrupt("killed while tagging")
        real_replace(src, dst)

    with monkeypatch.context() as m:
        m.setattr(os, "replace", replace)
        with pytest.raises(KeyboardInterrupt):
            ckpt.save("model_0000003", iteration=3)
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"
    fresh = checkpointer(torch.nn.Linear(3, 2), str(tmp_path))
    assert fresh.resume_or_load("", resume=True)["iteration"] == 1

    # a temporary file left by a SIGKILLed save is removed by the next save of that name
    stale = tmp_path / ".model_0000001.pth.999-deadbeef.tmp"
    stale.write_bytes(b"partial")
    ckpt.save("model_0000001", iteration=1)
    assert not stale.exists() and not _tmp_files(tmp_path)

    # ... and by any later save in the folder once its writer is gone; a live writer's
    # temporary file (another process still saving) is left alone
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # reaped: this pid no longer exists
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead_tmp = tmp_path / f".model_0000007.pth.{gone.pid}-0123abcd.tmp"
        live_tmp = tmp_path / f".model_0000008.pth.{alive.pid}-89abcdef.tmp"
        other = tmp_path / "notes.7-0123abcd.tmp"  # not one of ours: never touched
        for f in (dead_tmp, live_tmp, other):
            f.write_bytes(b"partial")
        ckpt.save("model_0000004", iteration=4)
        assert not dead_tmp.exists() and live_tmp.exists() and other.exists()
    finally:
        alive.kill()
        alive.wait()
    ckpt.save("model_0000005", iteration=5)
    assert not live_tmp.exists() and other.exists()


# ---------------------------------------------------------------------------------------
# Dataset paths that leave the root, duplicates


def _tree(tmp_path, layout="standard"):
    tree = fx.FixtureTree(str(tmp_path / "imagenet"), layout, fx.wnid_names(3))
    for w in tree.wnids:
        tree.add_image("train", w, (40, 30), [(w, (1, 1, 9, 9))])
    return tree


def test_symlinks_leaving_the_root_are_dropped_and_counted(tmp_path, single_index_worker):
    tree = _tree(tmp_path)
    a, b, c = tree.wnids
    outside = tmp_path / "elsewhere"
    fx.write_jpeg(str(outside / "secret.JPEG"), (20, 20))
    fx.write_jpeg(str(outside / "cls" / f"{c}_1.JPEG"), (20, 20))
    os.symlink(outside / "secret.JPEG", os.path.join(tree.image_dir("train"), a, f"{a}_7.JPEG"))
    fx.write_text(
        str(outside / "ann.xml"), fx.ilsvrc_xml_text(b, "x", (40, 30), [(b, (1, 1, 30, 20))])
    )
    linked = tree.add_image("train", b, (40, 30), [])
    os.symlink(outside / "ann.xml", os.path.join(tree.ann_dir("train"), b, linked.stem + ".xml"))
    # a whole class folder linked elsewhere (its images are outside too), and a link inside the tree
    os.rename(os.path.join(tree.image_dir("train"), c), str(outside / "moved"))
    os.symlink(outside / "moved", os.path.join(tree.image_dir("train"), c))
    first_a = tree.split_images("train")[0]
    os.symlink(first_a.path, os.path.join(tree.image_dir("train"), a, f"{a}_8.JPEG"))

    dicts = fx.prepared_dicts(tree.root, "train")
    names = sorted(os.path.basename(d["file_name"]) for d in dicts)
    assert names == sorted(
        [
            os.path.basename(first_a.path),
            f"{a}_8.JPEG",
            os.path.basename(tree.split_images("train")[1].path),
            os.path.basename(linked.path),
        ]
    )
    assert [d["annotations"] for d in dicts if d["file_name"] == linked.path] == [
        []
    ]  # the outside XML is not read
    index = fx.prepared_index(tree.root, "train")
    assert index["stats"]["outside_root"] == 3
    assert any(str(outside / "secret.JPEG") in e for e in index["examples"]["outside_root"])


def test_csv_image_ids_that_are_paths_are_rejected(tmp_path, single_index_worker):
    tree = fx.FixtureTree(str(tmp_path / "imagenet"), "kaggle", fx.wnid_names(2))
    a, b = tree.wnids
    im = tree.add_image("val", a, (40, 30), [(a, (1, 1, 9, 9))], xml=False, csv_row=True)
    tree.write_csvs()
    with open(tree.csv_path("val"), "a") as f:
        for evil in ("../../etc/passwd", "/etc/passwd", "..", "a/../../b", "..\\..\\win.ini"):
            f.write(f"{evil},{a} 1 1 9 9 \n")
    dicts = fx.prepared_dicts(tree.root, "val")
    assert [d["file_name"] for d in dicts] == [im.path]
    stats = fx.prepared_index(tree.root, "val")["stats"]
    assert stats["outside_root"] == 5 and not stats.get("orphan_csv_rows")


def test_linked_root_is_fine_linked_split_folder_is_an_error(tmp_path, single_index_worker):
    tree = _tree(tmp_path)
    link = tmp_path / "datasets_imagenet"
    os.symlink(tree.root, link)
    dicts = fx.prepared_dicts(str(link), "train")
    assert len(dicts) == 3 and all(d["file_name"].startswith(str(link) + os.sep) for d in dicts)
    other = tmp_path / "other"
    os.makedirs(other)
    os.rename(tree.image_dir("train"), other / "train")
    os.symlink(other / "train", tree.image_dir("train"))
    with pytest.raises(ValueError, match="outside the dataset root.*link the whole root"):
        fx.prepared_dicts(tree.root, "train")


def test_prepared_file_missing_or_bad_is_a_clear_error(tmp_path, single_index_worker):
    from als_d2.data.datasets.catalog import DatasetNotPreparedError
    from als_d2.data.datasets.imagenet import load_imagenet_dicts, prepared_path

    tree = _tree(tmp_path)
    command = f"tools/prepare_imagenet.py --root {tree.root} --splits train"
    with pytest.raises(DatasetNotPreparedError, match=re.escape(command)):
        load_imagenet_dicts(tree.root, "train")
    assert len(fx.prepared_dicts(tree.root, "train")) == 3
    path = prepared_path(tree.root, "train")
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])  # truncated
    with pytest.raises(ValueError, match=f"{re.escape(path)} is not a readable.*{command}"):
        load_imagenet_dicts(tree.root, "train")
    # a pickle whose loading would run code is refused, not executed
    marker = tmp_path / "pwned"
    with gzip.open(path, "wb") as f:
        pickle.dump({"format": "x", "payload": _Evil(marker)}, f)
    with pytest.raises(ValueError, match=re.escape(path)):
        load_imagenet_dicts(tree.root, "train")
    assert not marker.exists()


def test_duplicates(tmp_path, single_index_worker):
    tree = _tree(tmp_path)
    a, b, _ = tree.wnids
    first = tree.split_images("train")[0]
    fx.write_jpeg(first.path[: -len(".JPEG")] + ".png", (40, 30))  # same name, another extension
    fx.write_jpeg(
        os.path.join(tree.image_dir("train"), b, os.path.basename(first.path)), (40, 30)
    )  # another class
    dicts = fx.prepared_dicts(tree.root, "train")
    assert len(dicts) == 5 and len({d["image_id"] for d in dicts}) == 5  # kept, with unique ids
    assert fx.prepared_index(tree.root, "train")["stats"]["duplicate_images"] == 2
    csv = tmp_path / "LOC_val_solution.csv"
    csv.write_text(
        "ImageId,PredictionString\n"
        "v1,n1 1 1 2 2\nv2,n1 1 1 2 2\nv1,n1 3 3 4 4\nv2,n1 1 1 2 2\nv1,n1 1 1 2 2\n"
    )
    with pytest.raises(
        ValueError,
        match=(
            r"LOC_val_solution.csv: 2 repeated ImageId.*v1 appears 3 times \(lines 2, 4, 6\)"
            r".*v2 appears twice \(lines 3, 5\)"
        ),
    ):
        read_loc_solution_csv(str(csv))
