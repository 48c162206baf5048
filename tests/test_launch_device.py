"""``--num-gpus N`` with ``MODEL.DEVICE cpu`` on a machine with CUDA: the workers must not see
CUDA, or detectron2's launch() gives them NCCL, which carries no CPU tensors."""

import argparse
import os

import pytest
import torch

from als_d2.engine.launch import check_processes, hide_cuda_for_cpu_processes, requested_device

from tiny_data import DEMO_R18, REPO

R50 = os.path.join(REPO, "configs/als_r50.yaml")  # MODEL.DEVICE from detectron2's default


def _args(config_file, num_gpus, *opts):
    return argparse.Namespace(config_file=config_file, num_gpus=num_gpus, opts=list(opts))


def test_requested_device_from_the_config_chain_and_the_overrides():
    assert requested_device(_args(os.path.join(REPO, DEMO_R18), 2)) == "cpu"  # its own key
    assert requested_device(_args(R50, 2)) == "cuda"
    assert requested_device(_args(R50, 2, "MODEL.DEVICE", "cpu", "SEED", "1")) == "cpu"
    assert requested_device(_args(R50, 2, "MODEL.DEVICE", "cpu", "MODEL.DEVICE", "cuda")) == "cuda"


@pytest.mark.parametrize(
    "num_gpus,opts,hidden",
    [
        (2, (), True),  # the demo config's MODEL.DEVICE cpu
        (2, ("MODEL.DEVICE", "cuda"), False),
        (1, (), False),  # one process: no process group
    ],
)
def test_cpu_processes_do_not_see_cuda(monkeypatch, num_gpus, opts, hidden):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a machine with a GPU
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)  # restored after the test
    args = _args(os.path.join(REPO, DEMO_R18), num_gpus, *opts)
    assert hide_cuda_for_cpu_processes(args) is hidden
    assert os.environ.get("CUDA_VISIBLE_DEVICES") == ("" if hidden else None)


def test_cpu_processes_need_a_launch_that_starts_them(monkeypatch):
    from als_d2 import compat

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(compat, "launch_supports_cpu_workers", lambda: False)
    check_processes(2)  # on the GPUs
    with pytest.raises(SystemExit, match="cannot start CPU processes"):
        check_processes(2, cpu=True)  # detectron2 v0.6's launch would use NCCL
