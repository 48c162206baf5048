#!/usr/bin/env python
"""Make detectron2 importable in the current Python environment (run by ``make setup``).

1. If ``import detectron2`` already works (for example the official build from git),
   keep it and pin nothing.
2. Otherwise install the package index's ``pb1-detectron2==0.6`` sdist, which is the
   official v0.6 Python package without the C++ sources of ``detectron2._C``:
   download it, verify its sha256, leave the C++ extension out of its ``setup.py`` and
   ``pip install --no-build-isolation`` it under the constraints that v0.6 needs on
   today's libraries (``tools/constraints-detectron2-v0.6.txt``).

Either way the constraints that apply to later installs into this environment are
written to ``--constraints-out`` (empty for an already present detectron2), so that
``pip install -e .`` cannot upgrade numpy past what v0.6 supports.

For a machine that cannot reach the package index (the GPU check,
``benchmarks/gpu_check.sh``): ``--download-to DIR`` saves the verified sdist here, and
``ALS_D2_DETECTRON2_SDIST=<sdist> --offline-target DIR`` installs it there into a
folder for PYTHONPATH, with no dependencies and no constraints.
"""
import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

SDIST_NAME = "pb1-detectron2==0.6"
SDIST_FILE = "pb1-detectron2-0.6.tar.gz"
SDIST_SHA256 = "5d2e9e51e523ec72f6a31cca04b0a515492e9514b773a3d134cedc0677170b29"
SDIST_URL = (
    "https://files.pythonhosted.org/packages/60/26/"
    "48f5bbb7ee492696a21da23303daeecdfe3942c498a70d34108acf63b2bd/" + SDIST_FILE
)
HERE = os.path.dirname(os.path.abspath(__file__))
V06_CONSTRAINTS = os.path.join(HERE, "constraints-detectron2-v0.6.txt")
EXTENSION_LINE = "ext_modules=get_extensions(),"


def detectron2_imports() -> bool:
    """True when ``import detectron2`` works in this interpreter (checked in a subprocess)."""
    return subprocess.call([sys.executable, "-c", "import detectron2"], stderr=subprocess.DEVNULL) == 0


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_sdist(workdir: str) -> str:
    """Download the sdist into ``workdir`` and return its verified path."""
    path = os.path.join(workdir, SDIST_FILE)
    cached = os.environ.get("ALS_D2_DETECTRON2_SDIST")  # a local copy, for offline machines
    if cached:
        shutil.copy(cached, path)
    else:
        import urllib.request

        print(f"[install_detectron2] downloading {SDIST_URL}", flush=True)
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
        raise SystemExit(f"[install_detectron2] {setup_py}: expected line {EXTENSION_LINE!r} not found")
    with open(setup_py, "w", encoding="utf-8") as f:
        f.write(text.replace(EXTENSION_LINE, "ext_modules=[],"))
    return src


def pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "-q", *args]
    print("[install_detectron2] " + " ".join(cmd), flush=True)
    subprocess.check_call(cmd)


def download_to(folder: str) -> str:
    """Save the verified sdist in ``folder`` (for machines that cannot reach the index)."""
    os.makedirs(folder, exist_ok=True)
    path = fetch_sdist(folder)
    print(f"[install_detectron2] saved {path}")
    return path


def install_offline(target: str) -> None:
    """Install the sdist given by ``ALS_D2_DETECTRON2_SDIST`` into the folder ``target``
    (``pip --target``, no dependencies, no index): for a machine with its own torch and
    numpy, where nothing can be fetched and nothing installed may be downgraded."""
    if not os.environ.get("ALS_D2_DETECTRON2_SDIST"):
        raise SystemExit("[install_detectron2] --offline-target needs ALS_D2_DETECTRON2_SDIST=<path of the sdist>")
    with tempfile.TemporaryDirectory() as workdir:
        src = unpack_without_extension(fetch_sdist(workdir), workdir)
        pip("--no-index", "--no-deps", "--no-build-isolation", "--target", target, src)
    print(f"[install_detectron2] installed detectron2 v0.6 (pure Python) into {target}.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--constraints-out", help="install into this environment; write the constraints in force here")
    mode.add_argument("--download-to", help="only download the verified sdist into this folder")
    mode.add_argument("--offline-target", help="install ALS_D2_DETECTRON2_SDIST into this folder (pip --target, no deps)")
    args = parser.parse_args()
    if args.download_to:
        download_to(args.download_to)
        return
    if args.offline_target:
        install_offline(args.offline_target)
        return

    if detectron2_imports():
        print("[install_detectron2] detectron2 already imports: keeping it, no pins.")
        if not os.path.exists(args.constraints_out):
            open(args.constraints_out, "w").close()
        return

    with tempfile.TemporaryDirectory() as workdir:
        src = unpack_without_extension(fetch_sdist(workdir), workdir)
        # v0.6's setup.py imports torch, and its pure-Python wheel needs no compiler.
        pip("-c", V06_CONSTRAINTS, "--no-build-isolation", src)
        # Pin the libraries detectron2 v0.6 needs even when nothing requested them yet.
        with open(V06_CONSTRAINTS) as f:
            pins = [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
        pip("-c", V06_CONSTRAINTS, *pins)
    shutil.copy(V06_CONSTRAINTS, args.constraints_out)
    if not detectron2_imports():
        raise SystemExit("[install_detectron2] detectron2 was installed but does not import")
    print("[install_detectron2] installed detectron2 v0.6 (pure Python, no compiled ops).")


if __name__ == "__main__":
    main()
