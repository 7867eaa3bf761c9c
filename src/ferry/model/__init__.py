"""Model bundles: save a model with its signature and example, load it back to predict."""

from ferry.model.bundle import save
from ferry.model.loaded import LoadedModel, load
from ferry.model.manifest import Manifest
from ferry.model.signature import Batch, ColumnSpec, OutputSpec, Signature

__all__ = [
    "Batch",
    "ColumnSpec",
    "LoadedModel",
    "Manifest",
    "OutputSpec",
    "Signature",
    "load",
    "save",
]
