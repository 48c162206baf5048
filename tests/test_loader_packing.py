"""collate_samples / split_batch / stack_images: a batch crosses from the loader's workers
as one image tensor and one box tensor, and the model stacks it without a copy; contents
are what the mapper made."""

import ast
import io
import os
import pickle

import als_d2  # noqa: F401  (before detectron2)
import torch

from als_d2.data.build import (
    build_cls_test_loader,
    build_cls_train_loader,
    collate_samples,
    split_batch,
)
from als_d2.structures import stack_images

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _sample(i, n_boxes=None):
    n = i % 3 if n_boxes is None else n_boxes
    return {
        "image": torch.full((3, 4, 5), i, dtype=torch.uint8),
        "boxes": torch.arange(4 * n, dtype=torch.float32).reshape(n, 4) + 100 * i,
        "label": i,
    }


def test_collate_stacks_images_and_concatenates_boxes():
    batch = [_sample(i) for i in range(4)]
    out = split_batch(collate_samples([dict(d) for d in batch]))
    assert isinstance(out, list) and [d["label"] for d in out] == [0, 1, 2, 3]
    for o, b in zip(out, batch):
        assert torch.equal(o["image"], b["image"]) and torch.equal(o["boxes"], b["boxes"])
    assert len({o["image"].untyped_storage().data_ptr() for o in out}) == 1
    assert len({o["boxes"].untyped_storage().data_ptr() for o in out}) == 1


def test_collated_batch_pickles_as_two_tensors_and_comes_back_equal():
    batch = [dict(_sample(i), context=bool(i % 2)) for i in range(4)]
    calls = []

    class Counting(pickle.Pickler):  # counts the tensors pickled (torch reduces each one)
        def reducer_override(self, obj):
            if isinstance(obj, torch.Tensor):
                calls.append(tuple(obj.shape))
            return NotImplemented

    buf = io.BytesIO()
    Counting(buf).dump(collate_samples([dict(d) for d in batch]))
    assert sorted(calls) == sorted([(4, 3, 4, 5), (3, 4)])  # the image block, 0+1+2+0 boxes
    back = split_batch(pickle.loads(buf.getvalue()))
    assert len(back) == 4
    for b, d, i in zip(back, batch, range(4)):
        assert list(b) == list(d)  # same keys, same order
        assert torch.equal(b["image"], torch.full((3, 4, 5), i, dtype=torch.uint8))
        assert torch.equal(b["boxes"], _sample(i)["boxes"])
        assert b["label"] == i and b["context"] == bool(i % 2)
    assert len({b["image"].untyped_storage().data_ptr() for b in back}) == 1
    assert [b["boxes"].shape[0] for b in back] == [0, 1, 2, 0]


def test_mixed_shapes_missing_boxes_and_skipped_samples_left_alone():
    batch = [_sample(0), dict(_sample(1), image=torch.zeros(3, 6, 5, dtype=torch.uint8))]
    del batch[1]["boxes"]
    collated = collate_samples(batch + [None])  # None: skipped in evaluation
    assert collated["images"] is None and collated["boxes"] is None
    assert collated["skipped"] == 1 and collate_samples(batch)["skipped"] == 0
    out = split_batch(pickle.loads(pickle.dumps(collated)))
    assert len(out) == 2 and "boxes" not in out[1]
    assert torch.equal(out[1]["image"], batch[1]["image"]) and torch.equal(
        out[0]["image"], batch[0]["image"]
    )
    assert torch.equal(out[0]["boxes"], batch[0]["boxes"])
    assert split_batch(collate_samples([])) == []


def test_stack_images_is_a_view_only_for_consecutive_rows():
    out = split_batch(collate_samples([_sample(i) for i in range(3)]))
    images = [d["image"] for d in out]
    view = stack_images(images)
    assert view.shape == (3, 3, 4, 5)
    assert view.data_ptr() == images[0].data_ptr()  # no copy
    assert [int(v.float().mean()) for v in view] == [0, 1, 2]
    shuffled = stack_images(images[::-1])  # not consecutive: a copy, right order
    assert shuffled.data_ptr() != images[0].data_ptr()
    assert [int(v.float().mean()) for v in shuffled] == [2, 1, 0]
    loose = stack_images([_sample(i)["image"] for i in range(2)])
    assert [int(v.float().mean()) for v in loose] == [0, 1]


def _mapper(d):
    return _sample(d["index"])


def test_worker_batches_arrive_as_rows_of_one_block():
    dicts = [{"index": i} for i in range(10)]
    loader = build_cls_train_loader(dicts, _mapper, total_batch_size=4, seed=3, num_workers=2)
    it = iter(loader)
    labels = []
    for _ in range(3):
        batch = next(it)
        assert isinstance(batch, list) and len(batch) == 4
        assert len({d["image"].untyped_storage().data_ptr() for d in batch}) == 1
        assert len({d["boxes"].untyped_storage().data_ptr() for d in batch if len(d["boxes"])}) <= 1
        for d in batch:  # the image and boxes of sample i, as the mapper built them
            i = d["label"]
            assert torch.equal(d["image"], torch.full((3, 4, 5), i, dtype=torch.uint8))
            assert torch.equal(d["boxes"], _sample(i)["boxes"])
        images = stack_images([d["image"] for d in batch])
        assert images.data_ptr() == batch[0]["image"].data_ptr()
        assert torch.equal(
            images,
            torch.stack([torch.full((3, 4, 5), d["label"], dtype=torch.uint8) for d in batch]),
        )
        labels.append([d["label"] for d in batch])
    del it
    # the batches do not depend on the number of workers
    same = iter(build_cls_train_loader(dicts, _mapper, total_batch_size=4, seed=3, num_workers=0))
    assert [[d["label"] for d in next(same)] for _ in range(3)] == labels
    test = build_cls_test_loader(dicts, _mapper, batch_size=4, num_workers=2)
    assert len(test) == 3 and [d["label"] for b in test for d in b] == list(range(10))


def test_the_model_does_not_import_the_data_package():
    with open(os.path.join(REPO, "als_d2", "modeling", "classifier.py")) as f:
        tree = ast.parse(f.read())
    modules = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    modules += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert modules and not [
        m for m in modules if m == "data" or m.startswith(("data.", "als_d2.data"))
    ]
