"""Start-up: ``tools/x.py --help`` answers, the train tools parse detectron2's command line
(its ``default_argument_parser``), and ``import als_d2`` registers every builtin dataset name
without importing the dataset readers (checked as module sets in fresh interpreters:
behaviour, not timing; benchmarks/startup.py measures the time)."""

import json
import os
import subprocess
import sys
import uuid

import als_d2  # noqa: F401  (detectron2 bootstrap first)
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from als_d2.data.datasets import builtin
from forked_tools import run_tool
from tiny_data import load_tool

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = sorted(f for f in os.listdir(os.path.join(REPO, "tools")) if f.endswith(".py"))

# Modules that only loading a dataset (or a tool's work) may import.
READERS = [
    "als_d2.data.datasets.imagenet",
    "als_d2.data.datasets.imagenet_index",
    "als_d2.data.datasets.ilsvrc_xml",
    "als_d2.data.datasets.loc_files",
    "als_d2.data.datasets.openimages",
    "als_d2.data.datasets.openimages_files",
    "als_d2.data.datasets.openimages_index",
    "als_d2.data.datasets.wsol_metadata",
]
HEAVY_LIBRARIES = ["lxml", "matplotlib"]


def _imported_modules(stderr: str) -> set:
    """Module names from ``python -X importtime``'s report on stderr."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "imported package" not in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def _python(code: str, env=None) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, **(env or {})),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_train_tools_parser_is_detectron2_s_extended():
    """The train tools' parser is detectron2's ``default_argument_parser`` (v0.6 and main):
    the same flags, destinations, types and defaults, except ``--dist-url``'s port."""
    from detectron2.engine import default_argument_parser as d2_parser

    from als_d2.engine.launch import default_argument_parser

    assert load_tool("train_cls").default_argument_parser is default_argument_parser
    assert load_tool("train_det").default_argument_parser is default_argument_parser

    def signature(parser):
        return [
            (
                type(a).__name__,
                tuple(a.option_strings),
                a.dest,
                a.default if a.dest != "dist_url" else None,
                a.type,
                a.nargs,
                a.required,
                a.const,
                a.choices,
            )
            for a in parser._actions
        ]

    assert signature(default_argument_parser()) == signature(d2_parser())
    argv = ["--config-file", "a.yaml", "--num-gpus", "4", "--dist-url", "tcp://h:1"]
    argv += ["MODEL.WEIGHTS", "w.pth", "SOLVER.BASE_LR", "0.1"]
    assert vars(default_argument_parser().parse_args(argv)) == vars(d2_parser().parse_args(argv))


@pytest.mark.parametrize("tool", TOOLS)
def test_tool_help_answers(tool, tmp_path):
    proc = run_tool([os.path.join(REPO, "tools", tool), "--help"], cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("usage:"), proc.stdout[:300]


def test_import_als_d2_registers_every_builtin_name_without_the_readers(tmp_path):
    out = _python(
        "import json, sys; import als_d2; from detectron2.data import DatasetCatalog; "
        "print(json.dumps({'modules': sorted(sys.modules), 'names': DatasetCatalog.list()}))",
        env={"DETECTRON2_DATASETS": str(tmp_path)},
    )
    modules = set(out["modules"])
    loaded = sorted(m for m in READERS + HEAVY_LIBRARIES if m in modules)
    assert not loaded, f"import als_d2 imported {loaded}"
    expected = set(builtin.PREDEFINED_SPLITS_IMAGENET) | set(builtin.PREDEFINED_SPLITS_OPENIMAGES)
    expected |= set(builtin.PREDEFINED_SPLITS_WSOL) | {"synthetic_coco_train", "synthetic_coco_val"}
    expected |= {
        f"synthetic_{n}" for n in builtin.PREDEFINED_SPLITS_IMAGENET if n.startswith("imagenet_")
    }
    assert expected <= set(out["names"]), sorted(expected - set(out["names"]))


def test_loading_a_builtin_name_imports_its_reader(tmp_path):
    from als_d2.data.synthetic import generate_synthetic_imagenet

    generate_synthetic_imagenet(
        str(tmp_path / "synthetic_imagenet"),
        num_classes=2,
        train_per_class=2,
        val_per_class=2,
        coco_train=1,
        coco_val=1,
    )
    code = """
import json, sys
import als_d2
from detectron2.data import DatasetCatalog, MetadataCatalog

reader = "als_d2.data.datasets.imagenet"
before = reader in sys.modules
d = DatasetCatalog.get("synthetic_imagenet_val")
classes = MetadataCatalog.get("synthetic_imagenet_val").num_classes
after = reader in sys.modules
print(json.dumps({"before": before, "after": after, "n": len(d), "classes": classes}))
"""
    env = {"DETECTRON2_DATASETS": str(tmp_path)}
    out = _python(code, env=env)
    assert out == {"before": False, "after": True, "n": 4, "classes": 2}


def _metadata(name: str) -> dict:
    meta = dict(MetadataCatalog.get(name).as_dict())
    meta.pop("name")
    return meta


def test_builtin_metadata_is_what_the_readers_register_functions_set(tmp_path):
    """builtin.py registers without importing the readers; each name's metadata must still be
    what the reader's own register_* function sets (checked against it, name by name)."""
    from als_d2.data.datasets.imagenet import register_imagenet
    from als_d2.data.datasets.openimages import register_openimages
    from als_d2.data.datasets.wsol_metadata import register_wsol

    root = builtin.datasets_home()
    tag = uuid.uuid4().hex[:8]
    for name, (folder, split, layout, subset) in builtin.PREDEFINED_SPLITS_IMAGENET.items():
        class_root = os.path.join(root, "imagenet") if layout == "imagenetv2" else None
        register_imagenet(
            f"{name}_{tag}",
            os.path.join(root, folder),
            split,
            layout,
            subset,
            class_root=class_root,
        )
        assert _metadata(name) == _metadata(f"{name}_{tag}"), name
    for name, (folder, split) in builtin.PREDEFINED_SPLITS_OPENIMAGES.items():
        register_openimages(f"{name}_{tag}", os.path.join(root, folder), split)
        assert _metadata(name) == _metadata(f"{name}_{tag}"), name
    for name, (split, subset) in builtin.PREDEFINED_SPLITS_WSOL.items():
        meta = MetadataCatalog.get(name)
        register_wsol(
            f"{name}_{tag}",
            meta.metadata_dir,
            [meta.image_root, os.path.join(root, "imagenet")],
            subset,
            class_root=os.path.join(root, "imagenet"),
            split=split,
        )
        assert _metadata(name) == _metadata(f"{name}_{tag}"), name
    assert "imagenet_val" in DatasetCatalog.list()


def test_startup_benchmark_prints_its_ratios():
    """benchmarks/startup.py (no timing asserted: the figures' presence and consistency)."""
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "benchmarks", "startup.py"),
            "--reps",
            "1",
            "--tool",
            "tools/compare_transfer.py",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    median = result["median_s"]
    assert set(median) == {"python", "detectron2_engine", "detectron2_engine_als_d2", "tool_help"}
    assert all(v > 0 for v in median.values()) and result["reps"] == 1
    ratio = result["ratios"]["als_d2_over_detectron2_engine"]
    assert ratio == pytest.approx(
        median["detectron2_engine_als_d2"] / median["detectron2_engine"], rel=0.02
    )
    assert result["added_s"] == pytest.approx(
        median["detectron2_engine_als_d2"] - median["detectron2_engine"], abs=0.002
    )
