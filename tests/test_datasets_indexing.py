"""als_d2.data.datasets.indexing: what the index builders share (counted problems, boxes
clipped to their image, paths inside the root, the process pool)."""

import functools
import os
import random

import numpy as np
import pytest

from als_d2.data.datasets.indexing import Tally, clip_box, map_in_processes, require_folder_in_root


def test_tally_keeps_counts_and_at_most_max_examples():
    a, b = Tally(2), Tally(None)
    for i in range(3):
        b.add("bad", f"b{i}")
    b.add("other", "o", n=4)
    a.add("bad", "a1")
    a.merge(b)
    assert a.stats == {"bad": 4, "other": 4}
    assert a.examples == {"bad": ["a1", "b0"], "other": ["o"]}
    everything = Tally(None)
    everything.merge(b)
    assert everything.examples["bad"] == ["b0", "b1", "b2"]


def test_clip_box_agrees_with_numpy_and_counts():
    rng = random.Random(0)
    tally = Tally(None)
    expected = {"degenerate_boxes": 0, "clipped_boxes": 0}
    for _ in range(500):
        width, height = rng.randint(1, 50), rng.randint(1, 50)
        box = tuple(float(rng.randint(-20, 70)) for _ in range(4))
        want = np.clip(np.array(box), 0, [width, height, width, height])
        empty = want[2] <= want[0] or want[3] <= want[1]
        got = clip_box(box, width, height, tally, "x")
        if empty:
            expected["degenerate_boxes"] += 1
            assert got is None
        else:
            expected["clipped_boxes"] += int(not np.array_equal(want, box))
            assert np.array_equal(got, want)
    assert dict(tally.stats) == expected and all(expected.values())
    assert tally.examples["clipped_boxes"][0].startswith("x (")


def _scaled(task, context):
    return task * context["factor"], os.getpid()


@pytest.mark.parametrize("workers", [1, 2])
def test_map_in_processes_runs_every_task_in_order(workers):
    scaled = functools.partial(_scaled, context={"factor": 3})  # picklable for the workers
    out = map_in_processes(scaled, list(range(7)), workers, "test")
    assert [v for v, _ in out] == [3 * t for t in range(7)]
    assert ({pid for _, pid in out} == {os.getpid()}) == (workers == 1)
    assert map_in_processes(abs, [-2, 5], workers, "test") == [2, 5]


def test_folders_outside_the_root_are_refused(tmp_path):
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    (root / "linked").symlink_to(elsewhere)
    real_root = os.path.realpath(root)
    require_folder_in_root(str(root), real_root, "folder")
    with pytest.raises(FileNotFoundError, match=f"images {root / 'missing'} not found"):
        require_folder_in_root(str(root / "missing"), real_root, "images")
    with pytest.raises(ValueError, match="outside the dataset root"):
        require_folder_in_root(str(root / "linked"), real_root, "images")


def test_every_reader_counts_kinds_of_the_one_table():
    """The kinds each reader declares are rows of KINDS, each with a known severity and a
    meaning; the skipped ImageNet counters are the ones the ImageNet index counts."""
    from als_d2.data.datasets import imagenet_index, openimages_index, wsol_metadata
    from als_d2.data.datasets.indexing import FATAL, FIXED, KINDS, NOTED, SKIPPED

    for counters in (
        imagenet_index.COUNTERS,
        openimages_index.COUNTERS,
        openimages_index.LABEL_COUNTERS,
        wsol_metadata.COUNTERS,
    ):
        assert len(set(counters)) == len(counters)
        assert set(counters) <= set(KINDS), set(counters) - set(KINDS)
    assert all(sev in (FATAL, SKIPPED, FIXED, NOTED) and meaning for sev, meaning in KINDS.values())
    assert set(imagenet_index.SKIP_COUNTERS) == set(imagenet_index.COUNTERS) - {
        "rescaled_files",
        "clipped_boxes",
    }


def test_problem_messages_take_severity_and_meaning_from_the_table():
    import logging

    from als_d2.data.datasets.indexing import KINDS, problem_messages

    stats = {"bad_rows": 2, "clipped_boxes": 1, "missing_images": 0, "rows": 9}
    examples = {"bad_rows": ["f.csv:3: x", "f.csv:7: y", "f.csv:8: z", "f.csv:9: w"]}
    out = problem_messages("here", stats, examples, ("clipped_boxes", "missing_images", "bad_rows"))
    assert out == [
        (logging.INFO, f"here: clipped_boxes = 1 [fixed: {KINDS['clipped_boxes'][1]}] (e.g. )"),
        (
            logging.WARNING,
            f"here: bad_rows = 2 [skipped: {KINDS['bad_rows'][1]}] "
            "(e.g. f.csv:3: x; f.csv:7: y; f.csv:8: z)",
        ),
    ]
