"""tools/submit.py before anything runs: the CPUs and memory each node's task asks SLURM
for (read back from the sbatch file submitit writes, with a stand-in ``sbatch`` that only
records it), and the refusals on a machine without SLURM or without the GPUs asked for."""

import os
import re

import pytest
import torch

from als_d2 import compat
from als_d2.engine.submit import MEM_GB_PER_PROCESS
from tiny_data import load_tool

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
R50 = os.path.join(REPO, "configs", "als_r50.yaml")  # MODEL.DEVICE cuda (detectron2's default)
DEMO = os.path.join(REPO, "configs", "demo", "als_r18.yaml")  # MODEL.DEVICE cpu
C4 = os.path.join(REPO, "configs", "COCO-Detection", "faster_rcnn_R_50_C4_1x.yaml")


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """``srun`` and ``sbatch`` on PATH: sbatch answers as SLURM does and submits nothing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "sbatch").write_text("#!/bin/sh\necho 'Submitted batch job 4242'\n")
    for tool in ("srun", "sbatch"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return tmp_path / "jobs"


def _sbatch(fake_slurm, *argv):
    """The #SBATCH options of the job tools/submit.py submits with ``argv``: {name: value}."""
    submitted = load_tool("submit").main(["--job-dir", str(fake_slurm / "%j"), *argv])
    assert submitted.job_id == "4242"
    script = (fake_slurm / "4242" / "4242_submission.sh").read_text()
    return dict(re.findall(r"^#SBATCH --([\w-]+)=(.*)$", script, flags=re.M))


@pytest.mark.parametrize(
    "tool, config, gpus, workers",
    [("cls", R50, 8, 6), ("cls", R50, 2, 0), ("det", C4, 4, 3)],
)
def test_cpus_and_memory_of_each_node_follow_the_config(fake_slurm, tool, config, gpus, workers):
    options = _sbatch(
        fake_slurm,
        *("--tool", tool, "--nodes", "4", "--gpus-per-node", str(gpus), "--config-file", config),
        *("DATALOADER.NUM_WORKERS", str(workers)),
    )
    processes = gpus + gpus * workers  # the node's trainers and their loader workers
    assert options["nodes"] == "4" and options["ntasks-per-node"] == "1"
    assert options["cpus-per-task"] == str(processes)
    assert options["mem"] == f"{int(processes * MEM_GB_PER_PROCESS)}GB"


def test_cpus_and_memory_flags_win(fake_slurm):
    options = _sbatch(
        fake_slurm,
        *("--tool", "cls", "--nodes", "4", "--gpus-per-node", "8", "--cpus-per-task", "80"),
        *("--mem", "400G", "--config-file", R50),
    )
    assert (options["cpus-per-task"], options["mem"]) == ("80", "400GB")
    options = _sbatch(
        fake_slurm, "--tool", "cls", "--mem-gb", "100", "--config-file", R50, "SEED", "2"
    )
    assert (options["cpus-per-task"], options["mem"]) == ("9", "100GB")  # Base: 8 workers


@pytest.fixture
def no_slurm(tmp_path, monkeypatch):
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no srun
    return tmp_path


def test_several_nodes_without_slurm_is_one_clear_line(no_slurm):
    with pytest.raises(SystemExit) as info:
        load_tool("submit").main(
            ["--tool", "cls", "--nodes", "4", "--job-dir", str(no_slurm / "%j")]
            + ["--config-file", DEMO]
        )
    message = str(info.value)
    assert re.fullmatch(r"error: --nodes 4: SLURM .*no srun on PATH.*--nodes 1", message), message


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for a machine without CUDA")
def test_local_job_without_the_gpus_is_refused_up_front(no_slurm):
    submit = load_tool("submit")
    job_dir = str(no_slurm / "jobs" / "%j")
    for cluster in (["--cluster", "local"], []):  # asked for, or the only one here
        with pytest.raises(SystemExit) as info:
            submit.main(
                ["--tool", "cls", *cluster, "--gpus-per-node", "2", "--job-dir", job_dir]
                + ["--config-file", R50]
            )
        message = str(info.value)
        assert message.startswith("error: ") and "\n" not in message
        assert "--gpus-per-node 2 with MODEL.DEVICE cuda" in message
        assert "no CUDA device" in message and "MODEL.DEVICE cpu" in message
    if not compat.launch_supports_cpu_workers():  # detectron2 v0.6: one CPU process only
        with pytest.raises(SystemExit, match=r"^error: --cluster local: --gpus-per-node 2 with "):
            submit.main(
                ["--tool", "cls", "--cluster", "local", "--gpus-per-node", "2"]
                + ["--job-dir", job_dir, "--config-file", DEMO]
            )
    assert not (no_slurm / "jobs").exists()  # nothing was submitted


def test_local_job_dir_gets_an_id_instead_of_a_literal_percent_j(no_slurm):
    jobs = no_slurm / "jobs"
    submitted = load_tool("submit").main(
        ["--tool", "cls", "--cluster", "local", "--job-dir", str(jobs / "%j")]
        + ["--config-file", DEMO, "--eval-only", "MODEL.WEIGHTS", str(no_slurm / "none.pth")]
    )
    try:
        submitted.wait()  # the tool stops at once: the weights file does not exist
    finally:
        if not submitted.done():
            submitted.cancel()
    (folder,) = os.listdir(jobs)  # submitit's local controller made its folder
    assert re.fullmatch(r"local_\d{8}_\d{6}", folder), folder
    log = submitted.paths.stdout
    assert os.path.dirname(log) == str(jobs / folder) and os.path.exists(log)
