#!/usr/bin/env python
"""Make detectron2 importable in the current Python environment (run by ``make setup``).

Default (no ``--src``):

1. If ``import detectron2`` already works (for example the official build from git),
   keep it and pin nothing.
2. Otherwise install the package index's ``pb1-detectron2==0.6`` sdist, which is the
   official v0.6 Python package without the C++ sources of ``detectron2._C``:
   download it, verify its sha256, leave the C++ extension out of its ``setup.py`` and
   ``pip install --no-build-isolation`` it under the constraints that v0.6 needs on
   today's libraries (``tools/constraints-detectron2-v0.6.txt``).

``--src PATH`` (``make setup DETECTRON2_SRC=PATH``): a detectron2 source tree, or an
archive of one (such as ``../shared/vendor/detectron2-main-02b5c4e.tar.gz``), is built
into a wheel with ``pip wheel --no-build-isolation --no-deps`` (its C++ ops included;
``MAX_JOBS`` defaults to 2), replaces any installed detectron2 and brings its own
dependencies, with no pins (detectron2 main runs on numpy 2 and Pillow 13).

Either way the constraints that apply to later installs into this environment are
written to ``--constraints-out`` (empty unless v0.6 was installed here), so that
``pip install -e .`` cannot upgrade numpy past what v0.6 supports, and ``--record``
(JSON) records which detectron2 source was installed, for which torch. A later call
that asks for the same source and torch returns at once (no import, no pip); one that
asks for another source re-installs, uninstalling what this tool installed before.

For a machine that cannot reach the package index (the GPU check,
``benchmarks/gpu_check.sh``): ``--download-to DIR`` saves the verified sdist here, and
``ALS_D2_DETECTRON2_SDIST=<sdist> --offline-target DIR`` installs it there into a
folder for PYTHONPATH, with no dependencies and no constraints.

``--identify PATH`` prints the identity of a source (kind, sha256, path) and exits.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from importlib import metadata
from typing import Optional

SDIST_NAME = "pb1-detectron2==0.6"
SDIST_FILE = "pb1-detectron2-0.6.tar.gz"
SDIST_SHA256 = "5d2e9e51e523ec72f6a31cca04b0a515492e9514b773a3d134cedc0677170b29"
SDIST_URL = (
    "https://files.pythonhosted.org/packages/60/26/"
    "48f5bbb7ee492696a21da23303daeecdfe3942c498a70d34108acf63b2bd/" + SDIST_FILE
)
# Source archives whose content is known (see ../shared/vendor/README.md): file name -> sha256.
KNOWN_ARCHIVES = {
    "detectron2-main-02b5c4e.tar.gz": (
        "242b9d82c5479746ea3e4bbec5c0f4bea881ded85df269ad87e3f7de516a4c56"
    ),
}
HERE = os.path.dirname(os.path.abspath(__file__))
V06_CONSTRAINTS = os.path.join(HERE, "constraints-detectron2-v0.6.txt")
EXTENSION_LINE = "ext_modules=get_extensions(),"
DETECTRON2_DISTS = ("detectron2", "pb1-detectron2")  # distribution names that install `detectron2/`
# Not part of a source tree's content: build outputs and caches.
TREE_SKIP_DIRS = {".git", "build", "dist", "__pycache__", ".eggs"}
TREE_SKIP_SUFFIXES = (".so", ".pyc", ".pyd", ".o")


def log(msg: str) -> None:
    print(f"[install_detectron2] {msg}", flush=True)


def detectron2_imports() -> bool:
    """True when ``import detectron2`` works in this interpreter (checked in a subprocess)."""
    return (
        subprocess.call([sys.executable, "-c", "import detectron2"], stderr=subprocess.DEVNULL) == 0
    )


def has_compiled_ops() -> bool:
    """True when ``import detectron2._C`` works (checked in a subprocess)."""
    return (
        subprocess.call([sys.executable, "-c", "import detectron2._C"], stderr=subprocess.DEVNULL)
        == 0
    )


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tree_sha256(root: str) -> str:
    """sha256 over the relative paths and contents of the files under ``root`` (sorted),
    leaving out build outputs and caches (``TREE_SKIP_DIRS``, ``TREE_SKIP_SUFFIXES``,
    *.egg-info)."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d for d in dirnames if d not in TREE_SKIP_DIRS and not d.endswith(".egg-info")
        )
        for name in sorted(filenames):
            if name.endswith(TREE_SKIP_SUFFIXES):
                continue
            path = os.path.join(dirpath, name)
            if not os.path.isfile(path):
                continue
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            digest.update(rel.encode() + b"\0" + sha256_of(path).encode() + b"\n")
    return digest.hexdigest()


