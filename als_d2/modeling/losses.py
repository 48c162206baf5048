"""Losses on soft targets."""

import torch
import torch.nn.functional as F

__all__ = ["soft_cross_entropy"]


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """
    Cross-entropy with soft targets, mean over the batch: mean_i -sum_k t_ik log p_ik.

    Args:
        logits: NxK (any float dtype; computed in float32 or wider with log_softmax).
        targets: NxK, rows summing to 1.

    Returns:
        scalar tensor (float32 or the logits' dtype if wider).
    """
    dtype = torch.promote_types(logits.dtype, torch.float32)
    logp = F.log_softmax(logits.to(dtype), dim=1)
    return -(targets.to(dtype) * logp).sum(dim=1).mean()
