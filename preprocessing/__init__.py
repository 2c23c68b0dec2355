"""Raw click logs to period files: YOOCHOOSE / DIGINETICA as the original ADER preprocessing,
and a shop's own click log (CSV, TSV or Parquet), which can later be extended period by period.

    from preprocessing import PreprocessConfig, preprocess
    stats = preprocess("data/raw/yoochoose-clicks.dat", "data/YOOCHOOSE",
                       PreprocessConfig(test_fraction="day"))

    from preprocessing import ClickLogOptions, append_periods
    preprocess("shop/clicks.csv", "data/SHOP",
               PreprocessConfig(period_days=7, click_log=ClickLogOptions(time_unit="s")))
    append_periods("shop/clicks_later.csv", "data/SHOP")
"""

from preprocessing.append import append_periods
from preprocessing.clicklog import ClickLogOptions
from preprocessing.errors import PreprocessingError, RawDataError, SettingMismatchError
from preprocessing.pipeline import PreprocessConfig, default_output_dir, preprocess

__all__ = [
    "ClickLogOptions",
    "PreprocessConfig",
    "PreprocessingError",
    "RawDataError",
    "SettingMismatchError",
    "append_periods",
    "default_output_dir",
    "preprocess",
]
