"""Drift against a reference profile, on iris-like data with known shifts and on fresh samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris

from ferry.errors import InvalidRequest
from ferry.monitoring.drift import DriftReport, DriftThresholds, compute_drift
from ferry.monitoring.profile import OTHER, ReferenceProfile, profile_frame, read_table

SHIFTED = ["sepal_length", "petal_width"]
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def iris_population(rows: int, seed: int) -> pd.DataFrame:
    """A fresh sample of iris's distribution: each species a Gaussian fitted on its 50 rows.

    Iris has 150 rows: halves of it are too small for PSI (its sampling noise with 10 bins is
    about 9 * (1/75 + 1/75) = 0.24, above the usual 0.2 threshold), so the tests draw as many
    rows as a monitoring window would hold from the same distribution.
    """
    X, y = load_iris(return_X_y=True)
    rng = np.random.default_rng(seed)
    species = rng.integers(0, 3, size=rows)
    out = np.empty((rows, 4))
    for label in range(3):
        members = X[y == label]
        picked = species == label
        out[picked] = rng.multivariate_normal(
            members.mean(axis=0), np.cov(members, rowvar=False), size=int(picked.sum())
        )
    return pd.DataFrame(out, columns=COLUMNS)


def shift(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    shifted = frame.copy()
    for column in columns:
        shifted[column] = shifted[column] + frame[column].std()  # one standard deviation
    return shifted


@pytest.fixture(scope="module")
def reference() -> ReferenceProfile:
    return profile_frame(iris_population(1000, seed=1), source="test")


def flagged(report: DriftReport, test: str) -> list[str]:
    return [f.name for f in report.features if f.tests[test].drifted]


def test_shifted_features_drift_and_only_they(reference: ReferenceProfile) -> None:
    live = shift(iris_population(1000, seed=2), SHIFTED)
    report = compute_drift(reference, live)
    assert flagged(report, "psi") == SHIFTED
    assert flagged(report, "ks") == SHIFTED
    assert report.drifted_features == SHIFTED
    assert report.drifted
    for feature in report.features:
        psi, ks = feature.tests["psi"], feature.tests["ks"]
        if feature.name in SHIFTED:
            assert psi.statistic > report.thresholds.psi
            assert ks.pvalue is not None
            assert ks.pvalue < report.thresholds.ks_pvalue
        else:
            assert psi.statistic < report.thresholds.psi


def test_fresh_sample_of_the_same_distribution_does_not_drift(
    reference: ReferenceProfile,
) -> None:
    report = compute_drift(reference, iris_population(1000, seed=3))
    assert report.drifted_features == []
    assert not report.drifted
    assert all(f.tests["psi"].statistic < 0.05 for f in report.features)


def test_real_iris_halves_by_ks(reference: ReferenceProfile) -> None:
    """The real data: half of iris (with noise to break its 0.1 cm ties) against the other
    half, and against that half with two features shifted. KS needs no large window."""
    X = load_iris(as_frame=True).data.set_axis(COLUMNS, axis=1)
    X = X.sample(frac=1.0, random_state=7).reset_index(drop=True)
    X = X + np.random.default_rng(7).normal(0.0, 0.05, X.shape)
    profile = profile_frame(X.iloc[:75], source="iris half")
    other = X.iloc[75:].reset_index(drop=True)
    assert flagged(compute_drift(profile, other), "ks") == []
    assert flagged(compute_drift(profile, shift(other, SHIFTED)), "ks") == SHIFTED


def test_profile_holds_bins_quantiles_and_no_rows() -> None:
    frame = iris_population(500, seed=4)
    profile = profile_frame(frame, source="test")
    feature = profile.feature("petal_length")
    assert feature is not None
    assert feature.kind == "numeric"
    assert feature.count == 500
    assert profile.rows == 500
    assert len(feature.quantiles) == 101
    assert feature.quantiles[0] == pytest.approx(frame["petal_length"].min())
    assert feature.quantiles[-1] == pytest.approx(frame["petal_length"].max())
    assert sum(feature.bin_counts) == 500
    assert len(feature.bin_counts) == len(feature.bin_edges) + 1
    # deciles: each bin holds about a tenth of the rows
    assert all(40 <= c <= 60 for c in feature.bin_counts)


def categorical_frame(rows: int, seed: int, weights: list[float]) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    colors = rng.choice(["red", "green", "blue"], size=rows, p=weights)
    return pd.DataFrame({"color": colors, "size": rng.normal(10.0, 2.0, rows)})


def test_categorical_drift_by_chi2_and_js() -> None:
    profile = profile_frame(categorical_frame(2000, 1, [0.5, 0.3, 0.2]), source="test")
    color = profile.feature("color")
    assert color is not None
    assert color.kind == "categorical"
    assert set(color.categories) == {"red", "green", "blue"}
    assert sum(color.categories.values()) == 2000

    same = compute_drift(profile, categorical_frame(1000, 2, [0.5, 0.3, 0.2]))
    assert same.drifted_features == []
    moved = compute_drift(profile, categorical_frame(1000, 3, [0.2, 0.3, 0.5]))
    assert moved.drifted_features == ["color"]
    tests = moved.features[0].tests
    assert tests["chi2"].drifted
    assert tests["js"].drifted
    assert tests["chi2"].pvalue is not None
    assert tests["chi2"].pvalue < 1e-6
    assert not tests["unseen"].drifted


def test_unseen_categories_and_missing_rate_change() -> None:
    profile = profile_frame(categorical_frame(1000, 1, [0.5, 0.3, 0.2]), source="test")
    live = categorical_frame(400, 2, [0.5, 0.3, 0.2])
    live.loc[:99, "color"] = "purple"  # a quarter of the rows: a value never seen
    live.loc[200:299, "size"] = np.nan  # a quarter of the sizes missing
    report = compute_drift(profile, live)
    color, size = report.features
    assert color.tests["unseen"].statistic == pytest.approx(0.25)
    assert color.tests["unseen"].drifted
    assert color.unseen == ["purple"]
    assert size.missing_rate_live == pytest.approx(0.25)
    assert size.tests["missing"].drifted
    assert not size.tests["psi"].drifted
    assert not size.tests["ks"].drifted
    assert report.drifted_features == ["color", "size"]


def test_long_tail_is_counted_as_other() -> None:
    values = [f"c{i}" for i in range(150)] * 4
    profile = profile_frame(pd.DataFrame({"city": values}), source="test")
    city = profile.feature("city")
    assert city is not None
    assert len(city.categories) == 101
    assert city.categories[OTHER] == 200
    report = compute_drift(profile, pd.DataFrame({"city": values[:300]}))
    assert not report.features[0].tests["unseen"].drifted  # tail values are not 'unseen'


def test_absent_feature_and_too_few_rows() -> None:
    profile = profile_frame(iris_population(300, seed=5), source="test")
    live = iris_population(100, seed=6).drop(columns=["sepal_width"])
    report = compute_drift(profile, live)
    width = next(f for f in report.features if f.name == "sepal_width")
    assert width.missing_rate_live == 1.0
    assert width.drifted
    assert width.note == "absent from the live rows"
    few = compute_drift(profile, live.iloc[:5])
    assert few.features == []
    assert not few.drifted
    assert "min_rows" in few.note


def test_thresholds_from_tags() -> None:
    base = DriftThresholds()
    tuned = base.with_overrides({"drift.psi": "0.5", "owner": "team-a"})
    assert tuned.psi == 0.5
    assert tuned.ks_pvalue == base.ks_pvalue
    with pytest.raises(InvalidRequest, match="no drift threshold 'pis'"):
        base.with_overrides({"drift.pis": "0.5"})
    with pytest.raises(InvalidRequest, match="drift threshold psi"):
        base.with_overrides({"drift.psi": "-1"})


def test_looser_threshold_silences_psi(reference: ReferenceProfile) -> None:
    live = shift(iris_population(1000, seed=2), SHIFTED)
    report = compute_drift(reference, live, DriftThresholds(psi=100.0, ks_statistic=1.0))
    assert report.drifted_features == []


def test_report_round_trips_as_json(reference: ReferenceProfile) -> None:
    report = compute_drift(reference, iris_population(200, seed=8))
    again = DriftReport.model_validate_json(report.model_dump_json())
    assert again == report


def test_read_table_formats(tmp_path: pytest.TempPathFactory) -> None:
    frame = iris_population(20, seed=9)
    csv = tmp_path / "live.csv"  # type: ignore[operator]
    frame.to_csv(csv, index=False)
    parquet = tmp_path / "live.parquet"  # type: ignore[operator]
    frame.to_parquet(parquet)
    jsonl = tmp_path / "live.jsonl"  # type: ignore[operator]
    frame.to_json(jsonl, orient="records", lines=True)
    for path in (csv, parquet, jsonl):
        pd.testing.assert_frame_equal(read_table(path), frame, check_exact=False)
    with pytest.raises(InvalidRequest, match="not one of"):
        read_table(tmp_path / "live.txt")  # type: ignore[operator]


def test_numeric_feature_leaves_text_out() -> None:
    frame = pd.DataFrame({"x": ["1.5", "2.5", "oops", None]})
    profile = profile_frame(frame, source="test", kinds={"x": "numeric"})
    x = profile.features[0]
    assert x.count == 2
    assert x.missing_rate == pytest.approx(0.25)  # None only: 'oops' is dropped from the values
    assert x.quantiles[0] == 1.5


def test_profile_bundle_from_reference_or_example(
    iris_bundle: Path, iris_data: tuple[pd.DataFrame, pd.Series], tmp_path: Path
) -> None:
    from ferry.monitoring.profile import profile_bundle

    example = profile_bundle(iris_bundle)
    assert example is not None
    assert example.source == "example"
    assert example.rows == 8
    X, y = iris_data
    train = tmp_path / "train.parquet"
    X.assign(species=y).to_parquet(train)
    reference = profile_bundle(iris_bundle, train)
    assert reference is not None
    assert reference.rows == 150
    assert [f.name for f in reference.features] == list(X.columns)  # the label is no input
    part = tmp_path / "upload-part"  # an uploaded part: no suffix of its own
    X.to_csv(part, index=False)
    from_part = profile_bundle(iris_bundle, part, suffix=".csv")
    assert from_part is not None
    assert from_part.rows == 150
    other = tmp_path / "other.csv"
    pd.DataFrame({"a": [1]}).to_csv(other, index=False)
    with pytest.raises(InvalidRequest, match="none of the model's inputs"):
        profile_bundle(iris_bundle, other)
