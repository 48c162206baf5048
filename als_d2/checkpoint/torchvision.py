"""Rename state-dict keys between torchvision's ResNet and als_d2's ImageClassifier.

Both use the same tensor shapes (torchvision's convention: stride in the 3x3 conv, RGB
input), so only names change: torchvision ``layer{s}`` is detectron2's ``res{s+1}``,
``bn{k}`` is ``conv{k}.norm``, ``downsample.{0,1}`` is ``shortcut`` / ``shortcut.norm``
and ``fc`` is the classifier's ``head``.
"""

import re
from typing import Dict

import torch

# (torchvision key, ImageClassifier key). {s}: torchvision stage 1-4, {r} = s + 1,
# {b}: block, {k}: conv index, {p}: parameter or buffer name.
_RULES = (
    ("conv1.weight", "backbone.stem.conv1.weight"),
    ("bn1.{p}", "backbone.stem.conv1.norm.{p}"),
    ("layer{s}.{b}.conv{k}.weight", "backbone.res{r}.{b}.conv{k}.weight"),
    ("layer{s}.{b}.bn{k}.{p}", "backbone.res{r}.{b}.conv{k}.norm.{p}"),
    ("layer{s}.{b}.downsample.0.weight", "backbone.res{r}.{b}.shortcut.weight"),
    ("layer{s}.{b}.downsample.1.{p}", "backbone.res{r}.{b}.shortcut.norm.{p}"),
    ("fc.{p}", "head.{p}"),
)


def _pattern(template: str) -> "re.Pattern":
    regex = re.escape(template).replace(r"\{p\}", r"(?P<p>\w+)")
    for field in "srbk":
        regex = regex.replace(r"\{" + field + r"\}", rf"(?P<{field}>\d+)")
    return re.compile(regex)


_COMPILED = tuple((_pattern(tv), _pattern(als), tv, als) for tv, als in _RULES)


def _rename(key: str, to_als: bool) -> str:
    for tv_re, als_re, tv, als in _COMPILED:
        m = (tv_re if to_als else als_re).fullmatch(key)
        if m:
            fields = m.groupdict()
            if "s" in fields:
                fields["r"] = int(fields["s"]) + 1
            elif "r" in fields:
                fields["s"] = int(fields["r"]) - 1
            return (als if to_als else tv).format(**fields)
    raise KeyError(
        f"unexpected {'torchvision ResNet' if to_als else 'als_d2 classifier'} key {key!r}"
    )


def torchvision_to_als(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """torchvision ResNet state dict -> ImageClassifier state dict (same tensors)."""
    return {_rename(k, to_als=True): v for k, v in state_dict.items()}


def als_to_torchvision(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """ImageClassifier state dict -> torchvision ResNet state dict (same tensors)."""
    return {_rename(k, to_als=False): v for k, v in state_dict.items()}
