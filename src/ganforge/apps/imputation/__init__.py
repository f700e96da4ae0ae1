"""Missing-data imputation: GAIN, baselines, missingness generators and CSV tables."""

from ganforge.apps.imputation.gain import GAIN, GAINConfig
from ganforge.apps.imputation.methods import METHODS, make_imputer
from ganforge.apps.imputation.missingness import mar_mask, mcar_mask
from ganforge.apps.imputation.scaling import MinMax
from ganforge.apps.imputation.tables import impute_table

__all__ = ["GAIN", "METHODS", "GAINConfig", "MinMax", "impute_table", "make_imputer",
           "mar_mask", "mcar_mask"]
