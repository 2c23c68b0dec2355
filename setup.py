"""Packaging for ader-tf: ADER continual learning for session-based recommendation."""

from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="ader-tf",
    version="0.1.0",
    description=(
        "ADER (Mi, Lin, Faltings, RecSys 2020): continual learning for session-based "
        "recommendation in TensorFlow 2 / Keras 3"
    ),
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["ader_tf", "ader_tf.*", "preprocessing", "preprocessing.*"]),
    install_requires=[
        "tensorflow>=2.16",
        "tensorboard",
        "numpy",
        "scipy",
        "pandas",
        "pyarrow",
        "absl-py",
        "tqdm",
        "matplotlib",
    ],
    # pytest < 9.2: with 9.2, pytest-xdist (3.8) no longer applies xdist_group marks, and the
    # test modules sharing a trained run would each train it once per worker (tests/conftest.py
    # stops such a run).
    # optuna: python -m ader_tf.tune. 4.9 names the heartbeat callbacks as used here; the
    # journal storage's heartbeat (ader_tf.tuning) builds on an interface Optuna keeps private.
    extras_require={"tune": ["optuna>=4.9,<6"],
                    "test": ["pytest>=8,<9.2", "pytest-xdist", "ruff", "hypothesis",
                             "optuna>=4.9,<6"]},
)
