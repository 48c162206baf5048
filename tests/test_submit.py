"""tools/submit.py and als_d2/engine/submit.py: SLURM jobs on submitit.

- the launcher arguments of each node from the scheduler's environment (a 2-node x 4-GPU
  SLURM job's variables, read by submitit's own SlurmJobEnvironment), checked against
  detectron2's rank formula and parsed by detectron2's argument parser;
- the StopOnSignal hook in process: a signal during step k saves model_k and stops; the
  resumed run ends with the same weights as an uninterrupted one;
- end to end on submitit's LocalExecutor: tools/train_cls.py as a job, SIGUSR2 sent to the
  job's task (as SLURM does before the time limit; the local executor only sends it on its
  own timer), checkpoint, requeue, resume: the final weights and logged metrics equal those
  of an uninterrupted tools/train_cls.py run, bitwise.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import als_d2  # noqa: F401  (first: the spawned workers import this module)
import pytest
import submitit
import torch
from detectron2.config import get_cfg
from detectron2.engine import HookBase, default_argument_parser
from detectron2.utils.env import seed_all_rng

from als_d2.engine import ClassificationTrainer
from als_d2.engine.preemption import REPORT_ENV, SIGNALS_ENV, TrainingStopped, parse_signals
from als_d2.engine.submit import TrainJob, build_executor, launch_arguments
from forked_tools import run_tool
from tiny_data import assert_same_final_weights, load_tool, register_tiny, tiny_cls_cfg
from tiny_data import synthetic_imagenet_env, tiny_train_cls_opts

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(REPO, "tools", "train_cls.py")
CONFIG = os.path.join(REPO, "configs", "demo", "Base-Demo-R18.yaml")
TIMEOUT = 300  # per wait: only to stop a hung test
MAX_ITER, PERIOD = 40, 5
# tools/train_cls.py on the synthetic ImageNet: a tiny R18 at 32 px, ALS targets, checkpoints every
# 5 steps
OPTS = tiny_train_cls_opts(MAX_ITER, PERIOD)
LOGGED = (
    "total_loss",
    "lr",
    "data/skipped_samples",
)  # and loss_*, als/*: what the project logs deterministically


def _metrics(out_dir):
    """{iteration: the deterministic scalars of its last record in metrics.json}."""
    rows = {}
    with open(os.path.join(out_dir, "metrics.json")) as f:
        for line in f:
            row = json.loads(line)
            rows.setdefault(row["iteration"], {}).update(
                {k: v for k, v in row.items() if k in LOGGED or k.startswith(("loss_", "als/"))}
            )
    return rows


# ---------------------------------------------------------------- environment -> launch()


def _slurm_env(monkeypatch, node, ntasks=2, nodes=2, nodelist="gpu-a[017-018]", job_id="4242"):
    """The variables SLURM sets in task ``node`` of a job (one task per node)."""
    for key in list(os.environ):
        if key.startswith(("SLURM_", "SUBMITIT_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    for key, value in dict(
        SLURM_JOB_ID=job_id,
        SLURM_NTASKS=ntasks,
        SLURM_JOB_NUM_NODES=nodes,
        SLURM_NODEID=node,
        SLURM_PROCID=node,
        SLURM_LOCALID=0,
        SLURM_JOB_NODELIST=nodelist,
    ).items():
        monkeypatch.setenv(key, str(value))
    return submitit.JobEnvironment()


def test_two_nodes_of_four_gpus_from_the_slurm_environment(monkeypatch):
    seen_ranks, urls = [], set()
    for node in (0, 1):
        env = _slurm_env(monkeypatch, node)
        assert type(env).__name__ == "SlurmJobEnvironment"
        launch = launch_arguments(env, gpus_per_node=4)
        assert (launch.num_gpus, launch.num_machines, launch.machine_rank) == (4, 2, node)
        assert launch.world_size == 8
        # detectron2's _distributed_worker:
        # global_rank = machine_rank * num_gpus_per_machine + local_rank
        assert launch.ranks == [node * 4 + local for local in range(4)]
        seen_ranks += launch.ranks
        host, port = re.fullmatch(r"tcp://([^:]+):(\d+)", launch.dist_url).groups()
        assert host == "gpu-a017"  # the first node of the job's node list
        assert 1024 < int(port) < 65536
        urls.add(launch.dist_url)
        parsed = default_argument_parser().parse_args(
            launch.flags() + ["--config-file", "x.yaml", "SEED", "1"]
        )
        assert (parsed.num_gpus, parsed.num_machines, parsed.machine_rank, parsed.dist_url) == (
            4,
            2,
            node,
            launch.dist_url,
        )
        assert parsed.opts == ["SEED", "1"]
    assert sorted(seen_ranks) == list(range(8))
    assert len(urls) == 1  # both nodes meet at the same address
    assert launch_arguments(env, 4, port=29511).dist_url == "tcp://gpu-a017:29511"
    other_job = launch_arguments(_slurm_env(monkeypatch, 0, job_id="4243"), 4)
    assert other_job.dist_url != launch.dist_url  # another job, another default port


def test_one_task_per_node_is_required(monkeypatch):
    env = _slurm_env(monkeypatch, 1, ntasks=8)  # tasks_per_node=4: not what launch() expects
    with pytest.raises(ValueError, match="one task per node"):
        launch_arguments(env, 4)


def test_command_puts_launch_flags_first_and_resume_only_where_it_belongs(monkeypatch):
    launch = launch_arguments(_slurm_env(monkeypatch, 1), 4)
    job = TrainJob(
        TRAIN,
        ["--config-file", CONFIG, "SOLVER.STEPS", "(15,)", "OUTPUT_DIR", "out"],
        gpus_per_node=4,
    )
    again = job.requeued()
    assert (job.resume, job.requeues, again.resume, again.requeues) == (False, 0, True, 1)
    cmd = again.command(launch)
    assert cmd[:2] == [sys.executable, TRAIN]
    parsed = default_argument_parser().parse_args(cmd[2:])
    assert parsed.resume and parsed.machine_rank == 1 and parsed.num_gpus == 4
    assert parsed.opts == ["SOLVER.STEPS", "(15,)", "OUTPUT_DIR", "out"]
    evaluation = TrainJob(
        TRAIN, ["--config-file", CONFIG, "--eval-only", "MODEL.WEIGHTS", "m.pth"]
    ).requeued()
    assert (
        not evaluation.resume
    )  # --eval-only --resume would evaluate OUTPUT_DIR's checkpoint instead
    with pytest.raises(ValueError, match="--dist-url"):
        TrainJob(TRAIN, ["--dist-url=tcp://h:1", "--config-file", CONFIG])


def test_slurm_parameters_of_the_executor(tmp_path, monkeypatch):
    srun = tmp_path / "bin" / "srun"  # submitit's SlurmExecutor wants srun on PATH (never run here)
    srun.parent.mkdir()
    srun.write_text("#!/bin/sh\nexit 1\n")
    srun.chmod(0o755)
    monkeypatch.setenv("PATH", f"{srun.parent}{os.pathsep}{os.environ['PATH']}")
    executor = build_executor(
        str(tmp_path / "%j"),
        cluster="slurm",
        nodes=2,
        gpus_per_node=4,
        timeout_min=4320,
        partition="gpu",
        cpus_per_task=40,
        mem_gb=256,
        signal_delay_s=120,
    )
    p = executor.parameters  # what submitit writes as #SBATCH lines
    assert (p["nodes"], p["ntasks_per_node"], p["gpus_per_node"], p["cpus_per_task"]) == (
        2,
        1,
        4,
        40,
    )
    assert (p["time"], p["partition"], p["signal_delay_s"], p["mem"]) == (4320, "gpu", 120, "256GB")


def test_submit_tool_refuses_what_the_job_sets_and_missing_configs(tmp_path):
    submit = load_tool("submit")
    with pytest.raises(SystemExit, match=r"^error: --num-gpus: set by the job"):
        submit.main(
            ["--tool", "cls", "--cluster", "local", "--num-gpus", "2", "--config-file", CONFIG]
        )
    missing = str(tmp_path / "nope.yaml")
    with pytest.raises(
        SystemExit, match=f"^error: --config-file {re.escape(missing)}: no such file$"
    ):
        submit.main(["--tool", "det", "--cluster", "local", "--config-file", missing])
    with pytest.raises(SystemExit, match="^error: .*one node"):
        submit.main(
            [
                "--tool",
                "cls",
                "--cluster",
                "local",
                "--nodes",
                "2",
                "--job-dir",
                str(tmp_path / "%j"),
                "--config-file",
                CONFIG,
            ]
        )
    proc = run_tool(
        [os.path.join(REPO, "tools", "submit.py"), "--help"],
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr
    for flag in (
        "--tool",
        "--nodes",
        "--gpus-per-node",
        "--partition",
        "--timeout",
        "--job-dir",
        "--cpus-per-task",
        "--mem",
        "--config-file",
    ):
        assert flag in proc.stdout


# ---------------------------------------------------------------- the trainer's stop hook


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return register_tiny(str(tmp_path_factory.mktemp("tiny")))


class _SignalDuring(HookBase):
    """Sends ``sig`` to this process while step ``iteration`` runs (like SLURM would)."""

    def __init__(self, iteration, sig=signal.SIGUSR2):
        self.iteration, self.sig = iteration, sig

    def before_step(self):
        if self.trainer.iter == self.iteration:
            os.kill(os.getpid(), self.sig)


def _weights(trainer):
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def test_signal_saves_after_the_step_stops_and_resumes_exactly(tiny, tmp_path, monkeypatch):
    opts = (
        "MODEL.ALS.METHOD",
        "als",
        "SOLVER.MAX_ITER",
        9,
        "SOLVER.CHECKPOINT_PERIOD",
        4,
        "SOLVER.STEPS",
        (6,),
    )
    seed_all_rng(3)
    full = ClassificationTrainer(
        tiny_cls_cfg(tiny, str(tmp_path / "full"), *opts)
    )  # no variable: no hook
    assert not any(type(h).__name__ == "StopOnSignal" for h in full._hooks)
    full.resume_or_load(resume=False)
    full.train()

    report = tmp_path / "stop.json"
    monkeypatch.setenv(SIGNALS_ENV, "USR2,TERM")
    monkeypatch.setenv(REPORT_ENV, str(report))
    before = signal.getsignal(signal.SIGUSR2)
    cfg = tiny_cls_cfg(tiny, str(tmp_path / "stopped"), *opts)
    seed_all_rng(3)
    stopped = ClassificationTrainer(cfg)
    stopped.register_hooks([_SignalDuring(5)])
    stopped.resume_or_load(resume=False)
    with pytest.raises(TrainingStopped) as info:
        stopped.train()
    assert info.value.code == 0 and info.value.iteration == 5
    assert signal.getsignal(signal.SIGUSR2) is before  # the hook's handler is gone after training
    out = tmp_path / "stopped"
    assert (out / "last_checkpoint").read_text() == "model_0000005.pth"
    assert sorted(p.name for p in out.glob("model_*.pth")) == [
        "model_0000003.pth",
        "model_0000005.pth",
    ]
    assert json.loads(report.read_text()) == {
        "iteration": 5,
        "checkpoint": str(out / "model_0000005.pth"),
        "signal": "SIGUSR2",
    }
    report.unlink()

    seed_all_rng(1234)  # the checkpoint replaces the initial weights
    resumed = ClassificationTrainer(cfg)
    resumed.register_hooks(
        [_SignalDuring(8, signal.SIGTERM)]
    )  # during the last step: the run just ends
    resumed.resume_or_load(resume=True)
    assert resumed.start_iter == 6
    resumed.train()
    assert not report.exists() and (out / "last_checkpoint").read_text() == "model_final.pth"
    expected, got = _weights(full), _weights(resumed)
    assert expected.keys() == got.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0, msg=key)


def test_detection_trainer_stops_on_the_signal_too(tmp_path, monkeypatch):
    from coco_fixtures import register_coco_split

    from als_d2.engine.detection import DetectionTrainer, add_transfer_config

    train = register_coco_split(str(tmp_path / "coco"), num_images=4, seed=0)
    monkeypatch.setenv(SIGNALS_ENV, "USR2")
    monkeypatch.delenv(REPORT_ENV, raising=False)
    cfg = get_cfg()
    add_transfer_config(cfg)
    cfg.merge_from_file(
        os.path.join(REPO, "configs", "COCO-Detection", "demo", "faster_rcnn_R18_C4_cpu.yaml")
    )
    cfg.merge_from_list(
        [
            "MODEL.WEIGHTS",
            "",
            "DATASETS.TRAIN",
            (train,),
            "DATASETS.TEST",
            (),
            "MODEL.ROI_HEADS.NUM_CLASSES",
            3,
            "SOLVER.IMS_PER_BATCH",
            2,
            "SOLVER.MAX_ITER",
            4,
            "SOLVER.STEPS",
            (),
            "SOLVER.CHECKPOINT_PERIOD",
            100,
            "OUTPUT_DIR",
            str(tmp_path / "det"),
        ]
    )
    trainer = DetectionTrainer(cfg)
    trainer.register_hooks([_SignalDuring(1)])
    trainer.resume_or_load(resume=False)
    with pytest.raises(TrainingStopped):
        trainer.train()
    assert (tmp_path / "det" / "last_checkpoint").read_text() == "model_0000001.pth"
    resumed = DetectionTrainer(cfg)
    resumed.resume_or_load(resume=True)
    assert resumed.start_iter == 2
    resumed.train()
    assert (tmp_path / "det" / "last_checkpoint").read_text() == "model_final.pth"


def _two_rank_worker(rank, init_file, out_dir, dicts):
    """Rank 1 alone receives the signal; both ranks must stop after the same step."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    torch.set_num_threads(1)
    from tiny_data import register_dicts

    register_dicts("tiny_stop", dicts, 4)
    cfg = tiny_cls_cfg("tiny_stop", out_dir, "SOLVER.MAX_ITER", 8, "SOLVER.CHECKPOINT_PERIOD", 100)
    out = {}
    seed_all_rng(3)
    trainer = ClassificationTrainer(cfg)
    if rank == 1:
        trainer.register_hooks([_SignalDuring(4)])
    trainer.resume_or_load(resume=False)
    try:
        trainer.train()
        out["stopped"] = None
    except TrainingStopped as e:
        out["stopped"] = e.iteration
    resumed = ClassificationTrainer(cfg)
    resumed.resume_or_load(resume=True)
    out["start"] = resumed.start_iter
    resumed.train()
    out["head"] = resumed.model.module.head.weight.detach().flatten()[:20].tolist()
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(out, f)
    dist.barrier()  # no rank tears gloo down while its peer still talks to it
    dist.destroy_process_group()


