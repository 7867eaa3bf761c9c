"""Ferry: carry a trained model from a laptop to a fast, validated production API."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ferry-ml")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"

__all__ = ["__version__"]
