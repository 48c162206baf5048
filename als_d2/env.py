"""Environment report: ``python -m als_d2.env`` (``make env``).

Prints the versions that matter to als-d2, whether detectron2 has compiled ops, and
the CUDA devices. ``--full`` appends detectron2's own ``collect_env_info()``.
"""
import argparse
from importlib import metadata
import platform
import sys
from typing import List, Tuple


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
            "yes" if compat.HAS_COMPILED_OPS else "no (placeholder detectron2._C; C4/FPN Faster R-CNN "
            "and classification work, deformable/rotated ops do not)",
        )
    )
    for dist in ("torch", "torchvision", "numpy", "Pillow", "fvcore", "iopath", "pycocotools", "lxml", "matplotlib"):
        rows.append((dist, _version(dist)))

    import torch

    rows.append(("torch CUDA build", str(torch.version.cuda)))
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            rows.append((f"GPU {i}", f"{p.name}, {p.total_memory / 2**30:.1f} GiB, capability {p.major}.{p.minor}"))
    else:
        rows.append(("CUDA devices", "none (CPU only)"))
    rows.append(("CPU threads (torch)", str(torch.get_num_threads())))
    return rows


def format_rows(rows: List[Tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="als-d2 environment report")
    parser.add_argument("--full", action="store_true", help="append detectron2's collect_env_info()")
    args = parser.parse_args(argv)
    print(format_rows(collect()))
    if args.full:
        from detectron2.utils.collect_env import collect_env_info

        print()
        print(collect_env_info())


if __name__ == "__main__":
    main()
