#!/usr/bin/env python
"""
Training-step throughput and peak memory of als-d2's ``ImageClassifier`` on synthetic data.

The model comes from the project's configs through detectron2's ``build_model``
(``configs/als_r50.yaml`` with ``MODEL.RESNETS.DEPTH`` overridden), with ALS targets.
One step = the model's own preprocessing (stack, normalise uint8 images on the device),
forward, ALS targets, loss, backward and an SGD step (momentum, weight decay), on a
fixed synthetic batch (uint8 images, labels, objectness, one box each).

* GPU (default when CUDA is available): ResNet-50, batch 256, 224 px; bf16 autocast with
  channels_last (the fast setting) and fp32 contiguous for reference. Peak memory =
  ``torch.cuda.max_memory_allocated`` over the timed steps.
* CPU: a small config for relative comparisons (ResNet-18, 112 px, batch 16): fp32 vs
  bf16 autocast, channels_last on / off. Timed runs are interleaved across configs
  (median of ``--reps``); the peak memory of each config is measured in a fresh child
  process: peak RSS (VmHWM) minus the RSS after building the model, i.e. what one
  training step adds (activations, gradients, optimizer state, allocator caches).

On a CPU without native bf16 (``als_d2.env.cpu_has_native_bf16``: no AVX512-BF16 / AMX;
e.g. an AVX2-only EPYC, where oneDNN emulates bf16 and a step takes 12x as long as in
fp32) the bf16 configs are skipped and say so (``--emulated`` times them anyway).

Time budget (``--budget`` seconds, for ``run()``): the warm-up and the first interleaved
repetition are measured, then the number of repetitions (at most ``--reps``) is chosen so
that they and the memory probes fit; a probe that would not fit, or fails, gives
``peak_mem_mb: null`` and a line in ``notes``. The budget is a target, not a kill: at
least one repetition of one step per config is always timed.

The last line printed is a JSON object: per config ``images_per_s``, ``step_ms``,
``peak_mem_mb`` (a skipped config: ``skipped`` with the reason, the figures null; the
same reasons under the top-level ``skipped``), ``ratios`` (``bf16_over_fp32``,
``channels_last_over_contiguous``...: only between configs that were timed), ``reps``
(repetitions done), ``budget_s``, ``cpu_capability`` and ``notes``.

    python benchmarks/train_step.py              # GPU if there is one, else the CPU config
    python benchmarks/train_step.py --device cpu --quick
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from typing import Dict, List, Optional

_T0 = time.perf_counter()  # start-up cost of a child process ~ these imports

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import als_d2  # noqa: F401,E402  (before detectron2)
import torch  # noqa: E402
from detectron2.config import get_cfg  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from detectron2.utils.events import EventStorage  # noqa: E402

from als_d2.config import add_als_config  # noqa: E402
from als_d2.env import cpu_precision  # noqa: E402

IMPORT_S = time.perf_counter() - _T0

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "als_r50.yaml")
# name -> (autocast dtype or None, channels_last)
SETTINGS = {
    "fp32": (None, False),
    "fp32_cl": (None, True),
    "bf16": (torch.bfloat16, False),
    "bf16_cl": (torch.bfloat16, True),
}


def build_classifier(depth: int, device: str, channels_last: bool, num_classes: int = 1000):
    """The project's ImageClassifier (ALS targets) from its configs, on ``device``, in training
    mode."""
    cfg = get_cfg()
    add_als_config(cfg)
    cfg.merge_from_file(CONFIG)
    cfg.MODEL.RESNETS.DEPTH = depth
    if depth in (18, 34):
        cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.CLASSIFIER.NUM_CLASSES = num_classes
    cfg.MODEL.CHANNELS_LAST = channels_last
    cfg.MODEL.DEVICE = device
    # as detectron2's default_setup does for tools/train_cls.py (the configs set it True)
    torch.backends.cudnn.benchmark = cfg.CUDNN_BENCHMARK
    model = build_model(cfg)
    model.train()
    return model, cfg


def synthetic_batch(batch: int, size: int, num_classes: int, seed: int = 0) -> List[dict]:
    """Mapper-like training dicts: 3xSxS uint8 images, labels, objectness, one box each."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(batch):
        x0, y0 = torch.randint(0, size // 2, (2,), generator=g).tolist()
        out.append(
            {
                "image": torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=g),
                "label": int(torch.randint(num_classes, (1,), generator=g)),
                "has_boxes": True,
                "objectness": float(torch.rand(1, generator=g)),
                "context": False,
                "boxes": torch.tensor(
                    [[x0, y0, x0 + size / 2, y0 + size / 2]], dtype=torch.float32
                ),
            }
        )
    return out


