"""The command-line surface of tools/: executable scripts with a shebang, and a missing
dataset root reported in one line that says where the data must be and how to make it."""

import os
import stat
import subprocess
import uuid

import als_d2  # noqa: F401  (detectron2 bootstrap first)
import pytest
from detectron2.data import DatasetCatalog

from als_d2.data.datasets.builtin import register_synthetic_imagenet
from als_d2.data.datasets.catalog import DatasetRootMissingError
from forked_tools import run_tool
from tiny_data import load_tool, tiny_det_opts

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = sorted(f for f in os.listdir(os.path.join(REPO, "tools")) if f.endswith(".py"))


def _git_modes():
    """{tools/x.py: mode} as git records them, or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-s", "tools"], cwd=REPO, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    modes = {}
    for line in out.stdout.splitlines():
        meta, path = line.split("\t", 1)
        modes[path] = meta.split()[0]
    return modes or None


@pytest.mark.parametrize("name", TOOLS)
def test_tools_are_executable_scripts(name):
    path = os.path.join(REPO, "tools", name)
    with open(path) as f:
        assert f.readline().rstrip("\n") == "#!/usr/bin/env python", (
            f"tools/{name}: first line is not the shebang"
        )
    assert os.stat(path).st_mode & stat.S_IXUSR, f"tools/{name} is not executable (chmod +x)"
    modes = _git_modes()
    if modes is not None and f"tools/{name}" in modes:
        # what a clone gets: git's recorded mode, or (core.fileMode true) the working tree's
        # executable bit, which the next commit of the file records
        file_mode = (
            subprocess.run(
                ["git", "config", "--bool", "core.fileMode"],
                cwd=REPO,
                capture_output=True,
                text=True,
            ).stdout.strip()
            != "false"
        )
        assert modes[f"tools/{name}"] == "100755" or file_mode, (
            f"tools/{name}: git records mode {modes[f'tools/{name}']} and core.fileMode is false: "
            f"git update-index --chmod=+x tools/{name}"
        )


def test_missing_synthetic_root_names_the_variable_and_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    prefix = f"t{uuid.uuid4().hex[:8]}"
    root = os.path.join(str(tmp_path), "synthetic_imagenet")
    register_synthetic_imagenet(root, prefix=prefix)
    with pytest.raises(DatasetRootMissingError) as info:
        DatasetCatalog.get(f"{prefix}_imagenet_train_boxed")
    message = str(info.value)
    assert "DETECTRON2_DATASETS" in message and root in message
    assert (
        "tools/make_synthetic_imagenet.py --root $DETECTRON2_DATASETS/synthetic_imagenet" in message
    )
    # any other root: the command names it
    other = str(tmp_path / "elsewhere")
    register_synthetic_imagenet(other, prefix=prefix + "o")
    with pytest.raises(DatasetRootMissingError, match=f"--root {other}"):
        DatasetCatalog.get(f"{prefix}o_imagenet_val")


def _tool_error_line(tmp_path, tool: str, argv) -> str:
    """Run ``tools/<tool>.py argv`` in ``tmp_path`` (datasets under ``tmp_path/datasets``):
    it must fail without a traceback; returns its one error line."""
    proc = run_tool(
        [os.path.join(REPO, "tools", f"{tool}.py"), *argv],
        cwd=str(tmp_path),
        env=dict(os.environ, DETECTRON2_DATASETS=str(tmp_path / "datasets")),
        timeout=300,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return _the_error_line(proc.stderr)


def _the_error_line(stderr: str) -> str:
    """The one ``error: ...`` line of a failed tool's stderr, which ends with it (library
    warnings, e.g. torch's FutureWarnings on detectron2 main, may come before)."""
    lines = stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], stderr[-3000:]
    return errors[0]


