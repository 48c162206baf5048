# als-d2: set-up, tests, demo.  `make setup` is idempotent; `make test` and `make demo`
# run it first, so both work on a fresh machine.
PYTHON ?= python3
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
# The environment; several can live side by side, e.g. VENV=.venv-d2main for detectron2 main.
VENV ?= .venv
# Empty: detectron2 v0.6 from the package index (pure Python). A detectron2 source tree or
# archive (e.g. ../shared/vendor/detectron2-main-02b5c4e.tar.gz): built with its C++ ops.
DETECTRON2_SRC ?=
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PYTEST_ARGS ?=
# pytest-xdist processes of `make test`, whole test files each (module fixtures built once),
# handed out in the order of tests/conftest.py (--no-loadscope-reorder: xdist would otherwise
# start the files with the most tests first); 0 = all in this process.
TEST_WORKERS ?= 2

.PHONY: setup test demo demo-quick env bench clean-venv lint

setup: $(VENV)/.als-d2-installed

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch: re-installed only when TORCH_SPEC changes (the stamp records it).
$(VENV)/.torch-spec: $(PY) FORCE
	@if [ "$$(cat $@ 2>/dev/null)" != "$(TORCH_SPEC)" ]; then \
	  echo "[setup] installing $(TORCH_SPEC)"; \
	  $(PIP) install -q $(TORCH_SPEC) && echo "$(TORCH_SPEC)" > $@; \
	fi

# detectron2: without DETECTRON2_SRC, keep one that imports, otherwise pb1-detectron2==0.6
# without its C++ ops; with it, a wheel built from that source (MAX_JOBS=2 by default).
# $(VENV)/.detectron2-source.json records the source installed (content sha256) and the
# TORCH_SPEC it was built for: the installer returns at once when both match, and
# re-installs when either changes (switching sources replaces the detectron2 it installed).
$(VENV)/.detectron2-constraints.txt: $(VENV)/.torch-spec FORCE
	@$(PY) tools/install_detectron2.py --constraints-out $@ --record $(VENV)/.detectron2-source.json \
	  --torch-spec "$(TORCH_SPEC)" --src "$(DETECTRON2_SRC)"

$(VENV)/.als-d2-installed: $(VENV)/.detectron2-constraints.txt setup.py
	$(PIP) install -q -c $(VENV)/.detectron2-constraints.txt -e '.[dev]'
	@touch $@

FORCE:

# ruff (pyproject.toml): lint, then formatting.
lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder tests $(PYTEST_ARGS)

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