def identify_source(src: Optional[str]) -> dict:
    """What ``--src`` asks for: ``{"kind": "default"|"archive"|"tree", "sha256", "path"}``.

    The default's sha256 is that of the v0.6 constraints file, so that changing the pins
    re-runs the installer. Raises SystemExit with one line for a missing or unusable path,
    or for a known archive (``KNOWN_ARCHIVES``) whose sha256 differs.
    """
    if not src:
        return {"kind": "default", "sha256": sha256_of(V06_CONSTRAINTS), "path": SDIST_NAME}
    path = os.path.abspath(os.path.expanduser(src))
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "setup.py")):
            raise SystemExit(
                f"[install_detectron2] DETECTRON2_SRC={src}: directory has no setup.py "
                "(not a detectron2 source tree)"
            )
        return {"kind": "tree", "sha256": tree_sha256(path), "path": path}
    if os.path.isfile(path):
        got = sha256_of(path)
        expected = KNOWN_ARCHIVES.get(os.path.basename(path))
        if expected is not None and got != expected:
            raise SystemExit(
                f"[install_detectron2] DETECTRON2_SRC={src}: sha256 {got} does not match the "
                f"{expected} recorded for {os.path.basename(path)}; refusing to build it."
            )
        return {"kind": "archive", "sha256": got, "path": path}
    raise SystemExit(f"[install_detectron2] DETECTRON2_SRC={src}: no such file or directory")


def same_source(a: dict, b: dict) -> bool:
    """Same kind and content (the path may differ)."""
    return a.get("kind") == b.get("kind") and a.get("sha256") == b.get("sha256")


def read_record(path: Optional[str]) -> Optional[dict]:
    """The record of a previous install, or None (no file, or not one this tool wrote)."""
    if not path or not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError):
        log(f"{path}: not a readable record; re-installing")
        return None
    if not isinstance(record, dict) or not isinstance(record.get("source"), dict):
        log(f"{path}: not a record written by this tool; re-installing")
        return None
    return record


def write_record(path: Optional[str], source: dict, torch_spec: str, installed: str) -> None:
    if not path:
        return
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"source": source, "torch": torch_spec, "installed": installed}, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def up_to_date(record: Optional[dict], wanted: dict, torch_spec: str, constraints_out: str) -> bool:
    """Whether the recorded install is the wanted source, for the same torch, and its
    constraints file is in place: then there is nothing to do."""
    return (
        record is not None
        and same_source(record["source"], wanted)
        and record.get("torch") == torch_spec
        and os.path.exists(constraints_out)
    )


def fetch_sdist(workdir: str) -> str:
    """Download the sdist into ``workdir`` and return its verified path."""
    path = os.path.join(workdir, SDIST_FILE)
    cached = os.environ.get("ALS_D2_DETECTRON2_SDIST")  # a local copy, for offline machines
    if cached:
        shutil.copy(cached, path)
    else:
        import urllib.request

        log(f"downloading {SDIST_URL}")
        with urllib.request.urlopen(SDIST_URL, timeout=120) as r, open(path, "wb") as f:
            shutil.copyfileobj(r, f)
    got = sha256_of(path)
    if got != SDIST_SHA256:
        raise SystemExit(
            f"[install_detectron2] {path}: sha256 {got} does not match the expected "
            f"{SDIST_SHA256}; refusing to install it."
        )
    return path


