#!/usr/bin/env bash
# Fill .whl/ (git-ignored) with what benchmarks/gpu_check.sh installs on a lent GPU
# machine, where nothing can be fetched: detectron2 v0.6's pure-Python dependencies that
# the machine's image lacks (wheels for CPython 3.12 / manylinux x86-64, sdists where no
# wheel exists) and the verified pb1-detectron2 0.6 sdist. About 1 MB. Run here, with
# the package index reachable:   bash benchmarks/gpu_bundle.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=.whl
PY=${PYTHON:-python3}
mkdir -p "$DEST"
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$DEST" iopath==0.1.9 yacs==0.1.8 termcolor==3.3.0 pycocotools==2.0.11 omegaconf==2.3.1
$PY -m pip download -q --no-deps --no-binary=:all: -d "$DEST" \
  fvcore==0.1.5.post20221221 antlr4-python3-runtime==4.9.3
$PY tools/install_detectron2.py --download-to "$DEST"
ls -l "$DEST"
