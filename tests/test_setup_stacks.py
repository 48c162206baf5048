"""`make setup DETECTRON2_SRC=...` and the two-stack CI script, without building anything:
the installer's source identity and install record (tools/install_detectron2.py), and
.ci/run's control flow with `make` replaced by a recorder on PATH."""

import hashlib
import importlib.util
import io
import os
import subprocess
import sys
import tarfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INSTALLER = os.path.join(ROOT, "tools", "install_detectron2.py")


def load_installer():
    spec = importlib.util.spec_from_file_location("install_detectron2", INSTALLER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


inst = load_installer()


def write_tree(root, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def write_archive(path, files):
    with tarfile.open(path, "w:gz") as tar:
        for rel, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo("detectron2/" + rel)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


SOURCE = {
    "setup.py": "from setuptools import setup\nsetup(name='detectron2')\n",
    "detectron2/__init__.py": "x = 1\n",
}


def test_archive_identity_is_its_sha256(tmp_path):
    archive = write_archive(tmp_path / "d2.tar.gz", SOURCE)
    ident = inst.identify_source(str(archive))
    assert ident == {
        "kind": "archive",
        "sha256": hashlib.sha256(archive.read_bytes()).hexdigest(),
        "path": str(archive),
    }


def test_known_archive_with_other_content_is_refused(tmp_path):
    archive = write_archive(tmp_path / "detectron2-main-02b5c4e.tar.gz", SOURCE)
    with pytest.raises(
        SystemExit,
        match=r"DETECTRON2_SRC=.*detectron2-main-02b5c4e.tar.gz: sha256 .* does not match",
    ):
        inst.identify_source(str(archive))


def test_tree_identity_follows_sources_not_build_outputs(tmp_path):
    tree = write_tree(tmp_path / "d2", SOURCE)
    first = inst.identify_source(str(tree))
    assert first["kind"] == "tree" and first["path"] == str(tree)
    write_tree(
        tree,
        {
            "build/temp/x.o": "obj",
            "detectron2/__pycache__/a.pyc": "c",
            "detectron2/_C.so": "so",
            "detectron2.egg-info/PKG-INFO": "meta",
            ".git/HEAD": "ref",
        },
    )
    assert inst.identify_source(str(tree))["sha256"] == first["sha256"]
    write_tree(tree, {"detectron2/__init__.py": "x = 2\n"})
    assert inst.identify_source(str(tree))["sha256"] != first["sha256"]
    # the same content elsewhere is the same source
    copy = write_tree(tmp_path / "copy", SOURCE)
    assert inst.same_source(inst.identify_source(str(copy)), first)


@pytest.mark.parametrize(
    "make_path, message",
    [
        (lambda p: p / "missing.tar.gz", "no such file or directory"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "no setup.py"),
    ],
)
def test_bad_source_is_one_line_naming_it(tmp_path, make_path, message):
    path = make_path(tmp_path)
    out = subprocess.run(
        [sys.executable, INSTALLER, "--identify", str(path)], capture_output=True, text=True
    )
    assert out.returncode != 0
    assert out.stderr.strip().count("\n") == 0
    assert f"DETECTRON2_SRC={path}" in out.stderr and message in out.stderr


def test_default_identity_follows_the_v06_pins():
    ident = inst.identify_source("")
    assert ident["kind"] == "default"
    with open(os.path.join(ROOT, "tools", "constraints-detectron2-v0.6.txt"), "rb") as f:
        assert ident["sha256"] == hashlib.sha256(f.read()).hexdigest()


def test_record_decides_what_is_up_to_date(tmp_path):
    archive = write_archive(tmp_path / "d2.tar.gz", SOURCE)
    wanted = inst.identify_source(str(archive))
    record_path, constraints = str(tmp_path / "record.json"), str(tmp_path / "constraints.txt")
    assert inst.read_record(record_path) is None
    inst.write_record(record_path, wanted, "torch==2.14.1", "detectron2 0.6 from archive")
    open(constraints, "w").close()
    record = inst.read_record(record_path)
    assert record["installed"] == "detectron2 0.6 from archive"
    assert inst.up_to_date(record, wanted, "torch==2.14.1", constraints)
    assert not inst.up_to_date(record, wanted, "torch==2.9.1", constraints)  # other torch: rebuild
    assert not inst.up_to_date(
        record, inst.identify_source(""), "torch==2.14.1", constraints
    )  # switch
    other = dict(wanted, sha256="0" * 64)
    assert not inst.up_to_date(record, other, "torch==2.14.1", constraints)
    os.remove(constraints)
    assert not inst.up_to_date(record, wanted, "torch==2.14.1", constraints)
    # a file this tool did not write is not a record
    with open(record_path, "w") as f:
        f.write("torch==2.14.1\n")
    assert inst.read_record(record_path) is None


def test_cli_returns_at_once_when_the_record_matches(tmp_path):
    """Nothing is imported or installed: the constraints file keeps its time, no output."""
    archive = write_archive(tmp_path / "d2.tar.gz", SOURCE)
    record_path, constraints = tmp_path / "record.json", tmp_path / "constraints.txt"
    inst.write_record(
        str(record_path), inst.identify_source(str(archive)), "torch==9", "detectron2 from archive"
    )
    constraints.write_text("")
    os.utime(constraints, (1_000_000, 1_000_000))
    out = subprocess.run(
        [
            sys.executable,
            INSTALLER,
            "--constraints-out",
            str(constraints),
            "--record",
            str(record_path),
            "--torch-spec",
            "torch==9",
            "--src",
            str(archive),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "" and out.stderr == ""
    assert os.stat(constraints).st_mtime == 1_000_000


# --- .ci/run ------------------------------------------------------------------------------

FAKE_MAKE = """#!/usr/bin/env bash
echo "$*" >> "$MAKE_LOG"
case " $* " in *" $FAIL_ON "*) exit 2 ;; esac
exit 0
"""


def run_ci(tmp_path, fail_on="never", env_src=None, vendor=False):
    """Run a copy of .ci/run in tmp/repo, `make` recording its arguments; returns
    (completed process, the make command lines)."""
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    (repo / ".ci" / "run").write_text(open(os.path.join(ROOT, ".ci", "run")).read())
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "make").write_text(FAKE_MAKE)
    (bin_dir / "make").chmod(0o755)
    if vendor:
        (tmp_path / "shared" / "vendor").mkdir(parents=True)
        (tmp_path / "shared" / "vendor" / "detectron2-main-02b5c4e.tar.gz").write_bytes(b"archive")
    env = {k: v for k, v in os.environ.items() if k != "ALS_D2_DETECTRON2_MAIN_SRC"}
    env.update(
        PATH=f"{bin_dir}:{os.environ['PATH']}", MAKE_LOG=str(tmp_path / "make.log"), FAIL_ON=fail_on
    )
    if env_src is not None:
        env["ALS_D2_DETECTRON2_MAIN_SRC"] = env_src
    out = subprocess.run(
        ["bash", str(repo / ".ci" / "run")], capture_output=True, text=True, env=env
    )
    log = tmp_path / "make.log"
    return out, log.read_text().splitlines() if log.exists() else []


def test_ci_without_the_archive_tests_the_default_stack_and_says_it_skipped(tmp_path):
    out, calls = run_ci(tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert calls == ["setup", "env", "lint", "test"]
    skipped = [ln for ln in out.stdout.splitlines() if "stack 2/2" in ln]
    assert (
        len(skipped) == 1
        and "skipped" in skipped[0]
        and "detectron2-main-02b5c4e.tar.gz is absent" in skipped[0]
    )


def test_ci_tests_both_stacks_default_first(tmp_path):
    out, calls = run_ci(tmp_path, vendor=True)
    assert out.returncode == 0, out.stdout + out.stderr
    src = "DETECTRON2_SRC=../shared/vendor/detectron2-main-02b5c4e.tar.gz"
    assert calls == [
        "setup",
        "env",
        "lint",
        "test",
        f"setup VENV=.venv-d2main {src}",
        f"env VENV=.venv-d2main {src}",
        f"test VENV=.venv-d2main {src}",
    ]
    assert "stack 1/2: default" in out.stdout and "stack 2/2: detectron2 main" in out.stdout
    for stage in ("default: set-up", "lint", "default: tests", "main: set-up", "main: tests"):
        assert any(
            ln.startswith(f"[ci] {stage}: ok in ") and ln.endswith(" s")
            for ln in out.stdout.splitlines()
        ), stage


def test_ci_env_override_names_the_source(tmp_path):
    src = tmp_path / "elsewhere" / "d2-src"
    src.mkdir(parents=True)
    out, calls = run_ci(tmp_path, env_src=str(src))
    assert out.returncode == 0, out.stdout + out.stderr
    assert calls[4:] == [
        f"{target} VENV=.venv-d2main DETECTRON2_SRC={src}" for target in ("setup", "env", "test")
    ]


def test_ci_env_override_to_a_missing_source_fails(tmp_path):
    out, calls = run_ci(tmp_path, env_src=str(tmp_path / "missing.tar.gz"), vendor=True)
    assert out.returncode != 0
    assert calls == ["setup", "env", "lint", "test"]
    assert (
        f"ALS_D2_DETECTRON2_MAIN_SRC={tmp_path / 'missing.tar.gz'}: no such file or directory"
        in out.stderr
    )


@pytest.mark.parametrize(
    "fail_on, failed_stage, expected_calls",
    [
        ("test", "default: tests", 7),  # the default stack fails: the main stack still runs
        ("lint", "lint", 7),  # lint fails: the tests of both stacks still run
        ("VENV=.venv-d2main", "main: set-up", 5),  # the main set-up fails: its tests do not run
    ],
)
def test_ci_fails_when_either_stack_fails(tmp_path, fail_on, failed_stage, expected_calls):
    out, calls = run_ci(tmp_path, fail_on=fail_on, vendor=True)
    assert out.returncode == 1
    assert len(calls) == expected_calls
    assert f"[ci] {failed_stage}: FAILED (exit 2) in " in out.stdout
    assert f"FAILED: {failed_stage}" in out.stderr
