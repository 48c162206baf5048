"""The command line of detectron2's ``tools/train_net.py``, built with argparse alone, for
the tools: ``tools/x.py --help`` and usage errors answer before detectron2 and torch are
imported (that import takes seconds).

It lives next to the tools, not in the ``als_d2`` package: importing any ``als_d2`` module
runs ``als_d2/__init__.py`` first, which imports detectron2 (to register the datasets and
the model). A tool imports it as a sibling (``tools/`` is ``sys.path[0]`` when a script
runs; ``tests/tiny_data.load_tool`` puts it there for the tests).
"""

import argparse
import os
import sys

__all__ = ["default_argument_parser", "default_dist_url", "tool_parser"]


def default_dist_url() -> str:
    """``tcp://127.0.0.1:<port>``, the port fixed per user (a hash of the uid, as detectron2
    chooses it: an orphan process of an earlier run then shows up as a port in use) outside
    the kernel's ephemeral port range: the rule of ``als_d2.engine.launch.default_dist_url``
    (the converted tools' default), restated here without importing als_d2;
    ``tests/test_tools_cli.py`` compares the two."""
    uid = os.getuid() if sys.platform != "win32" else 1
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            first, last = (int(v) for v in f.read().split()[:2])
    except (OSError, ValueError):
        first, last = 32768, 60999
    if first > 29999 or last < 20000:
        lo, hi = 20000, 29999
    else:
        lo, hi = max((1024, first - 1), (last + 1, 65535), key=lambda s: s[1] - s[0])
    if hi < lo:
        lo, hi = 2**15 + 2**14, 2**16 - 1
    return f"tcp://127.0.0.1:{lo + hash(uid) % (hi - lo + 1)}"


def tool_parser(description: str) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` whose ``--help`` shows ``description`` (the tool's docstring)
    as written."""
    return argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def default_argument_parser(epilog=None) -> argparse.ArgumentParser:
    """The flags of ``detectron2.engine.default_argument_parser`` (v0.6 and main), with the
    same destinations, types and defaults (but ``--dist-url``'s port: :func:`default_dist_url`):
    ``--config-file``, ``--resume``, ``--eval-only``,
    ``--num-gpus``, ``--num-machines``, ``--machine-rank``, ``--dist-url`` and the trailing
    ``opts`` (``KEY VALUE`` config overrides), for the tools not yet on detectron2's own."""
    prog = os.path.basename(sys.argv[0]) or "tool"
    parser = argparse.ArgumentParser(
        epilog=epilog
        or (
            "examples:\n"
            f"  {prog} --config-file cfg.yaml --num-gpus 8\n"
            f"  {prog} --config-file cfg.yaml MODEL.WEIGHTS model_final.pth SOLVER.BASE_LR 0.001\n"
            f"  {prog} --config-file cfg.yaml --num-machines 2 --machine-rank 0 --dist-url tcp://host0:port"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config-file", default="", metavar="FILE", help="the YAML config")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the last checkpoint of OUTPUT_DIR (DefaultTrainer.resume_or_load)",
    )
    parser.add_argument(
        "--eval-only", action="store_true", help="evaluate MODEL.WEIGHTS, do not train"
    )
    parser.add_argument("--num-gpus", type=int, default=1, help="processes (GPUs) per machine")
    parser.add_argument("--num-machines", type=int, default=1, help="machines in the job")
    parser.add_argument(
        "--machine-rank", type=int, default=0, help="this machine's rank, 0 .. num-machines - 1"
    )
    parser.add_argument(
        "--dist-url",
        default=default_dist_url(),
        help="torch.distributed init method (default: a fixed local port for this user)",
    )
    parser.add_argument(
        "opts",
        nargs=argparse.REMAINDER,
        default=None,
        help="config overrides at the end: KEY VALUE pairs, e.g. SOLVER.BASE_LR 0.01",
    )
    return parser
