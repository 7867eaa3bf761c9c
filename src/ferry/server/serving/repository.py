"""The models a server answers for: the ModelSource protocol and its static implementation.

``ferry serve`` answers for models loaded at start (``StaticModels``); ``ferry server``
answers for every registered version, loaded on first use (``RegistryModels``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import anyio.to_thread

from ferry.errors import ModelNotFound, NotReady, VersionNotFound
from ferry.model.example import replay_example
from ferry.model.loaded import LoadedModel

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ExampleCheck:
    """Result of replaying the bundle's example at start-up."""

    status: str  # "passed", "mismatch", "no_expected_output", "no_example", "failed"
    message: str = ""


@runtime_checkable
class ModelSource(Protocol):
    """Where the protocol handlers find the model a request names."""

    @property
    def ready(self) -> bool:
        """True once the source can answer (its models warmed up, its store reachable)."""
        ...

    @property
    def database(self) -> str | None:
        """``ok`` or ``unreachable``: the database the source reads routes from, when it has
        one (None: models loaded at start, no database)."""
        ...

    @property
    def checks(self) -> dict[tuple[str, str], ExampleCheck]:
        """Example replay results of the models loaded so far."""
        ...

    async def resolve(self, name: str, version: str | None = None) -> LoadedModel:
        """``name``, ``name@alias`` or (``name``, ``version``) -> the loaded model."""
        ...

    def names(self) -> list[str]:
        """Names of the models this source answers for."""
        ...

    def versions(self, name: str) -> list[str]: ...

    def loaded(self) -> list[LoadedModel]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(slots=True)
class StaticModels:
    """A fixed set of models loaded before the server starts (``ferry serve``)."""

    models: dict[str, dict[str, LoadedModel]] = field(default_factory=dict)
    checks: dict[tuple[str, str], ExampleCheck] = field(default_factory=dict)
    ready: bool = False

    @classmethod
    def of(cls, models: Iterable[LoadedModel]) -> StaticModels:
        source = cls()
        for model in models:
            source.models.setdefault(model.name, {})[model.version] = model
        return source

    @property
    def database(self) -> str | None:
        return None

    def loaded(self) -> list[LoadedModel]:
        return [m for versions in self.models.values() for m in versions.values()]

    def names(self) -> list[str]:
        return sorted(self.models)

    def versions(self, name: str) -> list[str]:
        return sorted(self.models.get(name, {}), key=_version_key)

    async def start(self) -> None:
        await anyio.to_thread.run_sync(self.warm_up)

    async def stop(self) -> None:
        return None

    async def resolve(self, name: str, version: str | None = None) -> LoadedModel:
        """``name``, ``name@alias`` or (``name``, ``version``) -> the loaded model."""
        alias = None
        if "@" in name:
            name, _, alias = name.partition("@")
        versions = self.models.get(name)
        if versions is None:
            raise ModelNotFound(
                f"no model named {name!r}; this server has {sorted(self.models)}", model=name
            )
        if not self.ready:
            raise NotReady(f"model {name!r} is still loading", model=name)
        if alias is not None and alias not in ("latest", "production"):
            raise VersionNotFound(f"model {name!r} has no alias {alias!r}", model=name, alias=alias)
        if version is None:
            return versions[max(versions, key=_version_key)]
        model = versions.get(version)
        if model is None:
            raise VersionNotFound(
                f"model {name!r} has no version {version!r}; it has {sorted(versions)}",
                model=name,
                version=version,
            )
        return model

    def warm_up(self) -> None:
        """Answer every model's example once (page in code, check it), then report ready."""
        for model in self.loaded():
            self.checks[(model.name, model.version)] = check_example(model)
        self.ready = True


def check_example(model: LoadedModel) -> ExampleCheck:
    """Replay the bundle's input example and compare with its stored expected output."""
    try:
        replay = replay_example(model)
    except Exception as exc:  # a model that cannot answer its own example is logged, not fatal
        log.error("model %s:%s failed on its example: %s", model.name, model.version, exc)
        return ExampleCheck("failed", str(exc))
    if replay.mismatches:
        message = replay.summary()
        log.warning("model %s:%s example check: %s", model.name, model.version, message)
        return ExampleCheck("mismatch", message)
    return ExampleCheck(replay.status)


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (-1, version)
