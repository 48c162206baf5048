#!/usr/bin/env bash
# The GPU check of issue 8, as one command for a lent GPU machine (its image has
# python3 with torch, torchvision, numpy, Pillow, lxml, matplotlib; no detectron2):
#
#   here:   bash benchmarks/gpu_bundle.sh                       # .whl/, once, ~1 MB
#   device: run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=540)
#
# Installs the bundle into /tmp (no index, no dependency resolution: the image's torch
# and numpy stay), prints the environment, then benchmarks/train_step.py on the GPU
# (ResNet-50, 224 px, batch 256: fp32, bf16, bf16 + channels_last; images/s and peak
# memory), with what SOLVER.AMP.PRECISION auto picks on this card ("amp_auto": bf16 only from
# compute capability 8.0) and the host-device syncs of one step ("host_syncs_per_step", torch's
# sync debug mode). Results in $OUT (env.txt, train_step.log, train_step.json).
# DEVICE=cpu TRAIN_STEP_ARGS=--quick runs the same path on a CPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
OUT=${OUT:-/tmp/als_gpu_check}
SITE=${SITE:-/tmp/als_gpu_site}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
shopt -s nullglob
deps=(.whl/*.whl .whl/fvcore-*.tar.gz .whl/antlr4-python3-runtime-*.tar.gz)
sdist=(.whl/pb1-detectron2-*.tar.gz)
if [ ${#sdist[@]} -ne 1 ] || [ ${#deps[@]} -lt 7 ]; then
  echo "gpu_check: .whl/ is incomplete (run bash benchmarks/gpu_bundle.sh here, carry .whl)" >&2
  exit 2
fi
$PY -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target "$SITE/deps" "${deps[@]}"
ALS_D2_DETECTRON2_SDIST="${sdist[0]}" $PY tools/install_detectron2.py --offline-target "$SITE/d2"
export PYTHONPATH="$SITE/deps:$SITE/d2:$PWD${PYTHONPATH:+:$PYTHONPATH}"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
  $PY -m als_d2.env; } | tee "$OUT/env.txt"
$PY benchmarks/train_step.py --device "$DEVICE" ${TRAIN_STEP_ARGS:-} | tee "$OUT/train_step.log"
tail -n 1 "$OUT/train_step.log" > "$OUT/train_step.json"
