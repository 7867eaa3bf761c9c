"""Registry.from_settings: the embedded defaults under FERRY_HOME and the FERRY_* overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferry.config.paths import artifacts_url, database_url
from ferry.config.settings import Settings, get_settings
from ferry.db.migrations import HEAD, current_revision
from ferry.errors import ConfigError
from ferry.registry import Registry
from ferry.registry.artifacts.local import LocalStore


def test_defaults_live_under_ferry_home(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    assert database_url(settings) == f"sqlite:///{tmp_path / 'home' / 'ferry.db'}"
    assert artifacts_url(settings) == str(tmp_path / "home" / "artifacts")
    with Registry.from_settings(settings) as registry:
        assert registry.list_models().total == 0
        assert isinstance(registry.artifacts, LocalStore)
    assert (tmp_path / "home" / "ferry.db").is_file()
    assert (tmp_path / "home" / "artifacts").is_dir()
    assert current_revision(database_url(settings)) == HEAD


def test_environment_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERRY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FERRY_DATABASE_URL", f"sqlite:///{tmp_path / 'other.db'}")
    monkeypatch.setenv("FERRY_ARTIFACTS", (tmp_path / "blobs").as_uri())
    get_settings.cache_clear()
    try:
        with Registry.from_settings() as registry:
            registry.create_model("iris")
        assert (tmp_path / "other.db").is_file()
        assert (tmp_path / "blobs").is_dir()
        assert not (tmp_path / "home" / "ferry.db").exists()
    finally:
        get_settings.cache_clear()


def test_unknown_schemes_name_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sqlite"):
        Registry.open("mysql://x/y", str(tmp_path))
    with pytest.raises(ConfigError, match="s3"):
        Registry.open(f"sqlite:///{tmp_path / 'db'}", "gs://bucket")


def test_in_memory_sqlite_is_migrated_on_its_own_engine(tmp_path: Path, iris_bundle: Path) -> None:
    with Registry.open("sqlite://", str(tmp_path / "artifacts")) as registry:
        assert registry.register(iris_bundle, "iris").version == 1
        assert registry.resolve("iris").version == 1