def _failing_run_last_line(tmp_path, tool: str, config: str, *opts, **env) -> str:
    """Run ``tools/<tool>.py --config-file config OUTPUT_DIR tmp_path/out *opts`` in
    ``tmp_path`` (DETECTRON2_DATASETS=tmp_path/datasets, and ``env``): it must fail without a
    traceback; returns the last line of its stderr."""
    proc = run_tool(
        [os.path.join(REPO, "tools", f"{tool}.py"), "--config-file", config]
        + ["OUTPUT_DIR", str(tmp_path / "out"), *opts],
        cwd=str(tmp_path),
        env=dict(os.environ, DETECTRON2_DATASETS=str(tmp_path / "datasets"), **env),
        timeout=300,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc.stderr.strip().splitlines()[-1]


def test_train_cls_with_missing_dataset_root_is_one_line(tmp_path):
    config = os.path.join(REPO, "configs", "demo", "als_r18.yaml")
    last = _failing_run_last_line(tmp_path, "train_cls", config)
    assert last.startswith("error: dataset 'synthetic_imagenet_train_boxed'")
    assert (
        os.path.join(str(tmp_path / "datasets"), "synthetic_imagenet") in last
        and "DETECTRON2_DATASETS" in last
    )
    assert "tools/make_synthetic_imagenet.py --root $DETECTRON2_DATASETS/synthetic_imagenet" in last


@pytest.mark.parametrize("tool", ["train_cls", "train_det"])
def test_a_config_value_that_cannot_work_is_one_line(tmp_path, tool):
    """A user's bad config value: one line naming the key, no traceback."""
    config = {
        "train_cls": os.path.join(REPO, "configs", "demo", "als_r18.yaml"),
        "train_det": os.path.join(
            REPO, "configs", "COCO-Detection", "demo", "faster_rcnn_R18_C4_cpu.yaml"
        ),
    }[tool]
    bad = {"train_cls": ["MODEL.ALS.BETA", "2.0"], "train_det": ["MODEL.DEVICE", "cuda:7"]}[tool]
    last = _failing_run_last_line(tmp_path, tool, config, *bad, CUDA_VISIBLE_DEVICES="")
    assert last.startswith(f"error: config key {bad[0]} = "), last


def test_make_synthetic_imagenet_help_says_where_the_data_must_live():
    text = load_tool("make_synthetic_imagenet").build_parser().format_help()
    assert (
        "$DETECTRON2_DATASETS/synthetic_imagenet" in text
        and "DETECTRON2_DATASETS defaults to ./datasets" in text
    )


def test_gitignore_matches_a_symlinked_venv():
    """``.venv/`` matches only a directory; a venv linked in (``.venv -> /elsewhere``) is a
    symlink, so the pattern must be ``.venv``."""
    with open(os.path.join(REPO, ".gitignore")) as f:
        lines = [line.strip() for line in f]
    assert ".venv" in lines
    probe = (
        f"tools/no_such_dir_{uuid.uuid4().hex[:6]}/.venv"  # not a directory: as a symlink is seen
    )
    try:
        proc = subprocess.run(
            ["git", "check-ignore", "--no-index", "-q", probe], cwd=REPO, capture_output=True
        )
    except OSError:
        return
    if proc.returncode in (0, 1):  # 128: not a git checkout
        assert proc.returncode == 0, f"{probe} is not ignored"


def test_dataset_stats_labels_bars_with_class_names(tmp_path):
    tool = load_tool("dataset_stats")
    counts = tool.np.array([1, 5, 3, 0])
    names = ["tench", "goldfish", "shark", "ray"]
    out = str(tmp_path / "counts.png")
    assert tool.draw(counts, out, "t", "count", class_names=names) == [
        "goldfish",
        "shark",
        "tench",
        "ray",
    ]
    assert os.path.getsize(out) > 0
    assert tool.draw(counts, out, "t", "label", class_names=names) == names
    assert tool.draw(counts, out, "t", "count") == [
        "1",
        "2",
        "0",
        "3",
    ]  # without names: the labels, not ranks


@pytest.mark.parametrize("tool", ["train_cls", "train_det"])
@pytest.mark.parametrize("flag", ["--resume", "--eval-only"])
def test_boolean_flags_after_the_overrides_are_flags(tool, flag):
    """``--resume`` / ``--eval-only`` typed after the ``KEY VALUE`` overrides set the flag and
    leave the overrides in pairs (detectron2's REMAINDER alone would keep them in ``opts``)."""
    parser = load_tool(tool).default_argument_parser
    overrides = ["SOLVER.BASE_LR", "0.1", "OUTPUT_DIR", "out"]
    for argv in (
        ["--config-file", "a.yaml", *overrides, flag],
        ["--config-file", "a.yaml", *overrides[:2], flag, *overrides[2:]],
    ):
        args = parser().parse_args(argv)
        assert getattr(args, flag[2:].replace("-", "_")) is True, argv
        assert args.opts == overrides, argv
    # a value that looks like a flag stays a value
    args = parser().parse_args(["OUTPUT_DIR", "--resume"])
    assert args.opts == ["OUTPUT_DIR", "--resume"] and args.resume is False


def test_other_flags_after_the_overrides_are_a_usage_error(capsys):
    parser = load_tool("train_cls").default_argument_parser()
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["SOLVER.BASE_LR", "0.1", "--num-gpus", "2"])
    assert info.value.code == 2
    assert "--num-gpus after the KEY VALUE config overrides" in capsys.readouterr().err


