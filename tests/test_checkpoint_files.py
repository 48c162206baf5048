"""als_d2.checkpoint.file_io (atomic writes) and what the checkpointers make of each kind of
file: expectations come from the dicts written here, never from the code under test."""

import os
import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch

from als_d2.checkpoint import ClassifierCheckpointer, TransferCheckpointer
from als_d2.checkpoint.detection import SafeCheckpointer
from als_d2.checkpoint.file_io import AtomicLocalWrites, atomic_open


def _tmp_files(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith(".tmp"))


def test_atomic_open_writes_whole_files_or_nothing(tmp_path):
    path = tmp_path / "f.txt"
    with atomic_open(str(path), "w") as f:
        f.write("first ünïcode\n")
    assert path.read_bytes() == "first ünïcode\n".encode("utf-8")
    with pytest.raises(RuntimeError, match="mid-write"):
        with atomic_open(str(path), "wb") as f:
            f.write(b"half")
            raise RuntimeError("mid-write")
    assert path.read_text(encoding="utf-8") == "first ünïcode\n" and not _tmp_files(tmp_path)
    with pytest.raises(ValueError, match="'ab'"):
        with atomic_open(str(path), "ab"):
            pass


class _Recorder:
    """A stand-in path manager that records the calls it gets."""

    def __init__(self):
        self.calls = []

    def open(self, path, mode="r", **kwargs):
        self.calls.append(("open", path, mode))
        return open(path, mode) if "://" not in path else None

    def exists(self, path):
        self.calls.append(("exists", path))
        return True


def test_atomic_local_writes_only_takes_local_writes(tmp_path):
    inner = _Recorder()
    manager = AtomicLocalWrites(inner)
    target = tmp_path / "new_folder" / "last_checkpoint"
    with manager.open(str(target), "w") as f:  # the folder is created, the write is atomic
        f.write("model_0000009.pth")
    assert target.read_text() == "model_0000009.pth" and inner.calls == []
    with manager.open(str(target), "r") as f:
        assert f.read() == "model_0000009.pth"
    manager.open("s3://bucket/model.pth", "wb")
    assert manager.exists("anything") is True
    assert inner.calls == [
        ("open", str(target), "r"),
        ("open", "s3://bucket/model.pth", "wb"),
        ("exists", "anything"),
    ]


def test_classifier_checkpointer_saves_backbone_relative_names_and_extra_data(tmp_path):
    model = torch.nn.Sequential(
        OrderedDict(backbone=torch.nn.Linear(2, 3), head=torch.nn.Linear(3, 4))
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    ClassifierCheckpointer(model, str(tmp_path), optimizer=optimizer).save(
        "model_0000003", iteration=3
    )
    saved = torch.load(tmp_path / "model_0000003.pth", weights_only=True)
    assert list(saved["model"]) == ["weight", "bias", "head.weight", "head.bias"]
    assert torch.equal(saved["model"]["weight"], model.backbone.weight)
    assert (saved["__author__"], saved["matching_heuristics"], saved["iteration"]) == (
        "als_d2",
        True,
        3,
    )
    assert saved["optimizer"]["param_groups"][0]["lr"] == 0.1
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000003.pth" and not _tmp_files(
        tmp_path
    )


def _resnet_stem():
    g = torch.Generator().manual_seed(0)
    return OrderedDict(
        [
            ("conv1.weight", torch.randn(4, 3, 7, 7, generator=g)),
            ("bn1.weight", torch.rand(4, generator=g)),
            ("layer1.0.conv1.weight", torch.randn(4, 4, 1, 1, generator=g)),
        ]
    )


