"""Data drift: a live window of inputs compared with a version's reference profile.

Numeric features: the population stability index over the reference's decile bins, and a
one-sample Kolmogorov–Smirnov test of the live values against the reference CDF (linear
between its 101 quantiles). Categorical features: a chi-squared test of the live counts
against the reference frequencies, and the Jensen–Shannon distance between the two. Every
feature: the change in missing rate; categorical ones: the share of live values never seen
in the reference. A test flags drift when its statistic passes its threshold; a feature
drifts when any of its tests does.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from ferry.config.settings import Settings
from ferry.errors import ConfigError, InvalidRequest, first_problem
from ferry.monitoring.profile import OTHER, FeatureKind, FeatureProfile, ReferenceProfile

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# a bin or category with no rows on one side would make PSI infinite: it counts as this share
EPSILON = 1e-4
MAX_UNSEEN_LISTED = 20
TAG_PREFIX = "drift."  # model tags such as drift.psi=0.3 override the server's thresholds


class DriftThresholds(BaseModel):
    """When each test flags drift. PSI 0.1-0.2 is the usual 'moderate', above 0.2 'major'."""

    model_config = ConfigDict(extra="forbid")

    psi: float = Field(default=0.2, gt=0)
    ks_pvalue: float = Field(default=0.01, gt=0, lt=1)
    ks_statistic: float = Field(default=0.1, ge=0, le=1)
    chi2_pvalue: float = Field(default=0.01, gt=0, lt=1)
    js: float = Field(default=0.1, gt=0, le=1)
    missing_rate: float = Field(default=0.1, gt=0, le=1)
    unseen_rate: float = Field(default=0.05, gt=0, le=1)
    min_rows: int = Field(default=30, ge=1, description="Fewer live rows: no tests are run.")

    def with_overrides(
        self, values: Mapping[str, str], *, prefix: str = TAG_PREFIX
    ) -> DriftThresholds:
        """These thresholds with ``drift.<name>=<value>`` entries (a model's tags) applied."""
        update: dict[str, object] = {}
        for key, raw in values.items():
            if not key.startswith(prefix):
                continue
            name = key[len(prefix) :]
            if name not in DriftThresholds.model_fields:
                raise InvalidRequest(
                    f"tag {key!r}: no drift threshold {name!r}; known: "
                    f"{', '.join(DriftThresholds.model_fields)}",
                    field=key,
                )
            update[name] = raw
        if not update:
            return self
        merged = {**self.model_dump(), **update}
        from pydantic import ValidationError

        try:
            return DriftThresholds.model_validate(merged)
        except ValidationError as exc:
            name, message = first_problem(exc.errors())
            raise InvalidRequest(
                f"drift threshold {name}: {message}", field=f"{prefix}{name}"
            ) from exc


def thresholds_from_settings(settings: Settings) -> DriftThresholds:
    """FERRY_DRIFT_THRESHOLDS (JSON) over the defaults."""
    from pydantic import ValidationError

    try:
        return DriftThresholds.model_validate(settings.drift_thresholds)
    except ValidationError as exc:
        name, message = first_problem(exc.errors())
        raise ConfigError(
            f"FERRY_DRIFT_THRESHOLDS: {name}: {message}; known thresholds: "
            f"{', '.join(DriftThresholds.model_fields)}",
            field=name,
        ) from exc


class TestResult(BaseModel):
    statistic: float
    threshold: float
    drifted: bool
    pvalue: float | None = None


class FeatureDrift(BaseModel):
    name: str
    kind: FeatureKind
    live_rows: int = Field(description="Live rows with a value.")
    missing_rate_reference: float
    missing_rate_live: float
    tests: dict[str, TestResult] = Field(
        description="psi, ks (numeric); chi2, js, unseen (categorical); missing (all)."
    )
    drifted: bool
    # what the report plots: the shares of reference and live rows per bin or category
    labels: list[str] = Field(default_factory=list)
    reference_shares: list[float] = Field(default_factory=list)
    live_shares: list[float] = Field(default_factory=list)
    unseen: list[str] = Field(default_factory=list, description="Some unseen live values.")
    note: str = ""


class DriftReport(BaseModel):
    model: str = ""
    version: int | None = None
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    window_start: datetime | None = None
    window_end: datetime | None = None
    reference_rows: int
    live_rows: int
    thresholds: DriftThresholds
    features: list[FeatureDrift]
    drifted_features: list[str]
    drifted: bool
    note: str = ""


def compute_drift(
    profile: ReferenceProfile,
    live: pd.DataFrame,
    thresholds: DriftThresholds | None = None,
) -> DriftReport:
    """Compare the rows of ``live`` with ``profile``, feature by feature."""
    thresholds = thresholds or DriftThresholds()
    live = live.set_axis([str(c) for c in live.columns], axis=1)
    features: list[FeatureDrift] = []
    note = ""
    if len(live) < thresholds.min_rows:
        note = f"{len(live)} live rows: fewer than min_rows={thresholds.min_rows}, no tests run"
    else:
        for feature in profile.features:
            features.append(_feature_drift(feature, live, thresholds))
    drifted = [f.name for f in features if f.drifted]
    return DriftReport(
        reference_rows=profile.rows,
        live_rows=len(live),
        thresholds=thresholds,
        features=features,
        drifted_features=drifted,
        drifted=bool(drifted),
        note=note,
    )


def _feature_drift(
    feature: FeatureProfile, live: pd.DataFrame, thresholds: DriftThresholds
) -> FeatureDrift:
    import pandas as pd

    if feature.name in live.columns:
        column = live[feature.name]
    else:
        column = pd.Series([None] * len(live), dtype=object)
    present = column.dropna()
    missing_live = 1.0 - len(present) / len(live) if len(live) else 0.0
    change = abs(missing_live - feature.missing_rate)
    tests = {
        "missing": TestResult(
            statistic=change,
            threshold=thresholds.missing_rate,
            drifted=change > thresholds.missing_rate,
        )
    }
    base = FeatureDrift(
        name=feature.name,
        kind=feature.kind,
        live_rows=len(present),
        missing_rate_reference=feature.missing_rate,
        missing_rate_live=missing_live,
        tests=tests,
        drifted=False,
        note="" if feature.name in live.columns else "absent from the live rows",
    )
    if len(present) == 0 or feature.count == 0:
        base.note = base.note or "no values on one side: only the missing rate is compared"
    elif feature.kind == "numeric":
        _numeric(feature, present, thresholds, base)
    else:
        _categorical(feature, present, thresholds, base)
    base.drifted = any(t.drifted for t in base.tests.values())
    return base


def _numeric(
    feature: FeatureProfile, present: pd.Series, thresholds: DriftThresholds, out: FeatureDrift
) -> None:
    import numpy as np
    import pandas as pd
    from scipy import stats

    from ferry.monitoring.profile import bin_counts

    values = pd.to_numeric(present, errors="coerce").to_numpy(dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        out.note = "no numeric live values"
        return
    expected = _shares(np.asarray(feature.bin_counts, dtype=np.float64))
    actual = _shares(np.asarray(bin_counts(values, feature.bin_edges), dtype=np.float64))
    psi = float(np.sum((actual - expected) * np.log(actual / expected)))
    out.tests["psi"] = TestResult(
        statistic=psi, threshold=thresholds.psi, drifted=psi > thresholds.psi
    )
    ks = stats.kstest(values, _reference_cdf(feature.quantiles))
    statistic, pvalue = float(ks.statistic), float(ks.pvalue)
    out.tests["ks"] = TestResult(
        statistic=statistic,
        pvalue=pvalue,
        threshold=thresholds.ks_statistic,
        drifted=pvalue < thresholds.ks_pvalue and statistic > thresholds.ks_statistic,
    )
    out.labels = _bin_labels(feature.bin_edges)
    out.reference_shares = [float(s) for s in expected]
    out.live_shares = [float(s) for s in actual]


def _reference_cdf(quantiles: list[float]) -> object:
    """The reference CDF: linear between its quantiles, 0 below the minimum, 1 above the max.

    Repeated quantile values (a discrete column) make vertical steps, which np.interp keeps
    by taking the last probability at a repeated x: the CDF's right-continuous value.
    """
    import numpy as np

    xs = np.asarray(quantiles, dtype=np.float64)
    ps = np.linspace(0.0, 1.0, xs.size)
    # np.interp needs increasing xs; for each distinct value keep its largest probability
    unique, last = np.unique(xs[::-1], return_index=True)
    probs = ps[::-1][last]

    def cdf(x: np.ndarray) -> np.ndarray:
        result: np.ndarray = np.interp(x, unique, probs, left=0.0, right=1.0)
        return result

    return cdf


def _categorical(
    feature: FeatureProfile, present: pd.Series, thresholds: DriftThresholds, out: FeatureDrift
) -> None:
    import numpy as np
    from scipy import stats
    from scipy.spatial.distance import jensenshannon

    live_counts = present.astype(str).value_counts()
    known = list(feature.categories)
    has_other = OTHER in feature.categories
    observed = np.array([float(live_counts.get(c, 0)) for c in known if c != OTHER])
    unseen_values = [str(v) for v in live_counts.index if str(v) not in feature.categories]
    unseen_count = float(sum(live_counts[v] for v in unseen_values))
    labels = [c for c in known if c != OTHER]
    reference = np.array([float(feature.categories[c]) for c in labels])
    if has_other or unseen_count:
        # values outside the listed categories share one bucket on both sides
        labels.append(OTHER if has_other else "unseen")
        reference = np.append(reference, float(feature.categories.get(OTHER, 0)))
        observed = np.append(observed, unseen_count)
    ref_shares = _shares(reference)
    live_shares = _shares(observed)
    total = observed.sum()
    chi2 = stats.chisquare(observed, ref_shares * total / ref_shares.sum())
    pvalue = float(chi2.pvalue)
    out.tests["chi2"] = TestResult(
        statistic=float(chi2.statistic),
        pvalue=pvalue,
        threshold=thresholds.chi2_pvalue,
        drifted=pvalue < thresholds.chi2_pvalue,
    )
    js = float(jensenshannon(reference / reference.sum(), observed / total, base=2))
    out.tests["js"] = TestResult(statistic=js, threshold=thresholds.js, drifted=js > thresholds.js)
    new = [v for v in unseen_values if not has_other]
    rate = float(sum(live_counts[v] for v in new) / total) if total else 0.0
    out.tests["unseen"] = TestResult(
        statistic=rate, threshold=thresholds.unseen_rate, drifted=rate > thresholds.unseen_rate
    )
    out.unseen = new[:MAX_UNSEEN_LISTED]
    out.labels = labels
    out.reference_shares = [float(s) for s in ref_shares]
    out.live_shares = [float(s) for s in live_shares]


def _shares(counts: np.ndarray) -> np.ndarray:
    """Shares of the total, with empty cells raised to EPSILON (then renormalised)."""
    import numpy as np

    total = counts.sum()
    shares = counts / total if total else np.full(counts.shape, 1.0 / max(counts.size, 1))
    shares = np.maximum(shares, EPSILON)
    result: np.ndarray = shares / shares.sum()
    return result


def _bin_labels(edges: list[float]) -> list[str]:
    if not edges:
        return ["all"]
    points = [f"{e:.4g}" for e in edges]
    return [
        f"< {points[0]}",
        *[f"{a}–{b}" for a, b in zip(points, points[1:], strict=False)],
        f"≥ {points[-1]}",
    ]
