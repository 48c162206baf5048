#!/usr/bin/env python
"""Install als-d2: Adaptive Label Smoothing pretraining and COCO transfer on detectron2.

detectron2 is not on the package index under its own name, so it is not listed in
``install_requires``: build the official one from git, or run ``make setup``.
"""

from setuptools import find_packages, setup

setup(
    name="als_d2",
    version="0.1.0",
    description="Adaptive Label Smoothing (objectness-aware soft labels) on detectron2",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(exclude=("tests", "tests.*", "benchmarks", "tools")),
    install_requires=[
        "torch",
        "torchvision",
        "fvcore",
        "iopath",
        "lxml",
        "pycocotools",
        "Pillow",
        "matplotlib",
        "tqdm",
        "tensorboard",
        "submitit",  # tools/submit.py: SLURM jobs
    ],
    extras_require={"dev": ["pytest", "pytest-xdist>=3.8", "ruff==0.17.6", "scikit-learn"]},
)
