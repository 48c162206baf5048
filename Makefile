# als-d2: set-up, tests, demo.  `make setup` is idempotent; `make test` and `make demo`
# run it first, so both work on a fresh machine.
PYTHON ?= python3
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PYTEST_ARGS ?=

.PHONY: setup test demo demo-quick env bench clean-venv

setup: $(VENV)/.als-d2-installed

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch: re-installed only when TORCH_SPEC changes (the stamp records it).
$(VENV)/.torch-spec: $(PY) FORCE
	@if [ "$$(cat $@ 2>/dev/null)" != "$(TORCH_SPEC)" ]; then \
	  echo "[setup] installing $(TORCH_SPEC)"; \
	  $(PIP) install -q $(TORCH_SPEC) && echo "$(TORCH_SPEC)" > $@; \
	fi

# detectron2: keep one that imports, otherwise pb1-detectron2==0.6 without its C++ ops.
$(VENV)/.detectron2-constraints.txt: $(VENV)/.torch-spec tools/install_detectron2.py tools/constraints-detectron2-v0.6.txt
	$(PY) tools/install_detectron2.py --constraints-out $@

$(VENV)/.als-d2-installed: $(VENV)/.detectron2-constraints.txt setup.py
	$(PIP) install -q -c $(VENV)/.detectron2-constraints.txt -e '.[dev]'
	@touch $@

FORCE:

test: setup
	$(PY) -m pytest -q tests $(PYTEST_ARGS)

demo: setup
	$(PY) tools/demo.py

demo-quick: setup
	$(PY) tools/demo.py --quick

env: setup
	$(PY) -m als_d2.env

# CPU benchmarks (training step, then the data path); the last line is the loader's JSON.
bench: setup
	$(PY) benchmarks/run_all.py --out output/bench

clean-venv:
	rm -rf $(VENV)
