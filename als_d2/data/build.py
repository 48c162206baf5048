"""Classification data loaders built from detectron2's pieces, resumable to the sample.

Training samples are drawn like d2's ``TrainingSampler`` (an endless stream of seeded
permutations, sharded over ranks), but each sample also carries its position in the
global stream, and the augmentation RNGs (python, numpy, torch) are seeded from
(seed, position) right before the mapper runs. A sample's crop, flip, jitter and
'context' draw therefore depend only on the seed and its position: not on the number of
workers, and not on whether the run was interrupted and resumed (the loader of a
resumed run starts at ``start_iter * IMS_PER_BATCH``).

Skipped samples: when the mapper returns None (an image it cannot decode, say), the
training dataset draws another index (deterministically) and records how many draws it
needed under :data:`SKIPPED_KEY` in the returned dict. The count travels with the batch
out of the loader's worker processes; the trainer removes the key and sums it into
EventStorage (``data/skipped_samples``). Evaluation never skips: a None is an error.

Batches are detectron2's lists of dicts, but :func:`pack_batch` (the loaders'
``collate_fn``) puts the images of a batch in one storage and returns a
:class:`PackedBatch`, which a worker process hands to the trainer as one image block and
one box block (torch would otherwise pass a shared-memory file descriptor per tensor);
:func:`stacked_images` gives the model the N x 3 x H x W batch without a copy.
"""
import itertools
import logging
import random
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from detectron2.data import DatasetCatalog
from detectron2.data.build import build_batch_data_loader
from detectron2.data.common import DatasetFromList
from detectron2.data.samplers import InferenceSampler
from detectron2.utils import comm
from torch.utils.data import Dataset, Sampler

logger = logging.getLogger(__name__)

SKIPPED_KEY = "_skipped"  # samples the mapper skipped before this one (popped by the trainer)
MAX_SKIPS = 100  # in a row, for one sample: then the dataset is considered broken


def sample_seed(base_seed: int, position: int) -> int:
    """A 32-bit seed for the sample at ``position`` of the stream of run ``base_seed``."""
    return int(np.random.SeedSequence([base_seed % 2**63, position]).generate_state(1)[0])


