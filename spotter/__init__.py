"""spotter: Kaggle-winning recipes for SETI needles and whale photo-ID on one k-fold engine."""

from spotter.errors import SpotterError

__version__ = "0.1.0"
__all__ = ["SpotterError", "__version__"]
