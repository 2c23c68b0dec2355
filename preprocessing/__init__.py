"""Raw YOOCHOOSE / DIGINETICA click logs to period files, as the original ADER preprocessing."""
