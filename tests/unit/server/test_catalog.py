"""RegistryModels: lazy loading from a real registry, one load per version, LRU eviction, and
serving from the last known routes while the registry database is away."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ferry.errors import AliasNotFound, DatabaseUnavailable, ModelNotFound, VersionNotFound
from ferry.model.loaded import LoadedModel
from ferry.registry import Registry
from ferry.server.serving.catalog import DOWN_REFRESH_SECONDS, RegistryModels
from tests.registry_fixtures import bundle_variant


@pytest.fixture
def registry(tmp_path: Path, iris_bundle: Path, mixed_bundle: Path) -> Iterator[Registry]:
    with Registry.open(f"sqlite:///{tmp_path / 'ferry.db'}", str(tmp_path / "blobs")) as opened:
        opened.register(iris_bundle, "iris")
        opened.register(mixed_bundle, "mixed")
        yield opened


def source(registry: Registry, tmp_path: Path, max_loaded: int = 8) -> RegistryModels:
    return RegistryModels(lambda: registry, tmp_path / "cache", max_loaded=max_loaded)


def test_loads_once_under_concurrency(registry: Registry, tmp_path: Path) -> None:
    models = source(registry, tmp_path)

    async def main() -> list[LoadedModel]:
        await models.start()
        try:
            return list(await asyncio.gather(*(models.resolve("iris") for _ in range(20))))
        finally:
            await models.stop()

    loaded = asyncio.run(main())
    assert len({id(m) for m in loaded}) == 1
    assert loaded[0].version == "1"
    assert models.checks[("iris", "1")].status == "passed"
    assert models.names() == ["iris", "mixed"]


def test_least_recently_used_is_evicted(registry: Registry, tmp_path: Path) -> None:
    evicted: list[str] = []
    models = source(registry, tmp_path, max_loaded=1)
    models.on_evict = lambda model: evicted.append(model.name)

    async def main() -> None:
        await models.start()
        try:
            await models.resolve("iris", "1")
            await models.resolve("mixed", "1")
            assert [m.name for m in models.loaded()] == ["mixed"]
            again = await models.resolve("iris", "1")
            assert again.name == "iris"
        finally:
            await models.stop()

    asyncio.run(main())
    assert evicted == ["iris", "mixed"]


def test_unknown_names_and_versions(registry: Registry, tmp_path: Path) -> None:
    models = source(registry, tmp_path)

    async def main() -> None:
        await models.start()
        try:
            with pytest.raises(ModelNotFound):
                await models.resolve("nope")
            with pytest.raises(VersionNotFound):
                await models.resolve("iris", "7")
            with pytest.raises(AliasNotFound):
                await models.resolve("iris@staging")
        finally:
            await models.stop()

    asyncio.run(main())


@contextmanager
def database_away(registry: Registry, folder: Path) -> Iterator[None]:
    """The registry's SQLite folder gone (every new connection fails, as with a stopped
    server: "unable to open database file"), then back."""
    registry.close()  # pooled connections would keep the moved file open
    away = folder.with_name(folder.name + "-away")
    folder.rename(away)
    try:
        yield
    finally:
        away.rename(folder)


async def eventually(check: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not within {seconds} s"
        await asyncio.sleep(0.02)


def test_known_routes_keep_answering_while_the_database_is_away(
    tmp_path: Path, iris_bundle: Path, mixed_bundle: Path
) -> None:
    folder = tmp_path / "db"
    opened = Registry.open(f"sqlite:///{folder / 'ferry.db'}", str(tmp_path / "blobs"))
    opened.register(iris_bundle, "iris")
    opened.register(mixed_bundle, "mixed")
    opened.set_alias("iris", "staging", 1)
    models = RegistryModels(lambda: opened, tmp_path / "cache", refresh_seconds=0.02)

    async def main() -> None:
        await models.start()
        try:
            assert (await models.resolve("iris")).version == "1"
            assert (await models.resolve("iris@staging")).version == "1"
            with database_away(opened, folder):
                await asyncio.sleep(0.2)  # several refreshes fail meanwhile
                assert models.database == "unreachable"
                assert (await models.resolve("iris")).version == "1"
                assert (await models.resolve("iris@staging")).version == "1"
                assert (await models.resolve("iris", "1")).version == "1"
                with pytest.raises(DatabaseUnavailable) as never_seen:
                    await models.resolve("mixed")
                assert never_seen.value.details == {"model": "mixed", "alias": None}
                with pytest.raises(DatabaseUnavailable):
                    await models.resolve("iris@production")
                with pytest.raises(DatabaseUnavailable, match="version 1 is not loaded"):
                    await models.resolve("mixed", "1")
                assert models.names() == ["iris", "mixed"]
                assert models.ready
            await eventually(lambda: models.database == "ok", DOWN_REFRESH_SECONDS + 2)
            assert (await models.resolve("mixed")).name == "mixed"
            # the alias refresh resumed: a move takes effect with no restart
            variant = bundle_variant(iris_bundle, tmp_path / "iris2", "two")
            assert opened.register(variant, "iris").version == 2
            opened.set_alias("iris", "staging", 2)
            await eventually(lambda: models._routes[("iris", "staging")] == 2, 5)
            assert (await models.resolve("iris@staging")).version == "2"
        finally:
            await models.stop()
            opened.close()

    asyncio.run(main())


def test_a_worker_started_in_an_outage_answers_503_then_recovers(
    tmp_path: Path, iris_bundle: Path
) -> None:
    folder = tmp_path / "db"
    opened = Registry.open(f"sqlite:///{folder / 'ferry.db'}", str(tmp_path / "blobs"))
    opened.register(iris_bundle, "iris")
    models = RegistryModels(lambda: opened, tmp_path / "cache", refresh_seconds=0.02)

    async def main() -> None:
        try:
            with database_away(opened, folder):
                await models.start()
                assert models.database == "unreachable"
                with pytest.raises(DatabaseUnavailable, match="'iris'"):
                    await models.resolve("iris")
            await eventually(lambda: models.database == "ok", DOWN_REFRESH_SECONDS + 2)
            assert (await models.resolve("iris")).version == "1"
            assert models.names() == ["iris"]
        finally:
            await models.stop()
            opened.close()

    asyncio.run(main())
