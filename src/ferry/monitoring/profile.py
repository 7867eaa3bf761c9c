"""Reference profile: what each input feature looked like when a version was registered.

A profile is computed from the training data (or the input example when no data is given)
and holds no rows: per numeric feature 101 quantiles (a step CDF the KS test compares live
values with) and decile bins with their counts (the PSI's bins and the report's bars); per
categorical feature its category frequencies. Drift (drift.py) needs nothing else.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from ferry.errors import InvalidRequest

if TYPE_CHECKING:
    import pandas as pd

    from ferry.model.signature import Signature

log = logging.getLogger(__name__)

PROFILE_FORMAT = 1
QUANTILES = 101  # 0.00, 0.01, ..., 1.00
PSI_BINS = 10  # deciles: the usual PSI binning
MAX_CATEGORIES = 100  # the rest of a long-tailed column is counted as OTHER
OTHER = "__other__"
TABLE_SUFFIXES = (".csv", ".parquet", ".pq", ".jsonl", ".json")

FeatureKind = Literal["numeric", "categorical"]


class FeatureProfile(BaseModel):
    name: str
    kind: FeatureKind
    dtype: str
    count: int = Field(description="Rows with a value (not missing).")
    missing_rate: float
    # numeric
    quantiles: list[float] = Field(default_factory=list, description="101 values, q=0..1.")
    bin_edges: list[float] = Field(
        default_factory=list, description="Inner edges; the outer bins reach to -inf and +inf."
    )
    bin_counts: list[int] = Field(default_factory=list, description="len(bin_edges) + 1 counts.")
    mean: float | None = None
    std: float | None = None
    # categorical
    categories: dict[str, int] = Field(
        default_factory=dict, description=f"Counts of the most frequent values; {OTHER} the rest."
    )


class ReferenceProfile(BaseModel):
    format: int = PROFILE_FORMAT
    source: str = Field(description="Where the rows came from: reference, example ...")
    rows: int
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    features: list[FeatureProfile]

    def feature(self, name: str) -> FeatureProfile | None:
        return next((f for f in self.features if f.name == name), None)


def kinds_from_signature(signature: Signature) -> dict[str, FeatureKind]:
    """Scalar inputs by kind: strings, booleans and declared categories are categorical."""
    kinds: dict[str, FeatureKind] = {}
    for column in signature.inputs:
        if not column.is_scalar:
            continue  # tensors and vectors have no per-feature profile
        categorical = column.categories or column.dtype in ("string", "bool")
        kinds[column.name] = "categorical" if categorical else "numeric"
    return kinds


def is_numeric(series: pd.Series) -> bool:
    import pandas as pd

    return bool(
        pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series)
    )


def profile_frame(
    frame: pd.DataFrame, *, source: str, kinds: dict[str, FeatureKind] | None = None
) -> ReferenceProfile:
    """Profile the columns of ``frame`` (only those in ``kinds`` when given: a training file's
    label column is no input); ``kinds`` overrides the kind told from the dtype (a signature
    may say an integer column is a category)."""
    columns = [str(c) for c in frame.columns if kinds is None or str(c) in kinds]
    if not columns:
        raise InvalidRequest(
            "the reference data has none of the model's input columns", field="reference"
        )
    frame = frame.set_axis([str(c) for c in frame.columns], axis=1)
    features = [profile_series(frame[c], c, (kinds or {}).get(c)) for c in columns]
    return ReferenceProfile(source=source, rows=len(frame), features=features)


def profile_series(series: pd.Series, name: str, kind: FeatureKind | None = None) -> FeatureProfile:
    import numpy as np

    kind = kind or ("numeric" if is_numeric(series) else "categorical")
    total = len(series)
    present = series.dropna()
    missing_rate = 0.0 if total == 0 else float(1 - len(present) / total)
    base = FeatureProfile(
        name=name, kind=kind, dtype=str(series.dtype), missing_rate=missing_rate, count=0
    )
    if kind == "categorical":
        counts = category_counts(present)
        return base.model_copy(update={"count": len(present), "categories": counts})
    import pandas as pd

    # a value that is not a number is left out rather than failing the whole profile
    values = pd.to_numeric(present, errors="coerce").to_numpy(dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return base
    quantiles = np.quantile(values, np.linspace(0.0, 1.0, QUANTILES))
    # unique inner deciles: a column with few distinct values gets fewer, wider bins
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, PSI_BINS + 1)[1:-1]))
    return base.model_copy(
        update={
            "count": int(values.size),
            "quantiles": [float(q) for q in quantiles],
            "bin_edges": [float(e) for e in edges],
            "bin_counts": bin_counts(values, edges),
            "mean": float(values.mean()),
            "std": float(values.std()),
        }
    )


def bin_counts(values: object, edges: object) -> list[int]:
    """Counts per bin: (-inf, e0), [e0, e1), ..., [e_last, +inf)."""
    import numpy as np

    inner = np.asarray(edges, dtype=np.float64)
    index = np.searchsorted(inner, np.asarray(values, dtype=np.float64), side="right")
    return [int(c) for c in np.bincount(index, minlength=inner.size + 1)]


def category_counts(present: pd.Series) -> dict[str, int]:
    counts = present.astype(str).value_counts()
    top = counts.iloc[:MAX_CATEGORIES]
    result = {str(k): int(v) for k, v in top.items()}
    rest = int(counts.iloc[MAX_CATEGORIES:].sum())
    if rest:
        result[OTHER] = rest
    return result


def read_table(path: Path, *, field: str = "reference", suffix: str | None = None) -> pd.DataFrame:
    """A .csv, .parquet or .jsonl (or .json records/split) file as a DataFrame; ``suffix``
    says which when the file's own name does not (an uploaded part)."""
    import pandas as pd

    suffix = (suffix or path.suffix).lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix == ".jsonl":
            return pd.read_json(path, lines=True)
        if suffix == ".json":
            import orjson

            data = orjson.loads(path.read_bytes())
            if isinstance(data, dict) and "columns" in data and "data" in data:
                return pd.DataFrame(data["data"], columns=data["columns"])
            return pd.DataFrame(data)
    except (ValueError, TypeError, OSError, ImportError) as exc:
        raise InvalidRequest(f"{field}: cannot read {path.name}: {exc}", field=field) from exc
    raise InvalidRequest(
        f"{field}: {path.name} is not one of {', '.join(TABLE_SUFFIXES)}", field=field
    )


