"""spotter: Kaggle-winning recipes for SETI needles and whale photo-ID on one k-fold engine."""

import warnings

from spotter.errors import SpotterError

# blimpy and setigen import pkg_resources, whose deprecation warning no spotter user can act on
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

__version__ = "0.1.0"
__all__ = ["SpotterError", "__version__"]
