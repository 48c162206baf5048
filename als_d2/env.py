"""Environment report: ``python -m als_d2.env`` (``make env``).

Prints the versions that matter to als-d2, whether detectron2 has compiled ops, the
CUDA devices and whether this CPU runs bf16 / fp16 matmuls natively.
``--full`` appends detectron2's own ``collect_env_info()``.

``cpu_has_native_bf16()`` / ``cpu_has_native_fp16()`` (used by ``SOLVER.AMP.PRECISION
auto`` and the benchmarks): torch runs bf16 autocast on any x86 CPU, but without the
bf16 instructions (AVX512_BF16 or AMX-BF16; ``bf16`` on ARM) oneDNN emulates them and a
training step is several times *slower* than in fp32 (12x on an AVX2-only EPYC).
``ALS_D2_CPU_NATIVE_BF16`` / ``ALS_D2_CPU_NATIVE_FP16`` (``0`` / ``1``) override the
detection.

``cuda_precision()`` (``SOLVER.AMP.PRECISION auto`` on a GPU): bf16 tensor cores from
compute capability 8.0 (A100, H100...). Older cards (P100 6.0, V100 7.0, T4 7.5) emulate
bf16, and ``torch.cuda.is_bf16_supported()`` answers True there too (its default
``including_emulation=True``); they train in fp16 with a grad scaler instead.
"""

import argparse
import functools
from importlib import metadata
import os
import platform
import sys
from typing import FrozenSet, List, NamedTuple, Optional, Tuple

# ISA flags (as /proc/cpuinfo names them) that make the dtype's matmuls native
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # x86 AVX512-BF16, x86 AMX, ARMv8.6 BF16
NATIVE_FP16_FLAGS = (
    "avx512_fp16",
    "amx_fp16",
    "asimdhp",
)  # x86 AVX512-FP16, x86 AMX-FP16, ARM FP16
_OVERRIDE = {"bf16": "ALS_D2_CPU_NATIVE_BF16", "fp16": "ALS_D2_CPU_NATIVE_FP16"}


def torch_cpu_capability() -> str:
    """``torch.backends.cpu.get_cpu_capability()``: the ISA ATen's kernels were dispatched
    to ("DEFAULT", "NO AVX", "AVX2", "AVX512", "VSX", "Z VECTOR", "SVE256"...; it does not
    say whether bf16 is native), or "unknown"."""
    try:
        import torch

        return str(torch.backends.cpu.get_cpu_capability())
    except Exception:  # old torch, or no torch
        return "unknown"


@functools.lru_cache(maxsize=None)
def _proc_cpuinfo_flags() -> Optional[FrozenSet[str]]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):  # x86 / ARM
                    return frozenset(value.split())
    except OSError:
        pass
    return None


def _torch_probe_flags() -> FrozenSet[str]:
    """The flags torch's own probes (``torch.cpu._is_*_supported``, private) confirm."""
    probes = {
        "avx512_bf16": "_is_avx512_bf16_supported",
        "amx_bf16": "_is_amx_tile_supported",  # every CPU with AMX tiles has AMX-BF16
        "amx_fp16": "_is_amx_fp16_supported",
    }
    found = set()
    try:
        import torch

        for flag, probe in probes.items():
            fn = getattr(torch.cpu, probe, None)
            if fn is not None and fn():
                found.add(flag)
    except Exception:
        pass
    return frozenset(found)


def cpu_flags() -> Optional[FrozenSet[str]]:
    """This CPU's ISA flags (``/proc/cpuinfo`` and torch's probes); None when neither knows."""
    proc = _proc_cpuinfo_flags()
    probed = _torch_probe_flags()
    if proc is None and not probed:
        return None
    return (proc or frozenset()) | probed


class CpuPrecision(NamedTuple):
    capability: str  # torch.backends.cpu.get_cpu_capability()
    bf16: bool  # bf16 matmuls native (not emulated)
    fp16: bool
    reason_bf16: str  # one line: why
    reason_fp16: str


def _decide(
    dtype: str, native_flags, capability: str, flags: Optional[FrozenSet[str]]
) -> Tuple[bool, str]:
    override = os.environ.get(_OVERRIDE[dtype], "").strip()
    if override in ("0", "1"):
        state = "native" if override == "1" else "no native"
        return (
            override == "1",
            f"{state} {dtype} ({_OVERRIDE[dtype]}={override}; capability {capability})",
        )
    if flags is None:  # no /proc/cpuinfo, no torch probe: only the capability string to go by
        native = dtype.upper() in capability.upper() or "AMX" in capability.upper()
        how = "flags unknown"
    else:
        have = [f for f in native_flags if f in flags]
        native = bool(have)
        how = "+".join(have) if have else "no " + "/".join(native_flags[:2])
    state = "native" if native else "no native"
    return native, f"{state} {dtype} on this CPU (capability {capability}, {how})"