def seed_all(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators (as d2's augmentations use them)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class PositionedTrainingSampler(Sampler):
    """Endless stream of ``(index, position)`` pairs for this rank.

    The global stream is the concatenation of permutations of ``range(size)`` drawn
    from ``seed``; rank ``r`` of ``W`` takes positions ``r, r + W, ...`` and starts at
    its ``start``-th element (``start = start_iter * batch_per_rank`` when resuming).
    """

    def __init__(self, size: int, seed: int, start: int = 0, shuffle: bool = True):
        if size <= 0:
            raise ValueError("PositionedTrainingSampler needs a non-empty dataset")
        self._size, self._seed, self._start, self._shuffle = size, seed, start, shuffle
        self._rank, self._world = comm.get_rank(), comm.get_world_size()

    def _global_stream(self) -> Iterator[Tuple[int, int]]:
        g = torch.Generator()
        g.manual_seed(self._seed)
        position = 0
        while True:
            order = torch.randperm(self._size, generator=g) if self._shuffle else torch.arange(self._size)
            for index in order.tolist():
                yield index, position
                position += 1

    def __iter__(self):
        mine = itertools.islice(self._global_stream(), self._rank, None, self._world)
        yield from itertools.islice(mine, self._start, None)


class SeededMapDataset(Dataset):
    """Maps ``dicts[index]`` with ``mapper`` after seeding the RNGs from the position.

    Keys are ``(index, position)`` pairs. When the mapper returns None (a sample it
    decided to skip), another index is drawn deterministically from the same seed; the
    returned dict carries the number of skipped draws under ``SKIPPED_KEY``.
    """

    def __init__(self, dicts: Sequence[dict], mapper: Callable[[dict], dict], base_seed: int):
        self._dicts = dicts
        self._mapper = mapper
        self._base_seed = base_seed

    def __len__(self) -> int:
        return len(self._dicts)

    def __getitem__(self, key: Tuple[int, int]) -> dict:
        index, position = key
        seed = sample_seed(self._base_seed, position)
        for attempt in range(MAX_SKIPS):
            seed_all(seed + attempt)
            d = self._dicts[index]
            out = self._mapper(d)
            if out is not None:
                out[SKIPPED_KEY] = attempt
                return out
            logger.warning(
                "skipped training sample %r (dataset index %d): the mapper returned None; drawing another",
                d.get("file_name", index), index,
            )
            index = random.Random(seed + attempt).randrange(len(self._dicts))
        raise RuntimeError(
            f"the mapper skipped {MAX_SKIPS} samples in a row (last index {index}); check the dataset "
            "with tools/check_dataset.py"
        )


def load_datasets(names: Sequence[str]) -> "Dict[str, List[dict]]":
    """``{name: dicts}`` of the registered datasets ``names``, in order (an empty one is an
    error naming it)."""
    if isinstance(names, str):
        names = [names]
    out: Dict[str, List[dict]] = {}
    for name in names:
        part = DatasetCatalog.get(name)
        if len(part) == 0:
            raise ValueError(f"dataset {name!r} is empty")
        out[name] = list(part)
    return out


def load_dataset_dicts(names: Sequence[str]) -> List[dict]:
    """Concatenate the dicts of the registered datasets ``names`` (with a clear error)."""
    return [d for part in load_datasets(names).values() for d in part]


def pop_skipped(batch: List[dict]) -> int:
    """Remove :data:`SKIPPED_KEY` from the dicts of a training batch; return its sum."""
    return sum(int(d.pop(SKIPPED_KEY, 0)) for d in batch)


class PackedBatch(list):
    """A list of mapped dicts (what detectron2's models take) whose ``image`` tensors are
    the consecutive rows of one block. Pickled (from a DataLoader worker to the trainer),
    it travels as that one block, the boxes of the batch concatenated, and the other
    fields: one shared-memory storage (one file descriptor) per batch instead of one per
    sample and tensor; unpickled, it is the same list of dicts again (views).
    """

    def __reduce__(self):
        batch = list(self)
        images = boxes = counts = None
        if _same_shape([d.get("image") for d in batch]):
            images = stacked_images([d["image"] for d in batch])  # a view when still packed
        if batch and all(isinstance(d.get("boxes"), torch.Tensor) for d in batch):
            counts = [d["boxes"].shape[0] for d in batch]
            boxes = torch.cat([d["boxes"] for d in batch])
        drop = {k for k, v in (("image", images), ("boxes", boxes)) if v is not None}
        rest = [{k: (None if k in drop else v) for k, v in d.items()} for d in batch]  # keeps key order
        return _unpack_batch, (rest, images, boxes, counts)


def _unpack_batch(rest, images, boxes, counts) -> PackedBatch:
    """Inverse of :meth:`PackedBatch.__reduce__`: the dicts, in their key order, with
    ``image`` (and ``boxes``) as views of the blocks."""
    batch = PackedBatch(rest)
    if images is not None:
        for d, im in zip(batch, images):
            d["image"] = im
    if boxes is not None:
        for d, b in zip(batch, boxes.split(counts)):
            d["boxes"] = b
    return batch


def _same_shape(tensors: Sequence) -> bool:
    """True for a non-empty sequence of tensors of one shape and dtype."""
    first = tensors[0] if len(tensors) else None
    return isinstance(first, torch.Tensor) and all(
        isinstance(t, torch.Tensor) and t.shape == first.shape and t.dtype == first.dtype
        for t in tensors
    )


def pack_batch(batch: List[dict]) -> List[dict]:
    """Collate a list of mapped dicts into the same list, its images in one block.

    When every ``image`` (3 x H x W) has the same shape and dtype, the images are copied
    into one N x 3 x H x W block (allocated in shared memory inside a DataLoader worker,
    as ``default_collate`` does) and each dict gets its row, a view. Returns a
    :class:`PackedBatch` (a list): from a worker, a batch crosses to the trainer as one
    image storage and one box storage. Other values are untouched.
    """
    if not batch:
        return batch
    images = [d.get("image") for d in batch]
    if _same_shape(images):
        first, out = images[0], None
        if torch.utils.data.get_worker_info() is not None:
            numel = first.numel() * len(images)
            out = first.new(first.untyped_storage()._new_shared(numel * first.element_size()))
            out = out.resize_(len(images), *first.shape)
        stacked = torch.stack(images, out=out)
        batch = [dict(d, image=im) for d, im in zip(batch, stacked)]
    return PackedBatch(batch)


def stacked_images(images: Sequence[torch.Tensor]) -> torch.Tensor:
    """N x C x H x W batch of ``images`` (each C x H x W): a view when they are the
    consecutive rows of one storage (as :func:`pack_batch` leaves them), else a copy."""
    first = images[0]
    numel = first.numel()
    if first.is_contiguous() and all(
        im.shape == first.shape
        and im.dtype == first.dtype
        and im.is_contiguous()
        and im.untyped_storage().data_ptr() == first.untyped_storage().data_ptr()
        and im.storage_offset() == first.storage_offset() + i * numel
        for i, im in enumerate(images)
    ):
        return first.as_strided((len(images),) + tuple(first.shape), (numel,) + first.stride())
    return torch.stack(list(images))


def build_cls_train_loader(
    dicts: Sequence[dict],
    mapper: Callable[[dict], dict],
    *,
    total_batch_size: int,
    seed: int,
    start_iter: int = 0,
    num_workers: int = 0,
    collate_fn: Optional[Callable[[List[dict]], List[dict]]] = pack_batch,
):
    """Endless loader of batches (lists of mapped dicts) for this rank, starting at
    ``start_iter``; ``collate_fn`` (default :func:`pack_batch`) sees each batch's list."""
    world = comm.get_world_size()
    if total_batch_size % world != 0:
        raise ValueError(f"SOLVER.IMS_PER_BATCH={total_batch_size} is not divisible by the {world} processes")
    sampler = PositionedTrainingSampler(len(dicts), seed, start=start_iter * (total_batch_size // world))
    dataset = SeededMapDataset(DatasetFromList(list(dicts), copy=False), mapper, seed)
    return build_batch_data_loader(
        dataset,
        sampler,
        total_batch_size,
        aspect_ratio_grouping=False,
        num_workers=num_workers,
        collate_fn=collate_fn,
    )


def build_cls_test_loader(
    dicts: Sequence[dict],
    mapper: Callable[[dict], dict],
    *,
    batch_size: int,
    num_workers: int = 0,
    skip_unreadable: bool = False,
):
    """Loader that visits every sample exactly once over all ranks (d2's InferenceSampler), in batches.

    A sample the mapper cannot map (returns None) is an error naming the file, unless
    ``skip_unreadable`` (``INPUT.CLS.SKIP_UNREADABLE_EVAL``): then it is dropped from its
    batch with a warning naming the file and the running count.
    """
    dataset = _MapDataset(DatasetFromList(list(dicts), copy=False), mapper, skip_unreadable)
    batch_sampler = torch.utils.data.BatchSampler(InferenceSampler(len(dataset)), batch_size, drop_last=False)
    return torch.utils.data.DataLoader(
        dataset, batch_sampler=batch_sampler, num_workers=num_workers, collate_fn=_drop_skipped
    )


def _drop_skipped(batch: List[dict]) -> List[dict]:
    return pack_batch([x for x in batch if x is not None])


class _MapDataset(Dataset):
    """Evaluation mapping: None from the mapper is an error, or (opt-in) a logged skip."""

    def __init__(self, dicts, mapper, skip_unreadable: bool = False):
        self._dicts, self._mapper, self._skip = dicts, mapper, skip_unreadable
        self._skipped = 0

    def __len__(self):
        return len(self._dicts)

    def __getitem__(self, index):
        d = self._dicts[index]
        out = self._mapper(d)
        if out is None:
            name = d.get("file_name", index)
            if not self._skip:
                raise RuntimeError(f"evaluation sample {name!r} could not be mapped")
            self._skipped += 1
            logger.warning(f"evaluation: skipped unreadable {name!r} ({self._skipped} so far in this worker)")
        return out
