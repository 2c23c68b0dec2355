"""Finding a dataset's period files: the sample, real period files, or raw clicks to convert."""

from __future__ import annotations

import logging
import os

from ader_tf.data.sample import ensure_sample_dataset
from ader_tf.errors import AderError

log = logging.getLogger(__name__)

RAW_FILES = {"YOOCHOOSE": "yoochoose-clicks.dat", "DIGINETICA": "train-item-views.csv"}
DOWNLOADS = {
    "YOOCHOOSE": "the RecSys Challenge 2015 data (yoochoose-data.7z, file yoochoose-clicks.dat)",
    "DIGINETICA": "the CIKM Cup 2016 Track 2 data (dataset-train-diginetica.zip, file "
                  "train-item-views.csv)",
}


class DatasetNotFoundError(AderError, FileNotFoundError):
    """Neither period files nor a raw file for the dataset were found."""


def resolve_period_dir(dataset: str, data_dir: str) -> str:
    """Returns ``<data_dir>/<dataset>`` holding period files, creating them if it can.

    The sample is generated on first use. Any folder with period files is used as it is. For
    the paper's datasets without period files, the raw file in ``<data_dir>/raw/`` is
    preprocessed as the original.

    Raises:
        DatasetNotFoundError: with a message saying where to put which file.
    """
    period_dir = os.path.join(data_dir, dataset)
    if dataset == "sample":
        return ensure_sample_dataset(period_dir)
    if os.path.isfile(os.path.join(period_dir, "period_0.txt")):
        return period_dir
    if dataset not in RAW_FILES:
        raise DatasetNotFoundError(
            f"No period files for dataset {dataset!r}: {period_dir}/period_0.txt does not exist. "
            f"Make them from your click log with python -m preprocessing --output_dir="
            f"{period_dir} (see the README), or use DIGINETICA, YOOCHOOSE or sample."
        )
    raw = os.path.join(data_dir, "raw", RAW_FILES[dataset])
    if os.path.isfile(raw):
        from preprocessing.pipeline import PreprocessConfig, preprocess

        log.info("no period files in %s; preprocessing %s first", period_dir, raw)
        test_fraction = "day" if dataset == "YOOCHOOSE" else "week"
        preprocess(raw, period_dir, PreprocessConfig(test_fraction=test_fraction))
        return period_dir
    raise DatasetNotFoundError(
        f"No data for {dataset}: put the period files period_0.txt .. period_16.txt into "
        f"{period_dir}/ (the paper's files are in the original repository doublemul/ADER under "
        f"data/{dataset}/), or put the raw file {RAW_FILES[dataset]} into "
        f"{os.path.join(data_dir, 'raw')}/ ({DOWNLOADS[dataset]}) and it will be preprocessed."
    )
