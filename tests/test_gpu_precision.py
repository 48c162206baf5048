"""SOLVER.AMP.PRECISION auto on CUDA devices (als_d2.env.cuda_precision): bf16 only where
the tensor cores run it (compute capability 8.0 on), fp16 with a grad scaler on older cards,
which torch.cuda.is_bf16_supported() also answers True for (bf16 emulation).

No GPU here: torch.cuda's device queries answer as each card does."""

import logging

import pytest
import torch

from als_d2 import env
from als_d2.engine import trainer
from tiny_data import amp_cfg

# name: (torch.cuda.get_device_capability(), native bf16 per NVIDIA's architecture documents)
GPUS = {
    "Tesla P100-PCIE-16GB": ((6, 0), False),
    "Tesla V100-SXM2-32GB": ((7, 0), False),
    "Tesla T4": ((7, 5), False),
    "NVIDIA A100-SXM4-80GB": ((8, 0), True),
    "NVIDIA GeForce RTX 3090": ((8, 6), True),
    "NVIDIA H100 80GB HBM3": ((9, 0), True),
}


def _as_gpu(monkeypatch, name):
    capability, _ = GPUS[name]
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    # what torch answers on every one of these cards (emulated bf16 counts by default)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)


@pytest.mark.parametrize("name", sorted(GPUS))
def test_cuda_precision_from_the_compute_capability(monkeypatch, name):
    capability, bf16 = GPUS[name]
    _as_gpu(monkeypatch, name)
    prec = env.cuda_precision()
    assert (prec.name, prec.capability, prec.bf16) == (name, capability, bf16)
    assert f"capability {capability[0]}.{capability[1]}" in prec.reason and name in prec.reason


@pytest.mark.parametrize("name", sorted(GPUS))
def test_auto_on_cuda_is_bf16_only_with_native_bf16(monkeypatch, caplog, name):
    _, bf16 = GPUS[name]
    _as_gpu(monkeypatch, name)
    monkeypatch.setattr(trainer, "cpu_precision", lambda: pytest.fail("CPU asked for a GPU run"))
    with caplog.at_level(logging.INFO, logger=trainer.logger.name):
        dtype = trainer.autocast_dtype(amp_cfg("auto"), "cuda")
    assert dtype == (torch.bfloat16 if bf16 else torch.float16)
    lines = [
        r.getMessage() for r in caplog.records if "SOLVER.AMP.PRECISION auto" in r.getMessage()
    ]
    assert len(lines) == 1 and name in lines[0]


def test_explicit_precision_is_honoured_on_cuda(monkeypatch):
    _as_gpu(monkeypatch, "Tesla V100-SXM2-32GB")
    assert trainer.autocast_dtype(amp_cfg("bf16"), "cuda") == torch.bfloat16
    assert trainer.autocast_dtype(amp_cfg("fp16"), "cuda") == torch.float16
