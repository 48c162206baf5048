"""Native bf16 / fp16 on the CPU (als_d2.env) and SOLVER.AMP.PRECISION's choice on each
kind of CPU, with what torch and /proc/cpuinfo report mocked."""

import logging

import pytest
import torch

from als_d2 import env
from als_d2.engine import trainer
from tiny_data import amp_cfg

AVX2_EPYC = frozenset({"fpu", "sse4_2", "avx", "avx2", "fma"})  # first-generation EPYC
SKYLAKE_SP = AVX2_EPYC | {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni"}
ZEN4 = SKYLAKE_SP | {"avx512_bf16"}
SAPPHIRE_RAPIDS = ZEN4 | {"amx_tile", "amx_bf16", "amx_int8", "avx512_fp16"}
GRANITE_RAPIDS = SAPPHIRE_RAPIDS | {"amx_fp16"}
GRAVITON3 = frozenset({"fp", "asimd", "asimdhp", "sve", "bf16"})
GRAVITON2 = frozenset({"fp", "asimd", "asimdhp"})

MACHINES = {  # name: (torch capability, flags, native bf16, native fp16)
    "avx2_epyc": ("AVX2", AVX2_EPYC, False, False),
    "skylake_sp": ("AVX512", SKYLAKE_SP, False, False),
    "zen4": ("AVX512", ZEN4, True, False),
    "sapphire_rapids": ("AVX512", SAPPHIRE_RAPIDS, True, True),
    "granite_rapids": ("AVX512", GRANITE_RAPIDS, True, True),
    "graviton3": ("SVE256", GRAVITON3, True, True),
    "graviton2": ("DEFAULT", GRAVITON2, False, True),
}


@pytest.fixture(autouse=True)
def no_override(monkeypatch):
    monkeypatch.delenv("ALS_D2_CPU_NATIVE_BF16", raising=False)
    monkeypatch.delenv("ALS_D2_CPU_NATIVE_FP16", raising=False)


def _mock_machine(monkeypatch, name):
    capability, flags, _, _ = MACHINES[name]
    monkeypatch.setattr(env, "torch_cpu_capability", lambda: capability)
    monkeypatch.setattr(env, "_proc_cpuinfo_flags", lambda: flags)
    monkeypatch.setattr(env, "_torch_probe_flags", lambda: frozenset())


@pytest.mark.parametrize("name", sorted(MACHINES))
def test_detection(monkeypatch, name):
    capability, _, bf16, fp16 = MACHINES[name]
    _mock_machine(monkeypatch, name)
    prec = env.cpu_precision()
    assert (prec.capability, prec.bf16, prec.fp16) == (capability, bf16, fp16)
    assert env.cpu_has_native_bf16() is bf16 and env.cpu_has_native_fp16() is fp16
    assert f"capability {capability}" in prec.reason_bf16
    assert prec.reason_bf16.startswith("native bf16" if bf16 else "no native bf16")


def test_torch_probes_count_without_proc_cpuinfo(monkeypatch):
    monkeypatch.setattr(env, "torch_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(env, "_proc_cpuinfo_flags", lambda: None)
    monkeypatch.setattr(env, "_torch_probe_flags", lambda: frozenset({"amx_bf16"}))
    assert env.cpu_has_native_bf16() and not env.cpu_has_native_fp16()


@pytest.mark.parametrize(
    "capability, bf16", [("AVX2", False), ("AVX512", False), ("AVX512_BF16", True), ("AMX", True)]
)
def test_capability_decides_when_flags_are_unknown(capability, bf16):
    assert env.cpu_precision(capability, None).bf16 is bf16


def test_override(monkeypatch):
    _mock_machine(monkeypatch, "avx2_epyc")
    monkeypatch.setenv("ALS_D2_CPU_NATIVE_BF16", "1")
    assert env.cpu_has_native_bf16()
    monkeypatch.setenv("ALS_D2_CPU_NATIVE_BF16", "0")
    _mock_machine(monkeypatch, "sapphire_rapids")
    assert (
        not env.cpu_has_native_bf16()
        and "ALS_D2_CPU_NATIVE_BF16=0" in env.cpu_precision().reason_bf16
    )


def test_this_machine_reports_something():
    prec = env.cpu_precision()
    assert prec.capability == torch.backends.cpu.get_cpu_capability()
    assert isinstance(prec.bf16, bool) and isinstance(prec.fp16, bool)


@pytest.mark.parametrize("name", sorted(MACHINES))
def test_auto_on_cpu(monkeypatch, caplog, name):
    capability, _, bf16, _ = MACHINES[name]
    _mock_machine(monkeypatch, name)
    with caplog.at_level(logging.INFO, logger=trainer.logger.name):
        dtype = trainer.autocast_dtype(amp_cfg("auto"), "cpu")
    assert dtype == (torch.bfloat16 if bf16 else None)
    lines = [r for r in caplog.records if "SOLVER.AMP.PRECISION auto" in r.getMessage()]
    assert len(lines) == 1 and f"capability {capability}" in lines[0].getMessage()
    assert lines[0].levelno == (logging.INFO if bf16 else logging.WARNING)
    if not bf16:
        assert "float32" in lines[0].getMessage()


def test_explicit_precision_is_honoured_on_cpu(monkeypatch, caplog):
    _mock_machine(monkeypatch, "avx2_epyc")
    with caplog.at_level(logging.WARNING, logger=trainer.logger.name):
        assert trainer.autocast_dtype(amp_cfg("bf16"), "cpu") == torch.bfloat16
    assert any("emulated" in r.getMessage() and "AVX2" in r.getMessage() for r in caplog.records)
    assert trainer.autocast_dtype(amp_cfg("fp16"), "cpu") == torch.float16
    assert trainer.autocast_dtype(amp_cfg("auto", enabled=False), "cpu") is None