def profile_bundle(
    bundle: Path, reference: Path | None = None, *, suffix: str | None = None
) -> ReferenceProfile | None:
    """The profile a version gets at registration: of ``reference`` (training data, read by
    ``suffix`` or its own) when given, else of the bundle's input example; None when the
    model has no scalar inputs or no example."""
    import pandas as pd

    from ferry.model.manifest import read_manifest

    manifest = read_manifest(bundle)
    kinds = kinds_from_signature(manifest.signature)
    if not kinds:
        if reference is not None:
            raise InvalidRequest(
                "this model's inputs are tensors: it has no per-feature profile", field="reference"
            )
        return None
    if reference is not None:
        frame = read_table(reference, suffix=suffix)
        missing = sorted(set(kinds) - {str(c) for c in frame.columns})
        if len(missing) == len(kinds):
            raise InvalidRequest(
                f"reference: none of the model's inputs ({', '.join(sorted(kinds))}) is a "
                "column of the file",
                field="reference",
                missing=missing,
            )
        return profile_frame(frame, source="reference", kinds=kinds)
    if manifest.example is None:
        return None
    import orjson

    split = orjson.loads((bundle / manifest.example).read_bytes())
    try:
        frame = pd.DataFrame(split["data"], columns=split["columns"])
        return profile_frame(frame, source="example", kinds=kinds)
    except (ValueError, TypeError, KeyError, InvalidRequest):
        # an example that does not tabulate only means no profile: never a failed upload
        log.warning("input example not profiled", extra={"bundle": str(bundle)}, exc_info=True)
        return None
