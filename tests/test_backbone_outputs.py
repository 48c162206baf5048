"""A backbone output the classifier does not use (MODEL.RESNETS.OUT_FEATURES ["res4", "res5"]
with MODEL.CLASSIFIER.IN_FEATURE res4: res5's parameters get no gradient and DDP fails at the
second iteration) is a config error, named in one line before anything is built."""

import os

import pytest
from detectron2.config import get_cfg

from als_d2.config import ConfigError, add_als_config, check_als_config, load_als_config
from als_d2.modeling.classifier import ImageClassifier

from forked_tools import run_tool

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(REPO, "configs", "demo", "als_r18.yaml")
R50 = os.path.join(REPO, "configs", "als_r50.yaml")


def _cfg(config, outputs, feature):
    cfg = get_cfg()
    add_als_config(cfg)
    cfg.merge_from_file(config)
    cfg.MODEL.RESNETS.OUT_FEATURES = list(outputs)
    cfg.MODEL.CLASSIFIER.IN_FEATURE = feature
    return cfg


@pytest.mark.parametrize(
    "outputs, feature",
    [(["res4", "res5"], "res4"), (["res3", "res5"], "res5"), (["res2", "res3"], "res2")],
)
def test_outputs_the_classifier_does_not_use_are_refused(outputs, feature):
    unused = [o for o in outputs if o != feature]
    with pytest.raises(ConfigError) as info:
        check_als_config(_cfg(R50, outputs, feature))
    message = str(info.value)
    assert "\n" not in message
    assert "MODEL.RESNETS.OUT_FEATURES" in message and "MODEL.CLASSIFIER.IN_FEATURE" in message
    assert str(unused) in message and f"['{feature}']" in message  # what is wrong, the fix


def test_the_refused_config_does_leave_parameters_without_gradient():
    """What the check prevents: a stage built for the unused output (what DDP rejects)."""
    import torch

    cfg = _cfg(DEMO, ["res4", "res5"], "res4")
    cfg.MODEL.CLASSIFIER.NUM_CLASSES = 3
    model = ImageClassifier(cfg).train()
    model.logits(torch.zeros(2, 3, 32, 32)).sum().backward()
    no_grad = {n.split(".")[1] for n, p in model.named_parameters() if p.grad is None}
    assert no_grad == {"res5"}


@pytest.mark.parametrize("config, feature", [(R50, "res5"), (DEMO, "res5"), (DEMO, "res3")])
def test_the_used_output_alone_passes(config, feature):
    check_als_config(_cfg(config, [feature], feature))


def test_train_cls_stops_with_one_line():
    proc = run_tool(
        [os.path.join(REPO, "tools", "train_cls.py"), "--config-file", DEMO]
        + ["MODEL.RESNETS.OUT_FEATURES", '["res4", "res5"]', "MODEL.CLASSIFIER.IN_FEATURE", "res4"]
        + ["OUTPUT_DIR", os.devnull],
        cwd=REPO,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: config keys MODEL.RESNETS.OUT_FEATURES = ['res4', 'res5']")
    assert "set MODEL.RESNETS.OUT_FEATURES ['res4']" in last
    # the tools start from the same check
    with pytest.raises(ConfigError):
        load_als_config(
            DEMO,
            ["MODEL.RESNETS.OUT_FEATURES", '["res4", "res5"]']
            + ["MODEL.CLASSIFIER.IN_FEATURE", "res4"],
        )
