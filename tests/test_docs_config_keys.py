"""Every config key README.md and docs/*.md name exists in the project's full config:
detectron2's defaults with als-d2's keys (``add_als_config``) and the transfer keys
(``add_transfer_config``). A key is an upper-case dotted path starting with a top-level
node of that config (``MODEL.ALS.METHOD``, ``SOLVER.AMP.PRECISION``)."""

import glob
import os
import re

from detectron2.config import CfgNode, get_cfg

from als_d2.config import add_als_config
from als_d2.engine.detection import add_transfer_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCUMENTS = ["README.md"] + sorted(
    os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "docs", "*.md"))
)


def _full_config() -> CfgNode:
    cfg = get_cfg()
    add_als_config(cfg)
    add_transfer_config(cfg)
    return cfg


def _exists(cfg: CfgNode, key: str) -> bool:
    node = cfg
    for part in key.split("."):
        if not isinstance(node, CfgNode) or part not in node:
            return False
        node = node[part]
    return True


def config_keys(text: str, cfg: CfgNode):
    """[(line number, key)] of the tokens of ``text`` shaped like keys of ``cfg``."""
    nodes = sorted(k for k, v in cfg.items() if isinstance(v, CfgNode))
    pattern = re.compile(r"(?<![\w.])(?:%s)(?:\.[A-Z][A-Z0-9_]*)+(?!\w)" % "|".join(nodes))
    return [(text.count("\n", 0, m.start()) + 1, m.group(0)) for m in pattern.finditer(text)]


def test_the_scan_finds_keys_and_misses_none():
    cfg = _full_config()
    text = "Set `MODEL.ALS.METHOD` (see MODEL.CLASSIFIER.TARGET),\nand SOLVER.AMP.PRECISION auto."
    found = config_keys(text, cfg)
    assert found == [
        (1, "MODEL.ALS.METHOD"),
        (1, "MODEL.CLASSIFIER.TARGET"),
        (2, "SOLVER.AMP.PRECISION"),
    ]
    assert [_exists(cfg, k) for _, k in found] == [True, False, True]
    assert config_keys("A.3, x.MODEL.ALS, model.als.beta, MODELS.ALS", cfg) == []


def test_every_config_key_the_docs_name_exists():
    cfg = _full_config()
    named, missing = set(), []
    for rel in DOCUMENTS:
        with open(os.path.join(REPO, rel), encoding="utf-8") as f:
            text = f.read()
        for line, key in config_keys(text, cfg):
            named.add(key)
            if not _exists(cfg, key):
                missing.append(f"{rel}:{line}: {key}")
    assert len(named) > 15  # the scan reads the documents (not vacuous)
    assert not missing, "config keys the docs name that do not exist:\n" + "\n".join(missing)
