"""Ferry: carry a trained model from a laptop to a fast, validated production API."""

# the one place the version is written (pyproject reads it from here); a constant, because
# asking importlib.metadata costs ~50 ms on every start of the CLI and the server
__version__ = "0.1.0"

__all__ = ["__version__"]