def test_eval_only_after_the_overrides_runs_the_evaluation(tmp_path):
    """Through the tool: ``--eval-only`` at the end evaluates MODEL.WEIGHTS (here a missing
    file, reported in one line before any model is built) instead of failing on the
    override list's odd length."""
    config = os.path.join(REPO, "configs", "demo", "als_r18.yaml")
    missing = str(tmp_path / "no_such_weights.pth")
    last = _failing_run_last_line(
        tmp_path,
        "train_cls",
        config,
        "MODEL.WEIGHTS",
        missing,
        "MODEL.DEVICE",
        "cpu",
        "--eval-only",
    )
    assert "MODEL.WEIGHTS" in last and missing in last, last


def test_default_rendezvous_port_is_outside_the_ephemeral_range(tmp_path):
    from urllib.parse import urlparse

    from als_d2.engine.launch import default_dist_url, ephemeral_port_range

    port = urlparse(default_dist_url()).port
    assert 1024 <= port <= 65535
    proc_file = "/proc/sys/net/ipv4/ip_local_port_range"
    if os.path.exists(proc_file):
        with open(proc_file) as f:
            first, last = (int(v) for v in f.read().split()[:2])
        assert not first <= port <= last, (port, first, last)
    assert not 32768 <= port <= 60999 or not os.path.exists(proc_file)
    # the tools' parser takes it as --dist-url's default
    args = load_tool("train_cls").default_argument_parser().parse_args([])
    assert args.dist_url == default_dist_url()
    # a range file is read as the kernel writes it ("first<TAB>last\n")
    path = tmp_path / "range"
    path.write_text("1024\t20500\n")
    assert ephemeral_port_range(str(path)) == (1024, 20500)
    assert ephemeral_port_range(str(tmp_path / "missing")) == (32768, 60999)


@pytest.mark.parametrize(
    "key, typo, meant",
    [
        ("DATASETS.TRAIN", "synthetic_imagenet_trian_boxed", "synthetic_imagenet_train_boxed"),
        ("DATASETS.TEST", "synthetic_imagenet_vall", "synthetic_imagenet_val"),
    ],
)
def test_unregistered_dataset_is_one_line_before_training(tmp_path, key, typo, meant):
    """A misspelled dataset name (train or test) stops train_cls at start-up, in one line
    naming the key, the name and its close matches (no data exists: nothing was loaded)."""
    config = os.path.join(REPO, "configs", "demo", "als_r18.yaml")
    line = _tool_error_line(
        tmp_path,
        "train_cls",
        ["--config-file", config, "OUTPUT_DIR", str(tmp_path / "out")]
        + [key, f'("{typo}",)', "MODEL.DEVICE", "cpu"],
    )
    assert line.startswith(f"error: config key {key} = ")
    assert f"dataset '{typo}' is not registered" in line and repr(meant) in line
    assert not os.path.exists(tmp_path / "out" / "log.txt")  # stopped before the set-up