def test_transfer_checkpointer_reduces_resnet_weights_and_leaves_the_rest_to_detectron2(tmp_path):
    reader = TransferCheckpointer(torch.nn.Linear(1, 1))
    tv = _resnet_stem()
    expected = {
        "stem.conv1.weight": tv["conv1.weight"],
        "stem.conv1.norm.weight": tv["bn1.weight"],
        "res2.0.conv1.weight": tv["layer1.0.conv1.weight"],
    }

    # a timm-style torch file: state dict under "state_dict", the author at the top level
    torch.save({"state_dict": tv, "__author__": "someone", "epoch": 3}, tmp_path / "timm.pth")
    data = reader._load_file(str(tmp_path / "timm.pth"))
    assert (data["__author__"], data["matching_heuristics"]) == ("someone", True)
    assert list(data["model"]) == list(expected)
    assert all(torch.equal(data["model"][k], v) for k, v in expected.items())
    torch.save(tv, tmp_path / "plain.pth")  # no author: the format stands in
    assert reader._load_file(str(tmp_path / "plain.pth"))["__author__"] == "torchvision"

    # a detectron2 .pkl of backbone-relative numpy arrays (MoCo): tensors, its author kept
    with open(tmp_path / "moco.pkl", "wb") as f:
        pickle.dump({"model": {k: v.numpy() for k, v in expected.items()}, "__author__": "MOCO"}, f)
    data = reader._load_file(str(tmp_path / "moco.pkl"))
    assert data["__author__"] == "MOCO" and all(
        torch.equal(data["model"][k], v) for k, v in expected.items()
    )

    # Caffe2 blobs: detectron2's own reading (names kept, momenta dropped, c2 conversion later)
    blobs = {
        "conv1_w": np.ones((4, 3, 7, 7), np.float32),
        "conv1_w_momentum": np.zeros(1, np.float32),
    }
    with open(tmp_path / "c2.pkl", "wb") as f:
        pickle.dump({"blobs": blobs}, f)
    data = reader._load_file(str(tmp_path / "c2.pkl"))
    assert (data["__author__"], data["matching_heuristics"], list(data["model"])) == (
        "Caffe2",
        True,
        ["conv1_w"],
    )

    # a detector checkpoint and a pycls file: as DetectionCheckpointer reads them
    detector = {
        "model": {
            "backbone.stem.conv1.weight": torch.ones(1),
            "roi_heads.box_predictor.bias": torch.ones(2),
        },
        "iteration": 7,
    }
    torch.save(detector, tmp_path / "det.pth")
    data = reader._load_file(str(tmp_path / "det.pth"))
    assert set(data) == {"model", "iteration"} and list(data["model"]) == list(detector["model"])
    torch.save(
        {
            "model_state": {
                "stem.conv.weight": torch.ones(1),
                "stem.bn.num_batches_tracked": torch.tensor(1),
            }
        },
        tmp_path / "net.pyth",
    )
    for checkpointer in (reader, SafeCheckpointer(torch.nn.Linear(1, 1))):
        data = checkpointer._load_file(str(tmp_path / "net.pyth"))
        assert (data["__author__"], list(data["model"])) == ("pycls", ["stem.conv.weight"])


def test_transfer_log_names_a_converted_pkl_as_detectron2_format(tmp_path):
    """A .pkl written by convert_weights --to detectron2 is logged as detectron2-format
    weights whose __author__ is als_d2, not as "(als_d2)" (als_d2's own .pth format)."""
    import logging

    from als_d2.checkpoint.conversion import from_canonical, save_weights

    class Stem(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = torch.nn.Conv2d(3, 4, 7, bias=False)

    model = torch.nn.Module()
    model.backbone = torch.nn.Module()
    model.backbone.stem = Stem()
    weight = torch.randn(4, 3, 7, 7)
    path = str(tmp_path / "als_r18.pkl")
    save_weights(from_canonical({"stem.conv1.weight": weight}, "detectron2"), path, "detectron2")
    messages = []

    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    checkpointer = TransferCheckpointer(model)
    handler = Collect()
    checkpointer.logger.addHandler(handler)
    checkpointer.logger.setLevel(logging.INFO)
    try:
        checkpointer.load(path)
    finally:
        checkpointer.logger.removeHandler(handler)
    assert torch.equal(model.backbone.stem.conv1.weight.detach(), weight)
    text = "\n".join(messages)
    assert f"Transfer from {path} (detectron2 format, __author__ 'als_d2')" in text, text
    assert f"{path}: ResNet weights in detectron2 format, __author__ 'als_d2'" in text
    assert "(als_d2)" not in text