class Step:
    """One configured training step (model, optimizer, batch) that can be timed repeatedly."""

    def __init__(self, name: str, args):
        dtype, channels_last = SETTINGS[name]
        self.name, self.dtype, self.channels_last = name, dtype, channels_last
        self.device = args.device
        self.model, cfg = build_classifier(args.depth, args.device, channels_last)
        self.opt = torch.optim.SGD(
            self.model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4
        )
        self.batch = synthetic_batch(args.batch, args.size, cfg.MODEL.CLASSIFIER.NUM_CLASSES)
        # pinned host images, as the loaders hand them over on a CUDA MODEL.DEVICE (their
        # DataLoader's pin_memory): the model's non_blocking copy to the GPU is asynchronous
        if self.device != "cpu":
            self.batch = [dict(d, image=d["image"].pin_memory()) for d in self.batch]

    def _sync(self):
        if self.device != "cpu":
            torch.cuda.synchronize(self.device)

    def run(self, steps: int) -> float:
        """Seconds per step over ``steps`` steps."""
        self._sync()
        t0 = time.perf_counter()
        with EventStorage(0):
            for _ in range(steps):
                with torch.autocast(
                    device_type=torch.device(self.device).type,
                    dtype=self.dtype or torch.float32,
                    enabled=self.dtype is not None,
                ):
                    losses = self.model(self.batch)
                loss = sum(losses.values())
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                self.opt.step()
        self._sync()
        return (time.perf_counter() - t0) / steps


def count_host_syncs(step: Step) -> Optional[int]:
    """Host-device synchronisations in one training step on CUDA, as torch's sync debug
    mode reports them (one warning each: ``.item()``, ``bool(tensor)``, a pageable copy, ...);
    None on a CPU."""
    if step.device == "cpu":
        return None
    step._sync()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            step.run(1)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message).lower() for w in caught)


