"""Classification data loaders built from detectron2's pieces, resumable to the sample.

Training samples are drawn like d2's ``TrainingSampler`` (an endless stream of seeded
permutations, sharded over ranks), but each sample also carries its position in the
global stream, and the augmentation RNGs (python, numpy, torch) are seeded from
(seed, position) right before the mapper runs. A sample's crop, flip, jitter and
'context' draw therefore depend only on the seed and its position: not on the number of
workers, and not on whether the run was interrupted and resumed (the loader of a
resumed run starts at ``start_iter * IMS_PER_BATCH``). The batch sampler runs in the
trainer's process, so a batch is always the next consecutive positions of the stream.

Skipped samples, one count per loop: when the mapper returns None (an image it cannot
decode, say; the mapper's warning names the file), the training dataset draws another
index (deterministically) and records how many draws it needed under
:data:`SKIPPED_KEY` in the returned dict. The count travels with the batch out of the
loader's worker processes; the trainer removes the key and sums it into EventStorage
(``data/skipped_samples``). Evaluation does not skip (a None is an error) unless
``skip_unreadable``: then the workers drop the None samples from their batches, the
main process counts them as the batches arrive and puts the count under
:data:`SKIPPED_KEY` of a sample that arrives (:class:`_CountedTestBatches`), and the
evaluator sums those over the processes and reports the total once.

Batches are detectron2's lists of dicts (the samples of :mod:`als_d2.structures`). In
the worker processes :func:`collate_samples` stacks the images of a batch into one
N x 3 x H x W tensor (``default_collate``: in shared memory) and concatenates its boxes,
so a batch crosses to the trainer as two tensors (one shared-memory file each) instead of
two per sample; :func:`split_batch` makes the list of dicts again in the trainer's
process, whose images are the rows of that tensor (``stack_images`` of the model takes
them back without a copy).
"""

import itertools
import logging
import random
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from detectron2.data import DatasetCatalog
from detectron2.data.build import worker_init_reset_seed
from detectron2.data.common import DatasetFromList
from detectron2.data.samplers import InferenceSampler
from detectron2.utils import comm
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler, default_collate

logger = logging.getLogger(__name__)