def cpu_precision(
    capability: Optional[str] = None, flags: Optional[FrozenSet[str]] = ()
) -> CpuPrecision:
    """Whether bf16 / fp16 matmuls are native on this CPU, from its ISA flags (torch's
    capability is reported, and decides only when the flags are unknown)."""
    capability = torch_cpu_capability() if capability is None else capability
    flags = cpu_flags() if flags == () else flags
    bf16, why_bf16 = _decide("bf16", NATIVE_BF16_FLAGS, capability, flags)
    fp16, why_fp16 = _decide("fp16", NATIVE_FP16_FLAGS, capability, flags)
    return CpuPrecision(capability, bf16, fp16, why_bf16, why_fp16)


def cpu_has_native_bf16() -> bool:
    return cpu_precision().bf16


def cpu_has_native_fp16() -> bool:
    return cpu_precision().fp16


# The first compute capability whose tensor cores run bf16 matmuls (Ampere)
CUDA_NATIVE_BF16_CAPABILITY = (8, 0)


class CudaPrecision(NamedTuple):
    name: str  # torch.cuda.get_device_name()
    capability: Tuple[int, int]  # torch.cuda.get_device_capability(): (major, minor)
    bf16: bool  # bf16 matmuls native (not emulated)
    reason: str  # one line: why


def cuda_precision(device=None) -> CudaPrecision:
    """Whether bf16 matmuls are native on CUDA ``device`` (None: the current one), from its
    compute capability (native from :data:`CUDA_NATIVE_BF16_CAPABILITY`)."""
    import torch

    capability = tuple(torch.cuda.get_device_capability(device))
    name = torch.cuda.get_device_name(device)
    bf16 = capability >= CUDA_NATIVE_BF16_CAPABILITY
    need = ".".join(map(str, CUDA_NATIVE_BF16_CAPABILITY))
    state = "native bf16" if bf16 else f"no native bf16 (needs capability {need})"
    reason = f"{state} on {name} (capability {capability[0]}.{capability[1]})"
    return CudaPrecision(name, capability, bf16, reason)


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def collect() -> List[Tuple[str, str]]:
    """Rows (name, value) of the report."""
    import als_d2  # registers the detectron2._C placeholder where needed
    from als_d2 import compat

    rows = [
        ("Python", sys.version.split()[0] + f" ({platform.platform()})"),
        ("als_d2", als_d2.__version__),
    ]
    import detectron2

    rows.append(("detectron2", f"{detectron2.__version__} @ {detectron2.__file__}"))
    rows.append(
        (
            "detectron2 compiled ops",
            "yes"
            if compat.HAS_COMPILED_OPS
            else "no (placeholder detectron2._C; C4/FPN Faster R-CNN "
            "and classification work, deformable/rotated ops do not)",
        )
    )
    for dist in (
        "torch",
        "torchvision",
        "numpy",
        "Pillow",
        "fvcore",
        "iopath",
        "pycocotools",
        "lxml",
        "matplotlib",
    ):
        rows.append((dist, _version(dist)))

    import torch

    rows.append(("torch CUDA build", str(torch.version.cuda)))
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            rows.append(
                (
                    f"GPU {i}",
                    f"{p.name}, {p.total_memory / 2**30:.1f} GiB, capability {p.major}.{p.minor}"
                    f" ({'native' if cuda_precision(i).bf16 else 'emulated'} bf16)",
                )
            )
    else:
        rows.append(("CUDA devices", "none (CPU only)"))
    rows.append(("CPU threads (torch)", str(torch.get_num_threads())))
    prec = cpu_precision()
    rows.append(("CPU capability (torch)", prec.capability))
    rows.append(("CPU bf16 / fp16", f"{prec.reason_bf16}; {prec.reason_fp16}"))
    return rows


def format_rows(rows: List[Tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="als-d2 environment report")
    parser.add_argument(
        "--full", action="store_true", help="append detectron2's collect_env_info()"
    )
    args = parser.parse_args(argv)
    print(format_rows(collect()))
    if args.full:
        from detectron2.utils.collect_env import collect_env_info

        print()
        print(collect_env_info())


if __name__ == "__main__":
    main()
