"""RegistryModels: lazy loading from a real registry, one load per version, LRU eviction."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from ferry.errors import AliasNotFound, ModelNotFound, VersionNotFound
from ferry.model.loaded import LoadedModel
from ferry.registry import Registry
from ferry.server.serving.catalog import RegistryModels


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