def unpack_without_extension(sdist: str, workdir: str) -> str:
    """Unpack the sdist and remove its C++ extension from setup.py; return the source dir."""
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if m.isfile() or m.isdir()]
        for m in members:
            if m.name.startswith("/") or ".." in m.name.split("/"):
                raise SystemExit(f"[install_detectron2] {sdist}: unsafe path {m.name!r} in archive")
        tar.extractall(workdir, members=members)
    src = os.path.join(workdir, "pb1-detectron2-0.6")
    setup_py = os.path.join(src, "setup.py")
    with open(setup_py, encoding="utf-8") as f:
        text = f.read()
    if EXTENSION_LINE not in text:
        raise SystemExit(
            f"[install_detectron2] {setup_py}: expected line {EXTENSION_LINE!r} not found"
        )
    with open(setup_py, "w", encoding="utf-8") as f:
        f.write(text.replace(EXTENSION_LINE, "ext_modules=[],"))
    return src


def pip(*args: str, verb: str = "install", env: Optional[dict] = None) -> None:
    cmd = [sys.executable, "-m", "pip", verb, "-q", *args]
    log(" ".join(cmd))
    subprocess.check_call(cmd, env=env)


def installed_dists() -> list:
    """The distributions that provide ``detectron2`` here (names from ``DETECTRON2_DISTS``)."""
    found = []
    for name in DETECTRON2_DISTS:
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found.append(name)
    return found


def v06_pins() -> list:
    with open(V06_CONSTRAINTS) as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]


def download_to(folder: str) -> str:
    """Save the verified sdist in ``folder`` (for machines that cannot reach the index)."""
    os.makedirs(folder, exist_ok=True)
    path = fetch_sdist(folder)
    log(f"saved {path}")
    return path


def install_offline(target: str) -> None:
    """Install the sdist given by ``ALS_D2_DETECTRON2_SDIST`` into the folder ``target``
    (``pip --target``, no dependencies, no index): for a machine with its own torch and
    numpy, where nothing can be fetched and nothing installed may be downgraded."""
    if not os.environ.get("ALS_D2_DETECTRON2_SDIST"):
        raise SystemExit(
            "[install_detectron2] --offline-target needs "
            "ALS_D2_DETECTRON2_SDIST=<path of the sdist>"
        )
    with tempfile.TemporaryDirectory() as workdir:
        src = unpack_without_extension(fetch_sdist(workdir), workdir)
        pip("--no-index", "--no-deps", "--no-build-isolation", "--target", target, src)
    log(f"installed detectron2 v0.6 (pure Python) into {target}.")


def install_v06(constraints_out: str) -> None:
    """The pb1-detectron2 0.6 sdist, pure Python, under the v0.6 constraints."""
    with tempfile.TemporaryDirectory() as workdir:
        src = unpack_without_extension(fetch_sdist(workdir), workdir)
        # v0.6's setup.py imports torch, and its pure-Python wheel needs no compiler.
        pip("-c", V06_CONSTRAINTS, "--no-build-isolation", src)
        # Pin the libraries detectron2 v0.6 needs even when nothing requested them yet.
        pip("-c", V06_CONSTRAINTS, *v06_pins())
    shutil.copy(V06_CONSTRAINTS, constraints_out)
    if not detectron2_imports():
        raise SystemExit("[install_detectron2] detectron2 was installed but does not import")
    log("installed detectron2 v0.6 (pure Python, no compiled ops).")


