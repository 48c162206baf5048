"""What a GPU training step needs from the configs and loaders, checked without a GPU: pinned
loader batches on a CUDA device (so that the model's non_blocking copies are asynchronous),
cuDNN's autotuner on for the classification configs (fixed crop size)."""

import glob
import os

import pytest

from als_d2.engine import ClassificationTrainer

from tiny_data import REPO, als_cfg, register_tiny, tiny_cls_cfg


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return register_tiny(str(tmp_path_factory.mktemp("tiny")))


@pytest.mark.parametrize("device,pinned", [("cuda", True), ("cuda:1", True), ("cpu", False)])
def test_loaders_pin_memory_for_a_cuda_device(tiny, tmp_path, device, pinned):
    cfg = tiny_cls_cfg(tiny, str(tmp_path), "MODEL.DEVICE", device)
    train = ClassificationTrainer.build_train_loader(cfg)
    test = ClassificationTrainer.build_test_loader(cfg, tiny)
    # the torch DataLoaders under the batch splitting (building one needs no GPU)
    assert train.loader.pin_memory is pinned
    assert test.loader.pin_memory is pinned


def _config_files(folder):
    return sorted(glob.glob(os.path.join(REPO, "configs", folder, "*.yaml")))


CLASSIFICATION = _config_files("") + _config_files("demo") + _config_files("openimages")
DETECTION = _config_files("COCO-Detection") + _config_files("COCO-Detection/demo")


@pytest.mark.parametrize("path", CLASSIFICATION, ids=lambda p: os.path.relpath(p, REPO))
def test_classification_configs_turn_on_cudnn_benchmark(path):
    assert als_cfg(os.path.relpath(path, REPO)).CUDNN_BENCHMARK is True


def test_detection_configs_leave_cudnn_benchmark_off():
    # detection inputs vary in size: autotuning would run again for most batches
    from detectron2.config import get_cfg

    from als_d2.engine.detection import add_transfer_config

    for path in DETECTION:
        cfg = get_cfg()
        add_transfer_config(cfg)  # as train_det.py loads them
        cfg.merge_from_file(path)
        assert cfg.CUDNN_BENCHMARK is False, path