def _rss_mb(field: str) -> float:
    """VmRSS / VmHWM of this process in MiB (Linux), NaN elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def probe_cpu_memory(name: str, args) -> Dict:
    """In this (child) process: RSS added by training steps of config ``name``."""
    torch.set_num_threads(args.threads)
    step = Step(name, args)
    base = _rss_mb("VmRSS")
    step.run(2)
    return {"name": name, "peak_mem_mb": round(_rss_mb("VmHWM") - base, 1)}


def _child_memory(name: str, args, timeout: float) -> float:
    """Peak memory of config ``name`` measured in a child process; raises on failure or
    when it runs past ``timeout`` seconds."""
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--probe-memory",
        name,
        "--device",
        "cpu",
        "--depth",
        str(args.depth),
        "--size",
        str(args.size),
        "--batch",
        str(args.batch),
        "--threads",
        str(args.threads),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"exit code {out.returncode}: {out.stderr.strip()[-300:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mem_mb"]


def skip_reasons(names: List[str], device: str, emulated: bool) -> Dict[str, str]:
    """name -> why it is not timed: bf16 configs on a CPU that would emulate bf16."""
    if device != "cpu" or emulated:
        return {}
    prec = cpu_precision()
    if prec.bf16:
        return {}
    why = (
        f"no native bf16 on this CPU (capability {prec.capability}; emulated bf16 is several "
        "times slower than fp32; --emulated times it anyway)"
    )
    return {n: why for n in names if SETTINGS[n][0] == torch.bfloat16}


def _build_and_warm(names: List[str], args):
    """Steps of ``names``, their build times (s) and warm-up time per step (s: an upper bound)."""
    steps, build_s, step_est = {}, {}, {}
    for n in names:
        t0 = time.perf_counter()
        steps[n] = Step(n, args)
        build_s[n] = time.perf_counter() - t0
    for n in names:  # warm-up: allocator, kernels, autotuning (an upper bound of a step)
        t0 = time.perf_counter()
        steps[n].run(args.warmup)
        step_est[n] = (time.perf_counter() - t0) / max(1, args.warmup)
    return steps, build_s, step_est


def _steps_per_run(args, step_est: Dict[str, float], deadline: float, notes: List[str]) -> int:
    """Steps per timed run: fewer than ``--steps`` when one repetition would not fit the budget."""
    n_steps = args.steps
    left = deadline - time.perf_counter()
    if n_steps > 1 and sum(step_est.values()) * n_steps > left / 2:
        n_steps = max(1, int(left / 2 / max(1e-9, sum(step_est.values()))))
        notes.append(f"steps per run cut from {args.steps} to {n_steps} to fit the budget")
    return n_steps


def _plan_probes(probe: List[str], probe_est: Dict[str, float], left: float, notes: List[str]):
    """The memory probes that fit in half of ``left`` seconds, and their estimated cost (s)."""
    planned, cost = [], 0.0
    for n in probe:
        if cost + probe_est[n] <= left / 2:
            planned.append(n)
            cost += probe_est[n]
        else:
            notes.append(f"{n}: memory probe skipped (needs ~{probe_est[n]:.0f} s of the budget)")
    return planned, cost


def _time_reps(names, steps, n_steps, probe, probe_est, deadline, args, notes):
    """Interleaved timed runs in rotating order, as many repetitions as fit the budget with the
    probes. Returns (name -> seconds per step of each run, name -> CUDA peak MiB, probes kept)."""
    times = {n: [] for n in names}
    peaks = {}
    reps_target = args.reps
    for r in range(args.reps):  # interleaved, rotating order
        if r >= reps_target:
            break
        order = names[r % len(names) :] + names[: r % len(names)]
        t_rep = time.perf_counter()
        for n in order:
            if args.device != "cpu":
                torch.cuda.reset_peak_memory_stats(args.device)
            times[n].append(steps[n].run(n_steps))
            if args.device != "cpu" and r == 0:
                peaks[n] = torch.cuda.max_memory_allocated(args.device) / 2**20
        if r == 0:  # one repetition measured: how many fit with the probes
            rep_s = time.perf_counter() - t_rep
            left = deadline - time.perf_counter()
            probe, cost = _plan_probes(probe, probe_est, left, notes)
            left = left - cost
            reps_target = max(1, min(args.reps, 1 + int(max(0.0, left) // max(rep_s, 1e-9))))
            if reps_target < args.reps:
                notes.append(
                    f"{reps_target} of {args.reps} repetitions: one takes {rep_s:.1f} s, "
                    f"budget {args.budget:.0f} s"
                )
    return times, peaks, probe


def _probe_memory(probe, probe_est, deadline, args, peaks, notes) -> None:
    """Peak memory (MiB) of each probed config, measured in a child process, into ``peaks``."""
    for n in probe:
        left = deadline - time.perf_counter()
        try:
            peaks[n] = _child_memory(n, args, timeout=max(left, 2 * probe_est[n]))
        except subprocess.TimeoutExpired as e:
            notes.append(f"{n}: memory probe stopped after {e.timeout:.0f} s")
        except Exception as e:  # noqa: BLE001  (reported, not fatal)
            notes.append(f"{n}: memory probe failed: {e}")


def _result_rows(requested, skipped, times, peaks, args) -> List[dict]:
    """One row per requested config: images/s, ms per step, peak MiB (or why it was skipped)."""
    results = []
    for n in requested:
        row = {
            "name": n,
            "precision": "bf16" if SETTINGS[n][0] is not None else "fp32",
            "channels_last": SETTINGS[n][1],
        }
        if n in skipped:
            row.update(images_per_s=None, step_ms=None, peak_mem_mb=None, skipped=skipped[n])
        else:
            sec = statistics.median(times[n])
            peak = peaks.get(n)
            row.update(
                images_per_s=round(args.batch / sec, 2),
                step_ms=round(1000 * sec, 1),
                peak_mem_mb=None if peak is None else round(peak, 1),
            )
        results.append(row)
    return results


def _ratios(results: List[dict]) -> Dict[str, float]:
    """Throughput ratios between the timed configs present in ``results``."""
    results_timed = [r for r in results if "skipped" not in r]
    by = {r["name"]: r["images_per_s"] for r in results_timed}
    ratios = {}
    if "bf16" in by and "fp32" in by:
        ratios["bf16_over_fp32"] = round(by["bf16"] / by["fp32"], 3)
    if "bf16_cl" in by and "bf16" in by:
        ratios["channels_last_over_contiguous_bf16"] = round(by["bf16_cl"] / by["bf16"], 3)
    if "fp32_cl" in by and "fp32" in by:
        ratios["channels_last_over_contiguous"] = round(by["fp32_cl"] / by["fp32"], 3)
    if "bf16_cl" in by and "fp32" in by:
        ratios["bf16_cl_over_fp32"] = round(by["bf16_cl"] / by["fp32"], 3)
    return ratios


def _amp_auto(device: str) -> Optional[str]:
    """What ``SOLVER.AMP.PRECISION auto`` trains in on ``device`` (the trainer's choice)."""
    from detectron2.config import get_cfg

    from als_d2.config import add_als_config
    from als_d2.engine.trainer import autocast_dtype

    cfg = get_cfg()
    add_als_config(cfg)
    cfg.SOLVER.AMP.ENABLED, cfg.SOLVER.AMP.PRECISION = True, "auto"
    dtype = autocast_dtype(cfg, torch.device(device).type)
    return "float32" if dtype is None else str(dtype).replace("torch.", "")


def run(args) -> Dict:
    t_start = time.perf_counter()
    deadline = t_start + args.budget
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    requested = [n for n in args.configs.split(",") if n]
    skipped = skip_reasons(requested, args.device, args.emulated)
    names = [n for n in requested if n not in skipped]
    notes = []
    steps, build_s, step_est = _build_and_warm(names, args)
    n_steps = _steps_per_run(args, step_est, deadline, notes)
    # memory probes (CPU, in child processes): what each would cost, for the budget
    probe = []
    if args.device == "cpu" and args.memory:
        probe = names[:1] if args.quick else list(names)  # --quick: one probe
    probe_est = {n: 1.5 * (IMPORT_S + build_s[n] + 3 * step_est[n]) + 1.0 for n in probe}
    times, peaks, probe = _time_reps(names, steps, n_steps, probe, probe_est, deadline, args, notes)
    _probe_memory(probe, probe_est, deadline, args, peaks, notes)
    results = _result_rows(requested, skipped, times, peaks, args)
    ratios = _ratios(results)
    syncs = {n: count_host_syncs(steps[n]) for n in names} if args.device != "cpu" else {}
    device_name = torch.cuda.get_device_name(args.device) if args.device != "cpu" else "cpu"
    return {
        "benchmark": "train_step",
        "quick": bool(args.quick),
        "device": args.device,
        "device_name": device_name,
        "threads": torch.get_num_threads() if args.device == "cpu" else None,
        "model": f"ImageClassifier R{args.depth} (ALS targets, SGD)",
        "image_size": args.size,
        "batch": args.batch,
        "steps_per_run": n_steps,
        "reps": min((len(t) for t in times.values()), default=0),
        "results": results,
        "ratios": ratios,
        "skipped": skipped,
        "cpu_capability": cpu_precision().capability,
        "budget_s": args.budget,
        "run_s": round(time.perf_counter() - t_start, 1),
        "notes": notes,
        "host_syncs_per_step": syncs,  # CUDA: torch's sync debug mode, one step per setting
        "amp_auto": _amp_auto(args.device),
        "torch": torch.__version__,
    }


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].strip(),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="The last line printed is the JSON result.",
    )
    gpu = torch.cuda.is_available()
    p.add_argument("--device", default="cuda" if gpu else "cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--quick", action="store_true", help="tiny run for tests (a few seconds)")
    p.add_argument("--depth", type=int, default=None, help="ResNet depth (GPU 50, CPU 18)")
    p.add_argument("--size", type=int, default=None, help="image side in pixels (GPU 224, CPU 112)")
    p.add_argument("--batch", type=int, default=None, help="batch size (GPU 256, CPU 16)")
    p.add_argument("--steps", type=int, default=None, help="steps per timed run (GPU 20, CPU 2)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps per config")
    p.add_argument("--reps", type=int, default=3, help="interleaved timed runs per config")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads (1: per-core figures, robust to other jobs)",
    )
    p.add_argument("--configs", default=None, help=f"comma-separated subset of {list(SETTINGS)}")
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds for the measurements (CPU 120, --quick 60, GPU 300): repetitions and "
        "memory probes adapt to fit",
    )
    p.add_argument(
        "--emulated",
        action="store_true",
        help="CPU: time bf16 even where it is emulated (no AVX512-BF16 / AMX)",
    )
    p.add_argument(
        "--no-memory",
        dest="memory",
        action="store_false",
        help="CPU: skip the memory probes (null)",
    )
    p.add_argument("--probe-memory", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    cpu = args.device == "cpu"
    defaults = (
        dict(depth=18, size=112, batch=16, steps=2, warmup=1)
        if cpu
        else dict(depth=50, size=224, batch=256, steps=20, warmup=5)
    )
    defaults["budget"] = 120.0 if cpu else 300.0
    if args.quick:
        defaults.update(depth=18, size=32, batch=4, steps=1, warmup=1, budget=60.0)
        args.reps = 1
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.configs is None:
        args.configs = "fp32,fp32_cl,bf16,bf16_cl" if cpu else "bf16_cl,fp32"
        if args.quick:
            args.configs = "fp32,bf16_cl"
    return args


def main(argv=None) -> Dict:
    args = parse_args(argv)
    if args.probe_memory:
        result = probe_cpu_memory(args.probe_memory, args)
    else:
        result = run(args)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