def install_from_source(source: dict, constraints_out: str) -> str:
    """Build ``source`` into a wheel (C++ ops included), replace any installed detectron2
    with it and lift the v0.6 pins if they were in force; returns what was installed."""
    lift_pins = "pb1-detectron2" in installed_dists()
    env = dict(os.environ)
    env.setdefault("MAX_JOBS", "2")
    with tempfile.TemporaryDirectory() as wheel_dir:
        log(
            f"building a wheel from {source['path']} (sha256 {source['sha256']}; "
            f"MAX_JOBS={env['MAX_JOBS']}; compiles detectron2's C++ ops, minutes)"
        )
        start = time.time()
        pip(
            "--no-build-isolation",
            "--no-deps",
            "-w",
            wheel_dir,
            source["path"],
            verb="wheel",
            env=env,
        )
        wheels = sorted(f for f in os.listdir(wheel_dir) if f.endswith(".whl"))
        if len(wheels) != 1:
            raise SystemExit(
                f"[install_detectron2] DETECTRON2_SRC={source['path']}: "
                f"expected one wheel, got {wheels}"
            )
        log(f"built {wheels[0]} in {time.time() - start:.0f} s")
        present = installed_dists()
        if present:
            pip("-y", *present, verb="uninstall")
        pip(os.path.join(wheel_dir, wheels[0]))
    if lift_pins:  # v0.6 was here: give the libraries it held back their current versions
        names = [p.split("<")[0].split("=")[0].strip() for p in v06_pins()]
        pip("--upgrade", *[n for n in names if n != "setuptools"])
    open(constraints_out, "w").close()
    if not detectron2_imports():
        raise SystemExit(
            f"[install_detectron2] detectron2 built from {source['path']} "
            "was installed but does not import"
        )
    version = metadata.version("detectron2")
    ops = "with" if has_compiled_ops() else "WITHOUT"
    installed = f"detectron2 {version} from {source['kind']} {source['path']}, {ops} compiled ops"
    log(f"installed {installed}; no pins.")
    return installed


def install_into_env(
    constraints_out: str, src: Optional[str], record_path: Optional[str], torch_spec: str
) -> None:
    wanted = identify_source(src)
    record = read_record(record_path)
    if up_to_date(record, wanted, torch_spec, constraints_out):
        return
    if record is not None and not same_source(record["source"], wanted):
        log(
            f"detectron2 source changes from {record['source']['path']} "
            f"to {wanted['path']}: re-installing"
        )

    if wanted["kind"] != "default":
        installed = install_from_source(wanted, constraints_out)
    else:
        # A detectron2 this tool built from a source is replaced by the default; one that
        # was here before (the user's own build) is kept.
        if record is not None and record["source"].get("kind") != "default" and installed_dists():
            pip("-y", *installed_dists(), verb="uninstall")
        if (
            record is not None
            and record.get("installed", "").startswith(SDIST_NAME)
            and detectron2_imports()
        ):
            pip("-c", V06_CONSTRAINTS, *v06_pins())  # ours: keep it, keep its pins
            shutil.copy(V06_CONSTRAINTS, constraints_out)
            installed = record["installed"]
        elif detectron2_imports():
            log("detectron2 already imports: keeping it, no pins.")
            if not os.path.exists(constraints_out):
                open(constraints_out, "w").close()
            if "pb1-detectron2" in installed_dists():  # installed here before records existed
                installed = SDIST_NAME + " (pure Python, no compiled ops)"
            else:
                installed = "kept the detectron2 that was installed"
        else:
            install_v06(constraints_out)
            installed = SDIST_NAME + " (pure Python, no compiled ops)"
    write_record(record_path, wanted, torch_spec, installed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--constraints-out",
        help="install into this environment; write the constraints in force here",
    )
    mode.add_argument("--download-to", help="only download the verified sdist into this folder")
    mode.add_argument(
        "--offline-target",
        help="install ALS_D2_DETECTRON2_SDIST into this folder (pip --target, no deps)",
    )
    mode.add_argument(
        "--identify",
        metavar="SRC",
        help="print the identity (JSON) of a detectron2 source and exit",
    )
    parser.add_argument(
        "--src",
        default="",
        help="a detectron2 source tree or archive to build (default: pb1-detectron2 0.6)",
    )
    parser.add_argument(
        "--record", help="JSON file recording the installed source (with --constraints-out)"
    )
    parser.add_argument(
        "--torch-spec",
        default="",
        help="the torch requirement in force (recorded; a change re-installs)",
    )
    args = parser.parse_args()
    if args.download_to:
        download_to(args.download_to)
        return
    if args.offline_target:
        install_offline(args.offline_target)
        return
    if args.identify is not None:
        print(json.dumps(identify_source(args.identify)))
        return
    install_into_env(args.constraints_out, args.src, args.record, args.torch_spec)


if __name__ == "__main__":
    main()