def test_ranks_agree_to_stop_after_the_same_step(tmp_path, monkeypatch):
    import torch.multiprocessing as mp

    from tiny_data import write_color_objects

    monkeypatch.setenv(SIGNALS_ENV, "USR2")  # the spawned processes inherit it
    dicts = write_color_objects(str(tmp_path / "data"))
    out_dir = str(tmp_path / "out")
    mp.spawn(_two_rank_worker, args=(str(tmp_path / "init"), out_dir, dicts), nprocs=2, join=True)
    ranks = [json.load(open(os.path.join(out_dir, f"rank{r}.json"))) for r in range(2)]
    assert [r["stopped"] for r in ranks] == [4, 4]  # rank 0 saw no signal, and stopped with rank 1
    assert [r["start"] for r in ranks] == [
        5,
        5,
    ]  # both resumed from the checkpoint the main process saved
    assert os.path.exists(os.path.join(out_dir, "model_0000004.pth"))
    assert ranks[0]["head"] == ranks[1]["head"]


def test_stop_signal_names():
    assert parse_signals("USR2, sigterm") == [signal.SIGUSR2, signal.SIGTERM]
    assert parse_signals("") == []
    with pytest.raises(ValueError, match=f"{SIGNALS_ENV}='USR3'"):
        parse_signals("USR3")


