"""tools/convert_weights.py: format recognition, bit-identical round trips, safe loading."""

import os
import pickle
import re
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torchvision
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.modeling import build_model

from als_d2.checkpoint import TransferCheckpointer
from als_d2.checkpoint.conversion import convert, read_canonical
from als_d2.checkpoint.file_io import RestrictedUnpickler, load_weights_file, safe_pickle_load
from als_d2.config import add_als_config
from als_d2.engine.detection import add_transfer_config

from forked_tools import run_tool


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(REPO, "tools", "convert_weights.py")


def randomized(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial BN statistics and affine parameters, so that a mix-up would show."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.num_batches_tracked.fill_(int(torch.randint(1, 1000, (1,), generator=g)))
    return model.eval()


def run_convert(*args):
    proc = run_tool(
        [TOOL, *map(str, args)],
        timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    return proc


def assert_identical(a, b):
    assert list(a.keys()) == list(b.keys())
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def tv18(tmp_path_factory):
    path = tmp_path_factory.mktemp("tv") / "resnet18.pth"
    sd = randomized(torchvision.models.resnet18()).state_dict()
    torch.save(sd, path)
    return path, sd


def test_cli_torchvision_to_als_d2_to_torchvision_is_bit_identical(tv18, tmp_path):
    path, sd = tv18
    proc = run_convert(path, tmp_path / "als.pth", "--to", "als_d2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "(torchvision) ->" in proc.stdout
    saved = torch.load(tmp_path / "als.pth", weights_only=True)
    assert saved["__author__"] == "als_d2" and saved["matching_heuristics"] is True
    assert "res5.1.conv2.norm.running_var" in saved["model"] and "head.weight" in saved["model"]

    fmt, _ = convert(str(tmp_path / "als.pth"), str(tmp_path / "back.pth"), "torchvision")
    assert fmt == "als_d2"
    back = torch.load(tmp_path / "back.pth", weights_only=True)
    assert_identical(back, sd)
    torchvision.models.resnet18().load_state_dict(back)  # strict


def test_torchvision_resnet50_through_the_tool_gives_torchvision_logits(tmp_path):
    reference = randomized(torchvision.models.resnet50(), seed=1)
    torch.save(reference.state_dict(), tmp_path / "r50.pth")
    proc = run_convert(tmp_path / "r50.pth", tmp_path / "r50_als.pth", "--to", "als_d2")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]

    cfg = get_cfg()
    add_als_config(cfg)
    cfg.merge_from_file(os.path.join(REPO, "configs/hard_r50.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    model = build_model(cfg)
    DetectionCheckpointer(model).load(str(tmp_path / "r50_als.pth"))  # detectron2's stock loader
    model.eval()

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 160, 160), generator=g, dtype=torch.uint8)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = reference((images.float() / 255.0 - mean) / std)
        logits = torch.stack([o["logits"] for o in model([{"image": im} for im in images])])
    assert (logits - expected).abs().max() <= 1e-4 * expected.abs().max()

    # the paper's R50 detectors take the same file: every ResNet tensor, res5 included
    for config in ("faster_rcnn_R_50_C4_paper.yaml", "faster_rcnn_R_50_FPN_1x.yaml"):
        det_cfg = get_cfg()
        add_transfer_config(det_cfg)
        det_cfg.merge_from_file(os.path.join(REPO, "configs", "COCO-Detection", config))
        det_cfg.MODEL.DEVICE = "cpu"
        detector = build_model(det_cfg)
        DetectionCheckpointer(detector).load(str(tmp_path / "r50_als.pth"))
        state, classifier_state = detector.state_dict(), model.state_dict()
        resnet = [k for k in state if re.search(r"(^|\.)(stem|res[2-5])\.", k)]
        assert (
            len(resnet) == 53 * 5
        )  # 53 convs: weight + FrozenBN weight, bias, running mean, running var
        for k in resnet:
            source = "backbone." + re.sub(r"^.*?((stem|res[2-5])\..*)$", r"\1", k)
            assert torch.equal(state[k], classifier_state[source]), k


def test_detectron2_pkl_loads_into_detectors_and_converts_back(tv18, tmp_path):
    path, sd = tv18
    convert(str(path), str(tmp_path / "r18.pkl"), "detectron2")
    with open(tmp_path / "r18.pkl", "rb") as f:
        data = pickle.load(f)  # plain pickle of numpy arrays: what detectron2 itself reads
    assert data["matching_heuristics"] is True and data["__author__"] == "als_d2"
    assert all(isinstance(v, np.ndarray) for v in data["model"].values())
    assert not any(k.startswith("head.") for k in data["model"])  # detectors have no use for it

    for config in ("demo/faster_rcnn_R18_C4_cpu.yaml", "demo/faster_rcnn_R18_FPN_cpu.yaml"):
        cfg = get_cfg()
        add_transfer_config(cfg)
        cfg.merge_from_file(os.path.join(REPO, "configs", "COCO-Detection", config))
        detector = build_model(cfg)
        DetectionCheckpointer(detector).load(str(tmp_path / "r18.pkl"))
        state = detector.state_dict()
        for key, value in data["model"].items():
            hits = [k for k in state if k.endswith("." + key)]
            if key.endswith("num_batches_tracked"):
                assert not hits  # FrozenBN
                continue
            assert len(hits) == 1 and np.array_equal(state[hits[0]].numpy(), value), key

    fmt, _ = convert(str(tmp_path / "r18.pkl"), str(tmp_path / "tv.pth"), "torchvision")
    assert fmt == "detectron2"
    back = torch.load(tmp_path / "tv.pth", weights_only=True)
    assert_identical(back, OrderedDict((k, v) for k, v in sd.items() if not k.startswith("fc.")))


def test_formats_are_recognised(tv18, tmp_path):
    path, sd = tv18
    # timm-style: wrapped in "state_dict", DDP "module." prefixes
    torch.save(
        {"state_dict": {"module." + k: v for k, v in sd.items()}, "epoch": 3},
        tmp_path / "timm.pth.tar",
    )
    fmt, timm = read_canonical(str(tmp_path / "timm.pth.tar"))
    assert fmt == "torchvision" and "res2.0.conv1.weight" in timm
    # ... which train_det.py's checkpointer takes as MODEL.WEIGHTS directly
    cfg = get_cfg()
    add_transfer_config(cfg)
    cfg.merge_from_file(
        os.path.join(REPO, "configs", "COCO-Detection", "demo/faster_rcnn_R18_FPN_cpu.yaml")
    )
    detector = build_model(cfg)
    checkpointer = TransferCheckpointer(detector)
    checkpointer.load(str(tmp_path / "timm.pth.tar"))
    assert len(checkpointer.transfer["loaded"]) == 20 * 5 and checkpointer.transfer["unused"] == [
        "head.bias",
        "head.weight",
    ]
    state = detector.state_dict()
    assert torch.equal(
        state["backbone.bottom_up.res5.1.conv2.norm.running_var"], sd["layer4.1.bn2.running_var"]
    )
    # the ImageClassifier's own keys (train_cls.py checkpoints from a stock DetectionCheckpointer)
    legacy = {
        "model": {
            ("backbone." + k if not k.startswith("head.") else k): v for k, v in timm.items()
        },
        "iteration": 9,
    }
    torch.save(legacy, tmp_path / "legacy.pth")
    fmt, state = read_canonical(str(tmp_path / "legacy.pth"))
    assert fmt == "als_d2"
    assert_identical(state, timm)
    # MoCo-style detectron2 pkl
    with open(tmp_path / "moco.pkl", "wb") as f:
        pickle.dump(
            {
                "model": {k: v.numpy() for k, v in timm.items() if not k.startswith("head.")},
                "__author__": "MOCO",
                "matching_heuristics": True,
            },
            f,
        )
    assert read_canonical(str(tmp_path / "moco.pkl"))[0] == "detectron2"
    # refused: Caffe2 names, detectors
    with open(tmp_path / "c2.pkl", "wb") as f:
        pickle.dump(
            {
                "blobs": {
                    "conv1_w": np.zeros((64, 3, 7, 7), np.float32),
                    "res2_0_branch2a_w": np.zeros(1),
                }
            },
            f,
        )
    with pytest.raises(ValueError, match="Caffe2"):
        read_canonical(str(tmp_path / "c2.pkl"))
    detector = {
        "model": {
            "backbone.stem.conv1.weight": torch.zeros(1),
            "proposal_generator.rpn_head.conv.weight": torch.zeros(1),
        }
    }
    torch.save(detector, tmp_path / "det.pth")
    with pytest.raises(ValueError, match="detector"):
        read_canonical(str(tmp_path / "det.pth"))
    with pytest.raises(ValueError, match=".pkl"):
        convert(str(path), str(tmp_path / "out.pth"), "detectron2")


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickles_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    payload = {
        "model": {"stem.conv1.weight": np.zeros((2, 2), np.float32)},
        "__author__": _Evil(marker),
    }
    for protocol in (2, 4, 5):
        path = tmp_path / f"evil{protocol}.pkl"
        with open(path, "wb") as f:
            pickle.dump(payload, f, protocol=protocol)
        with pytest.raises(pickle.UnpicklingError, match="os|posix|system"):
            load_weights_file(str(path))
        proc = (
            run_convert(path, tmp_path / "out.pth", "--to", "torchvision")
            if protocol == 4
            else None
        )
        assert proc is None or (
            proc.returncode == 1
            and "refusing to unpickle posix.system" in proc.stdout + proc.stderr
        )
    assert not marker.exists()

    import io

    with pytest.raises(pickle.UnpicklingError):
        RestrictedUnpickler(io.BytesIO(pickle.dumps(eval))).load()  # builtins.eval: not a container
    # what is allowed: numpy arrays (any protocol), numpy scalars, OrderedDict, sets
    good = OrderedDict(
        a=np.arange(6, dtype=np.float32).reshape(2, 3), b=np.float64(2.5), c={1, 2}, d=(1, "x")
    )
    for protocol in (2, 4, 5):
        back = safe_pickle_load(io.BytesIO(pickle.dumps(good, protocol=protocol)))
        assert (
            isinstance(back, OrderedDict)
            and np.array_equal(back["a"], good["a"])
            and back["b"] == 2.5
        )


def test_torch_files_load_with_weights_only(tmp_path):
    torch.save(
        {"model": {"stem.conv1.weight": torch.zeros(1)}, "evil": _Evil(tmp_path / "pwned")},
        tmp_path / "evil.pth",
    )
    with pytest.raises(pickle.UnpicklingError):
        load_weights_file(str(tmp_path / "evil.pth"))
    assert not (tmp_path / "pwned").exists()
