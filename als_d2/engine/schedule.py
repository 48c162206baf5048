"""The paper states its schedule in epochs; detectron2 counts iterations.

``apply_epoch_schedule(cfg, dataset_size)`` derives ``SOLVER.MAX_ITER``, ``STEPS``,
``WARMUP_ITERS`` (and checkpoint/eval periods) from ``SOLVER.EPOCHS`` and friends,
and scales ``BASE_LR`` linearly with ``IMS_PER_BATCH`` when ``LR_REFERENCE_BATCH`` is set.
With an iteration schedule (``SOLVER.EPOCHS 0``) the warm-up is ``SOLVER.WARMUP_ITERS``
(the classification configs set 0; ``WARMUP_EPOCHS`` belongs to epoch schedules, and a log
line says when it is not used); a warm-up of ``MAX_ITER`` or more (the lr would never leave
it, ``STEPS`` would not apply) is an error. The effective lr schedule is logged.
"""

import logging

from detectron2.config import CfgNode

from ..config import ConfigError

logger = logging.getLogger(__name__)


def iterations_for(epochs: float, dataset_size: int, batch_size: int) -> int:
    """Number of iterations of ``batch_size`` samples that make ``epochs`` passes (rounded)."""
    return int(round(epochs * dataset_size / batch_size))


def apply_epoch_schedule(cfg: CfgNode, dataset_size: int) -> CfgNode:
    """Return a copy of ``cfg`` with the iteration schedule derived (and logged)."""
    cfg = cfg.clone()
    was_frozen = cfg.is_frozen()
    cfg.defrost()
    solver = cfg.SOLVER
    batch = solver.IMS_PER_BATCH
    if solver.LR_REFERENCE_BATCH > 0:
        scaled = solver.BASE_LR * batch / solver.LR_REFERENCE_BATCH
        logger.info(
            f"Linear lr scaling: BASE_LR {solver.BASE_LR} at batch {solver.LR_REFERENCE_BATCH} "
            f"-> {scaled:g} at IMS_PER_BATCH {batch}"
        )
        solver.BASE_LR = scaled
        solver.LR_REFERENCE_BATCH = 0  # applied; a saved config must not scale twice
    if solver.EPOCHS > 0:
        per_epoch = dataset_size / batch
        solver.MAX_ITER = iterations_for(solver.EPOCHS, dataset_size, batch)
        solver.STEPS = tuple(iterations_for(e, dataset_size, batch) for e in solver.STEPS_EPOCHS)
        solver.WARMUP_ITERS = iterations_for(solver.WARMUP_EPOCHS, dataset_size, batch)
        if solver.CHECKPOINT_PERIOD_EPOCHS > 0:
            solver.CHECKPOINT_PERIOD = max(
                1, iterations_for(solver.CHECKPOINT_PERIOD_EPOCHS, dataset_size, batch)
            )
        if cfg.TEST.EVAL_PERIOD_EPOCHS > 0:
            cfg.TEST.EVAL_PERIOD = max(
                1, iterations_for(cfg.TEST.EVAL_PERIOD_EPOCHS, dataset_size, batch)
            )
        logger.info(
            f"Epoch schedule: {dataset_size} samples / batch {batch} = {per_epoch:.1f} iterations "
            f"per epoch; {solver.EPOCHS} epochs -> MAX_ITER {solver.MAX_ITER}, lr steps at epochs "
            f"{list(solver.STEPS_EPOCHS)} -> iterations {list(solver.STEPS)}, warmup "
            f"{solver.WARMUP_EPOCHS} epochs -> {solver.WARMUP_ITERS} iterations, checkpoint every "
            f"{solver.CHECKPOINT_PERIOD}, eval every {cfg.TEST.EVAL_PERIOD} iterations"
        )
        solver.EPOCHS = 0  # applied: MAX_ITER etc. are now authoritative
    else:  # a schedule in iterations (e.g. the OpenImages runs): say what it means here
        per_epoch = dataset_size / batch
        if solver.WARMUP_EPOCHS > 0:
            logger.info(
                f"SOLVER.WARMUP_EPOCHS {solver.WARMUP_EPOCHS} is not used with an iteration "
                f"schedule (SOLVER.EPOCHS 0): the warm-up is SOLVER.WARMUP_ITERS "
                f"{solver.WARMUP_ITERS}"
            )
        logger.info(
            f"Iteration schedule: MAX_ITER {solver.MAX_ITER} at batch {batch} over {dataset_size} "
            f"samples = {solver.MAX_ITER / per_epoch:.2f} epochs; lr steps at iterations "
            f"{list(solver.STEPS)} = epochs {[round(s / per_epoch, 2) for s in solver.STEPS]}"
        )
    check_warmup(cfg)
    logger.info(f"lr schedule: {describe_lr_schedule(cfg)}")
    if was_frozen:
        cfg.freeze()
    return cfg


def check_warmup(cfg: CfgNode) -> None:
    """A warm-up of ``SOLVER.MAX_ITER`` iterations or more is a :class:`ConfigError`: d2's
    scheduler would stretch it over the whole run and never apply ``SOLVER.STEPS``."""
    solver = cfg.SOLVER
    if solver.WARMUP_ITERS > 0 and solver.WARMUP_ITERS >= solver.MAX_ITER:
        raise ConfigError(
            f"config key SOLVER.WARMUP_ITERS = {solver.WARMUP_ITERS}: not below SOLVER.MAX_ITER "
            f"= {solver.MAX_ITER}, the whole run would be warm-up and SOLVER.STEPS would not "
            "apply; set SOLVER.WARMUP_ITERS below MAX_ITER (0: no warm-up) or "
            "SOLVER.WARMUP_EPOCHS"
        )


def describe_lr_schedule(cfg: CfgNode) -> str:
    """One line: base lr, warm-up and the lr from each step on (d2's WarmupMultiStepLR), or
    the cosine's start and end (d2's WarmupCosineLR)."""
    solver = cfg.SOLVER
    warmup = (
        f"{solver.WARMUP_METHOD} warm-up over {solver.WARMUP_ITERS} iterations from "
        f"{solver.WARMUP_FACTOR:g} x"
        if solver.WARMUP_ITERS > 0
        else "no warm-up"
    )
    if solver.LR_SCHEDULER_NAME == "WarmupCosineLR":
        return (
            f"cosine from lr {solver.BASE_LR:g} at iteration 0 to 0 at MAX_ITER "
            f"{solver.MAX_ITER}; {warmup}"
        )
    steps = [s for s in solver.STEPS if s < solver.MAX_ITER]
    lrs = [solver.BASE_LR * solver.GAMMA**k for k in range(len(steps) + 1)]
    parts = [f"lr {lrs[0]:g} from iteration 0"]
    parts += [f"{lr:g} from {s}" for s, lr in zip(steps, lrs[1:])]
    return f"{', '.join(parts)} to MAX_ITER {solver.MAX_ITER}; {warmup}"