# ---------------------------------------------------------------- a whole job, requeued


def _children(pid):
    """Process ids whose parent is ``pid`` (Linux /proc)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(name))
    return found


def _wait(condition, what, job=None):
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if job is not None and job.done():
            raise AssertionError(f"the job ended while waiting for {what}:\n" + _job_log(job, 3000))
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.005)


def _job_log(job, tail=None):
    """The job's stdout and stderr logs (their last ``tail`` characters each)."""
    text = ""
    for path in (job.paths.stdout, job.paths.stderr):
        if os.path.exists(path):
            text += open(path).read()[-(tail or 0) :]
    return text


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="finds the job's processes in /proc")
def test_job_stopped_by_the_scheduler_signal_is_requeued_and_ends_as_an_uninterrupted_run(
    tmp_path, monkeypatch
):
    for key, value in synthetic_imagenet_env(str(tmp_path)).items():
        monkeypatch.setenv(key, value)  # the local executor's processes inherit this environment
    full_dir, job_dir = tmp_path / "full", tmp_path / "job"
    reference = subprocess.Popen(  # the uninterrupted run, alongside the job
        [sys.executable, TRAIN, "--config-file", CONFIG, *OPTS, "OUTPUT_DIR", str(full_dir)],
        cwd=REPO,
        stdout=open(tmp_path / "full.console.txt", "wb"),
        stderr=subprocess.STDOUT,
    )

    executor = build_executor(str(tmp_path / "jobs" / "%j"), cluster="local", timeout_min=60)
    job = executor.submit(
        TrainJob(TRAIN, ["--config-file", CONFIG, *OPTS, "OUTPUT_DIR", str(job_dir)], cwd=REPO)
    )
    try:
        _wait(lambda: (job_dir / "last_checkpoint").exists(), "the job's first checkpoint", job)
        (task,) = _children(
            job._process.pid
        )  # submitit's task (the controller's child) runs TrainJob
        (tool,) = _children(task)  # tools/train_cls.py, in its own process group
        os.killpg(tool, signal.SIGSTOP)  # hold training here: the signal comes long before its end
        os.kill(
            task, signal.SIGUSR2
        )  # what SLURM sends --signal-delay seconds before the time limit
        _wait(
            lambda: "sending SIGUSR2 to train_cls.py" in _job_log(job),
            "the task forwarding the signal",
            job,
        )
        os.killpg(tool, signal.SIGCONT)
        _wait(job.done, "the requeued job")
        result = job.result()
    finally:
        if not job.done():
            job.cancel()
    assert reference.wait(TIMEOUT) == 0, open(tmp_path / "full.console.txt").read()[-3000:]

    log = _job_log(job)
    assert result["requeues"] == 1 and result["stopped"] is None, log
    stop = int(re.search(r"stopped after iteration (\d+), saved", log).group(1))
    assert PERIOD - 1 <= stop < MAX_ITER - 1 and (job_dir / f"model_{stop:07d}.pth").exists()
    assert f"--resume --config-file {CONFIG}" in log  # the requeued run's command line

    assert_same_final_weights(str(full_dir), str(job_dir), MAX_ITER - 1)
    expected_metrics, got_metrics = _metrics(str(full_dir)), _metrics(str(job_dir))
    # the stopped run also wrote the metrics of its last iteration (detectron2's writers flush at
    # the end)
    assert set(got_metrics) - set(expected_metrics) <= {stop}
    assert len([r for r in expected_metrics.values() if "total_loss" in r]) >= 2
    assert {i: got_metrics[i] for i in expected_metrics} == expected_metrics