# samples the mapper skipped before this one (popped by the trainer); in evaluation, those
# skipped in its batch or in emptied batches near it (summed by the evaluator)
SKIPPED_KEY = "_skipped"
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
            order = (
                torch.randperm(self._size, generator=g)
                if self._shuffle
                else torch.arange(self._size)
            )
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
            # the mapper's warning named the file: one warning per skipped image
            logger.debug(
                "skipped training sample %r (dataset index %d): drawing another",
                d.get("file_name", index),
                index,
            )
            index = random.Random(seed + attempt).randrange(len(self._dicts))
        raise RuntimeError(
            f"the mapper skipped {MAX_SKIPS} samples in a row (last index {index}); "
            "check the dataset with tools/check_dataset.py"
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


def _stackable(tensors: Sequence) -> bool:
    """True for a non-empty sequence of tensors of one shape and dtype."""
    first = tensors[0] if len(tensors) else None
    return isinstance(first, torch.Tensor) and all(
        isinstance(t, torch.Tensor) and t.shape == first.shape and t.dtype == first.dtype
        for t in tensors
    )


def collate_samples(samples: List[dict]) -> dict:
    """
    The loaders' ``collate_fn`` (in the worker processes): a batch of mapped samples as

    * ``images``: N x 3 x H x W, the stacked ``image`` tensors (``default_collate``, which
      allocates it in shared memory inside a worker); None when their shapes differ;
    * ``boxes``: the ``boxes`` (M_i x 4 tensors) concatenated, ``num_boxes``: the M_i;
      both None when a sample has no boxes tensor;
    * ``samples``: the dicts, in their key order, with None for the values moved above
      (samples that are None, skipped by the evaluation loader, are left out);
    * ``skipped``: how many samples were None.
    """
    kept = [s for s in samples if s is not None]  # None: skipped by the evaluation loader
    skipped, samples = len(samples) - len(kept), kept
    images = [s.get("image") for s in samples]
    boxes = [s.get("boxes") for s in samples]
    stack = _stackable(images)
    cat = bool(boxes) and all(
        isinstance(b, torch.Tensor)
        and b.dim() == 2
        and b.shape[1] == boxes[0].shape[1]
        and b.dtype == boxes[0].dtype
        for b in boxes
    )
    moved = {"image": None} if stack else {}
    if cat:
        moved["boxes"] = None
    return {
        "images": default_collate(images) if stack else None,
        "boxes": torch.cat(boxes) if cat else None,
        "num_boxes": [len(b) for b in boxes] if cat else None,
        "samples": [dict(s, **moved) for s in samples],
        "skipped": skipped,
    }


def split_batch(batch: dict) -> List[dict]:
    """Inverse of :func:`collate_samples` (in the trainer's process): detectron2's list of
    dicts, whose ``image`` and ``boxes`` are views of the batch's tensors."""
    samples = batch["samples"]
    if batch["images"] is not None:
        for s, image in zip(samples, batch["images"]):
            s["image"] = image
    if batch["boxes"] is not None:
        for s, boxes in zip(samples, batch["boxes"].split(batch["num_boxes"])):
            s["boxes"] = boxes
    return samples


class _SplitBatches:
    """Iterates a DataLoader whose batches :func:`collate_samples` made as lists of dicts."""

    def __init__(self, loader: DataLoader):
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[List[dict]]:
        return map(split_batch, self.loader)


class _CountedTestBatches(_SplitBatches):
    """The evaluation loader's batches when it may skip: counts in this (the main) process
    the samples the workers dropped (``skipped`` of :func:`collate_samples`), ``skipped``
    for the last pass. For the evaluator the count also rides on the samples: under
    :data:`SKIPPED_KEY` of the first sample of the batch that had them (or of the next
    batch, when none of its samples was left, and of the last batch for those at the end;
    a batch is held until the next one arrives for that)."""

    skipped = 0

    def __iter__(self) -> Iterator[List[dict]]:
        self.skipped = pending = 0
        held: Optional[List[dict]] = None
        for batch in self.loader:
            self.skipped += batch["skipped"]
            pending += batch["skipped"]
            samples = split_batch(batch)
            if not samples:  # all skipped: nothing to evaluate
                continue
            if held is not None:
                yield held
            if pending:
                samples[0][SKIPPED_KEY] = pending
            held, pending = samples, 0
        if held is not None:
            if pending:
                held[0][SKIPPED_KEY] = held[0].get(SKIPPED_KEY, 0) + pending
            yield held
        elif self.skipped:
            logger.warning(f"evaluation: all {self.skipped} samples of this process were skipped")


def build_cls_train_loader(
    dicts: Sequence[dict],
    mapper: Callable[[dict], dict],
    *,
    total_batch_size: int,
    seed: int,
    start_iter: int = 0,
    num_workers: int = 0,
    collate_fn: Optional[Callable[[List[dict]], list]] = None,
    pin_memory: bool = False,
):
    """Endless loader of batches (lists of mapped dicts) for this rank, starting at
    ``start_iter``. Batches cross from the workers as :func:`collate_samples` makes them,
    unless ``collate_fn`` is given (then its output is the batch). ``pin_memory``: the
    batches' tensors in page-locked memory (for asynchronous copies to a GPU)."""
    world = comm.get_world_size()
    if total_batch_size % world != 0:
        raise ValueError(
            f"SOLVER.IMS_PER_BATCH={total_batch_size} is not divisible by the {world} processes"
        )
    batch_size = total_batch_size // world
    sampler = PositionedTrainingSampler(len(dicts), seed, start=start_iter * batch_size)
    dataset = SeededMapDataset(DatasetFromList(list(dicts), copy=False), mapper, seed)
    return _data_loader(
        dataset,
        BatchSampler(sampler, batch_size, drop_last=True),
        num_workers,
        collate_fn,
        pin_memory,
    )


def build_cls_test_loader(
    dicts: Sequence[dict],
    mapper: Callable[[dict], dict],
    *,
    batch_size: int,
    num_workers: int = 0,
    skip_unreadable: bool = False,
    pin_memory: bool = False,
):
    """Loader that visits every sample exactly once over all ranks (d2's InferenceSampler),
    in batches.

    A sample the mapper cannot map (returns None) is an error naming the file, unless
    ``skip_unreadable`` (``INPUT.CLS.SKIP_UNREADABLE_EVAL``): then it is dropped from its
    batch (the mapper's warning names the file) and counted in this process: the
    loader's ``skipped`` after a pass, and :data:`SKIPPED_KEY` of the batches' samples,
    which :class:`~als_d2.evaluation.ClassificationEvaluator` sums over the processes.
    """
    dataset = _MapDataset(DatasetFromList(list(dicts), copy=False), mapper, skip_unreadable)
    batch_sampler = BatchSampler(InferenceSampler(len(dataset)), batch_size, drop_last=False)
    batches = _CountedTestBatches if skip_unreadable else _SplitBatches
    return _data_loader(dataset, batch_sampler, num_workers, None, pin_memory, batches)


def _data_loader(
    dataset,
    batch_sampler,
    num_workers: int,
    collate_fn,
    pin_memory: bool = False,
    batches=_SplitBatches,
):
    """A DataLoader of ``batch_sampler``'s batches; with ``collate_fn`` None, collated by
    :func:`collate_samples` in the workers and split into lists of dicts here by
    ``batches`` (:class:`_SplitBatches`)."""
    loader = DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        num_workers=num_workers,
        collate_fn=collate_samples if collate_fn is None else collate_fn,
        worker_init_fn=worker_init_reset_seed,
        pin_memory=pin_memory,
    )
    return batches(loader) if collate_fn is None else loader


class _MapDataset(Dataset):
    """Evaluation mapping: None from the mapper is an error, or (opt-in) a skip, which the
    mapper logged and the main process counts (:class:`_CountedTestBatches`)."""

    def __init__(self, dicts, mapper, skip_unreadable: bool = False):
        self._dicts, self._mapper, self._skip = dicts, mapper, skip_unreadable

    def __len__(self):
        return len(self._dicts)

    def __getitem__(self, index):
        d = self._dicts[index]
        out = self._mapper(d)
        if out is None and not self._skip:
            name = d.get("file_name", index)
            raise RuntimeError(f"evaluation sample {name!r} could not be mapped")
        return out
