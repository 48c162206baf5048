"""Shared pytest set-up: als_d2 is imported first, as every entry point does."""
import os

import als_d2  # noqa: F401  (registers the detectron2._C placeholder where needed)
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _single_thread_torch():
    """Keep tests deterministic and polite on 2-core machines (pytest-xdist runs 2 workers)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