@pytest.mark.parametrize("workers", [0, 1])
def test_unreadable_val_image_at_the_end_of_training_is_one_line(tmp_path, workers):
    """A truncated val JPEG (header intact: indexed, then undecodable) stops the evaluation
    after training in one line naming the file and INPUT.CLS.SKIP_UNREADABLE_EVAL, with or
    without DataLoader worker processes; with the key set, the run completes, each
    unreadable file warned once and their number reported once."""
    import glob

    from tiny_data import synthetic_imagenet_env

    env = dict(os.environ, **synthetic_imagenet_env(str(tmp_path)))
    val = sorted(
        glob.glob(os.path.join(env["DETECTRON2_DATASETS"], "**", "val", "*.JPEG"), recursive=True)
    )
    assert val
    data = open(val[0], "rb").read()
    with open(val[0], "wb") as f:
        f.write(data[: len(data) // 2])
    config = os.path.join(REPO, "configs", "demo", "als_r18.yaml")
    opts = ["MODEL.DEVICE", "cpu", "MODEL.CLASSIFIER.NUM_CLASSES", "4"]
    opts += ["MODEL.RESNETS.OUT_FEATURES", '["res3"]', "MODEL.CLASSIFIER.IN_FEATURE", "res3"]
    opts += ["INPUT.CLS.CROP_SIZE", "32", "INPUT.CLS.TEST_RESIZE", "36", "SOLVER.EPOCHS", "0"]
    opts += ["SOLVER.MAX_ITER", "1", "SOLVER.STEPS", "()", "SOLVER.WARMUP_ITERS", "0"]
    opts += ["SOLVER.IMS_PER_BATCH", "8", "DATALOADER.NUM_WORKERS", str(workers)]

    def run(*extra):
        return run_tool(
            [os.path.join(REPO, "tools", "train_cls.py"), "--config-file"]
            + [config, "OUTPUT_DIR", str(tmp_path / "out"), *opts, *extra],
            cwd=str(tmp_path),
            env=env,
            timeout=600,
        )

    proc = run()
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    line = _the_error_line(proc.stderr)
    assert line.startswith(f"error: cannot decode image {val[0]!r}: truncated file"), line
    assert "set INPUT.CLS.SKIP_UNREADABLE_EVAL True" in line
    if workers == 0:
        # with the key set, and a second unreadable val image, in 2 loader workers: each
        # file warned once (by the mapper, in a worker), the total reported once
        data = open(val[1], "rb").read()
        with open(val[1], "wb") as f:
            f.write(data[: len(data) // 2])
        proc = run("INPUT.CLS.SKIP_UNREADABLE_EVAL", "True", "DATALOADER.NUM_WORKERS", "2")
        assert proc.returncode == 0, proc.stderr[-3000:]
        lines = (proc.stderr + proc.stdout).splitlines()
        for path in val[:2]:
            assert len([ln for ln in lines if f"Skipping unreadable image {path}:" in ln]) == 1
        totals = [ln for ln in lines if "unreadable samples" in ln]
        assert len(totals) == 1 and "skipped 2 unreadable samples" in totals[0], totals


DEMO_CLS = os.path.join(REPO, "configs", "demo", "als_r18.yaml")
DEMO_DET = os.path.join(REPO, "configs", "COCO-Detection", "demo", "faster_rcnn_R18_C4_cpu.yaml")


@pytest.mark.parametrize(
    "tool, argv, expected",
    [
        (
            "train_cls",
            ["--config-file", DEMO_CLS, "MODEL.ALS.BETTA", "0.5"],
            "error: config key MODEL.ALS.BETTA (on the command line) does not exist; "
            "did you mean MODEL.ALS.BETA?",
        ),
        (
            "train_det",
            ["--config-file", DEMO_DET, "SOLVER.BASE_LRR", "0.5"],
            "error: config key SOLVER.BASE_LRR (on the command line) does not exist; "
            "did you mean SOLVER.BASE_LR?",
        ),
        (
            "train_cls",
            ["--config-file", DEMO_CLS, "SOLVER.BASE_LR", "abc"],
            "error: config key SOLVER.BASE_LR = 'abc': expected a value of type float",
        ),
        ("train_cls", ["SOLVER.BASE_LR", "0.1"], "error: --config-file is missing"),
        ("train_det", ["--config-file", "no_such.yaml"], "error: --config-file no_such.yaml: no"),
        (
            "train_cls",
            ["--config-file", DEMO_CLS, "MODEL.ALS.BETA"],
            "error: config override MODEL.ALS.BETA has no value",
        ),
        (
            "train_cls",
            ["--config-file", DEMO_CLS, "DATASETS.TRAIN", '("imagenet_val_wsol",)']
            + ["MODEL.CLASSIFIER.NUM_CLASSES", "0", "MODEL.DEVICE", "cpu"],
            "error: dataset 'imagenet_val_wsol': {datasets}/wsolevaluation/metadata/ILSVRC/test "
            "does not exist",
        ),
    ],
    ids=["key-typo", "det-key-typo", "wrong-type", "no-config", "missing-config", "odd", "wsol"],
)
def test_user_mistakes_are_one_line(tmp_path, tool, argv, expected):
    """Mistakes of the command line or the data tree: a non-zero exit and one line (the
    closest key for a typo), no traceback."""
    datasets = str(tmp_path / "datasets")
    line = _tool_error_line(
        tmp_path,
        tool,
        [*argv] + ["OUTPUT_DIR", str(tmp_path / "out")] * (len(argv) % 2 == 0),  # odd stays odd
    )
    assert line.startswith(expected.format(datasets=datasets)), line


def test_train_det_on_one_s_own_coco_files(tmp_path):
    """DATASETS.COCO_FILES registers a user's COCO-format files by name: train_det trains two
    iterations on one and evaluates on the other (files without iscrowd / area, as many
    exports are), from the command line alone."""
    import json

    from coco_fixtures import write_coco_dataset

    train_json, train_images = write_coco_dataset(
        str(tmp_path / "mine"), num_images=4, seed=0, json_path=str(tmp_path / "mine" / "t.json")
    )
    val_json, val_images = write_coco_dataset(
        str(tmp_path / "mine"),
        num_images=2,
        seed=1,
        image_root=str(tmp_path / "mine" / "val"),
        json_path=str(tmp_path / "mine" / "v.json"),
    )
    with open(val_json) as f:
        data = json.load(f)
    for ann in data["annotations"]:
        del ann["iscrowd"], ann["area"]
    with open(val_json, "w") as f:
        json.dump(data, f)
    files = [["my_train", train_json, train_images], ["my_val", val_json, val_images]]
    out = tmp_path / "out"
    opts = ["DATASETS.COCO_FILES", json.dumps(files), "DATASETS.TRAIN", '("my_train",)']
    opts += ["DATASETS.TEST", '("my_val",)', "MODEL.ROI_HEADS.NUM_CLASSES", "3"]
    opts += ["MODEL.WEIGHTS", "", "SOLVER.WARMUP_ITERS", "0", "OUTPUT_DIR", str(out)]
    opts += tiny_det_opts(64, 107)
    proc = run_tool(
        [os.path.join(REPO, "tools", "train_det.py"), "--config-file", DEMO_DET] + opts,
        cwd=str(tmp_path),
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((out / "transfer_metrics.json").read_text())
    assert record["datasets"] == ["my_val"]
    assert {"AP", "AP50", "AR100"} <= set(record["results"]["bbox"])
    log = (out / "log.txt").read_text()
    assert "Loaded 4 images in COCO format from " + train_json in log
    assert f"{val_json}: {len(data['annotations'])} annotation(s) without 'iscrowd'" in log

    # a missing file: one line naming the key and the file
    bad = [["my_val2", str(tmp_path / "nope.json"), val_images]]
    proc = run_tool(
        [os.path.join(REPO, "tools", "train_det.py"), "--config-file", DEMO_DET]
        + ["DATASETS.COCO_FILES", json.dumps(bad), "DATASETS.TEST", '("my_val2",)'],
        cwd=str(tmp_path),
        timeout=300,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    line = _the_error_line(proc.stderr)
    assert "DATASETS.COCO_FILES" in line and str(tmp_path / "nope.json") in line


@pytest.mark.parametrize(
    "dataset, expected",
    [
        ("synthetic_imagenet_vall", "error: --dataset 'synthetic_imagenet_vall' is not registered"),
        ("imagenet_val_wsol", "error: dataset 'imagenet_val_wsol': {datasets}/wsolevaluation/"),
    ],
)
def test_dataset_stats_bad_dataset_is_one_line(tmp_path, dataset, expected):
    datasets = str(tmp_path / "datasets")
    line = _tool_error_line(
        tmp_path, "dataset_stats", ["--dataset", dataset, "--output", str(tmp_path / "counts.png")]
    )
    assert line.startswith(expected.format(datasets=datasets)), line
    if dataset.endswith("vall"):
        assert "'synthetic_imagenet_val'" in line
