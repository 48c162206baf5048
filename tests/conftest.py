"""Shared pytest set-up: als_d2 is imported first, as every entry point does."""

import logging
import os

import als_d2  # noqa: F401  (registers the detectron2._C placeholder where needed)
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

# Test files started first under pytest-xdist (`make test`: whole files per process, in this
# order, --no-loadscope-reorder), longest first so that the two processes finish together:
# each took 45 s or more in a `--junitxml` report of `make test` on a 2-core machine (the
# quick demo alone about 140 s). The other files follow in their collection order.
LONGEST_FIRST = (
    "test_demo.py",
    "test_experiment_matrix.py",
    "test_tools_cli.py",
    "test_startup.py",
    "test_readme_commands.py",
    "test_submit.py",
    "test_kill_resume.py",
    "test_train_cls.py",
    "test_benchmarks.py",
)


def pytest_collection_modifyitems(config, items):
    """The files of :data:`LONGEST_FIRST` first, in its order; every file's tests in their
    own order."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(autouse=True)
def _single_thread_torch():
    """Keep tests deterministic and polite on 2-core machines (pytest-xdist runs 2 workers)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Dataset tests (test_datasets*.py, test_openimages.py, test_check_dataset.py)


@pytest.fixture
def single_index_worker(monkeypatch):
    """Dataset indexes (the prepare steps) built in one process."""
    monkeypatch.setenv("ALS_D2_INDEX_WORKERS", "1")


@pytest.fixture
def log_records():
    """Records of the als_d2.data.datasets loggers (independent of propagate settings)."""
    records = []

    class _Handler(logging.Handler):
        def emit(self, record):
            records.append(record)

    logger = logging.getLogger("als_d2.data.datasets")
    handler, old_level = _Handler(level=logging.DEBUG), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(old_level)


@pytest.fixture
def registered():
    """A list the test appends the names it registers to; removed from detectron2's
    DatasetCatalog and MetadataCatalog afterwards."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    names = []
    yield names
    for n in names:
        DatasetCatalog.remove(n)
        MetadataCatalog.remove(n)
