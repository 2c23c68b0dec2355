"""Raw YOOCHOOSE / DIGINETICA click logs to period files, as the original ADER preprocessing.

    from preprocessing import PreprocessConfig, preprocess
    stats = preprocess("data/raw/yoochoose-clicks.dat", "data/YOOCHOOSE",
                       PreprocessConfig(test_fraction="day"))
"""

from preprocessing.errors import PreprocessingError, RawDataError
from preprocessing.pipeline import PreprocessConfig, default_output_dir, preprocess

__all__ = [
    "PreprocessConfig",
    "PreprocessingError",
    "RawDataError",
    "default_output_dir",
    "preprocess",
]
