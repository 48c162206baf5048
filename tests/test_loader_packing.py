"""pack_batch / stacked_images: a batch crosses from the loader's workers as one image
storage, and the model stacks it without a copy; contents are what the mapper made."""
import io
import pickle

import als_d2  # noqa: F401  (before detectron2)
import torch

from als_d2.data.build import PackedBatch, build_cls_train_loader, pack_batch, stacked_images


def _sample(i, n_boxes=None):
    n = i % 3 if n_boxes is None else n_boxes
    return {
        "image": torch.full((3, 4, 5), i, dtype=torch.uint8),
        "boxes": torch.arange(4 * n, dtype=torch.float32).reshape(n, 4) + 100 * i,
        "label": i,
    }


def test_pack_batch_shares_one_storage_and_keeps_contents():
    batch = [_sample(i) for i in range(4)]
    out = pack_batch([dict(d) for d in batch])
    assert [d["label"] for d in out] == [0, 1, 2, 3]
    for o, b in zip(out, batch):
        assert torch.equal(o["image"], b["image"]) and torch.equal(o["boxes"], b["boxes"])
    assert len({o["image"].untyped_storage().data_ptr() for o in out}) == 1
    assert isinstance(out, list) and isinstance(out, PackedBatch)


def test_packed_batch_pickles_as_one_block_and_comes_back_equal():
    batch = pack_batch([dict(_sample(i), context=bool(i % 2)) for i in range(4)])
    calls = []

    class Counting(pickle.Pickler):  # counts the tensors pickled (torch reduces each one)
        def reducer_override(self, obj):
            if isinstance(obj, torch.Tensor):
                calls.append(tuple(obj.shape))
            return NotImplemented

    buf = io.BytesIO()
    Counting(buf).dump(batch)
    assert sorted(calls) == sorted([(4, 3, 4, 5), (3, 4)])  # the image block, 0+1+2+0 boxes
    back = pickle.loads(buf.getvalue())
    assert isinstance(back, PackedBatch) and len(back) == 4
    for b, i in zip(back, range(4)):
        assert list(b) == list(batch[i])  # same keys, same order
        assert torch.equal(b["image"], torch.full((3, 4, 5), i, dtype=torch.uint8))
        assert torch.equal(b["boxes"], _sample(i)["boxes"])
        assert b["label"] == i and b["context"] == bool(i % 2)
    assert len({b["image"].untyped_storage().data_ptr() for b in back}) == 1
    assert [b["boxes"].shape[0] for b in back] == [0, 1, 2, 0]
    batch[1]["image"] = torch.zeros(3, 4, 5, dtype=torch.uint8)  # replaced after packing: still right
    again = pickle.loads(pickle.dumps(batch))
    assert [int(b["image"].float().mean()) for b in again] == [0, 0, 2, 3]


def test_pack_batch_leaves_mixed_shapes_and_missing_boxes_alone():
    batch = [_sample(0), dict(_sample(1), image=torch.zeros(3, 6, 5, dtype=torch.uint8))]
    del batch[1]["boxes"]
    out = pack_batch(batch)
    assert out[0]["image"] is batch[0]["image"] and out[1]["image"] is batch[1]["image"]
    back = pickle.loads(pickle.dumps(out))
    assert torch.equal(back[1]["image"], batch[1]["image"]) and "boxes" not in back[1]
    assert torch.equal(back[0]["boxes"], batch[0]["boxes"])
    assert pack_batch([]) == []


def test_stacked_images_is_a_view_only_for_consecutive_rows():
    out = pack_batch([_sample(i) for i in range(3)])
    images = [d["image"] for d in out]
    view = stacked_images(images)
    assert view.shape == (3, 3, 4, 5)
    assert view.data_ptr() == images[0].data_ptr()  # no copy
    assert [int(v.float().mean()) for v in view] == [0, 1, 2]
    shuffled = stacked_images(images[::-1])  # not consecutive: a copy, right order
    assert shuffled.data_ptr() != images[0].data_ptr()
    assert [int(v.float().mean()) for v in shuffled] == [2, 1, 0]
    loose = stacked_images([_sample(i)["image"] for i in range(2)])
    assert [int(v.float().mean()) for v in loose] == [0, 1]


def _mapper(d):
    return _sample(d["index"])


def test_worker_batches_arrive_packed_with_the_mapped_contents():
    dicts = [{"index": i} for i in range(10)]
    loader = build_cls_train_loader(dicts, _mapper, total_batch_size=4, seed=3, num_workers=2)
    it = iter(loader)
    for _ in range(3):
        batch = next(it)
        assert len(batch) == 4 and isinstance(batch, PackedBatch)
        assert len({d["image"].untyped_storage().data_ptr() for d in batch}) == 1
        assert len({d["boxes"].untyped_storage().data_ptr() for d in batch if len(d["boxes"])}) <= 1
        for d in batch:  # the image and boxes of sample i, as the mapper built them
            i = d["label"]
            assert torch.equal(d["image"], torch.full((3, 4, 5), i, dtype=torch.uint8))
            assert torch.equal(d["boxes"], _sample(i)["boxes"])
        images = stacked_images([d["image"] for d in batch])
        assert images.data_ptr() == batch[0]["image"].data_ptr()
        assert torch.equal(images, torch.stack([torch.full((3, 4, 5), d["label"], dtype=torch.uint8) for d in batch]))
    del it
