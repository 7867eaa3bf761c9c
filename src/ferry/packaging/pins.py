"""Pinned requirements for an image: the version's own, plus ferry-ml's runtime dependencies at
the exact versions installed here (the ones Ferry was tested with), so a rebuild next month
installs the same packages instead of whatever is newest then."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable

from ferry.errors import ConfigError

# what only the metadata database needs (`ferry server`, and `ferry serve` with the prediction
# log or --auth): left out of serving images (~30 MB), where plain `ferry serve /model` never
# imports it. A version that logs predictions in its image lists them in its requirements;
# without them `ferry serve --log-predictions` stops at once saying so.
REGISTRY_ONLY = frozenset({"sqlalchemy", "alembic"})


def serving_requirements(requires: Iterable[str]) -> list[str]:
    """ferry-ml's Requires-Dist lines without the registry-only ones."""
    return [line for line in requires if requirement_name(line) not in REGISTRY_ONLY]


def requirement_name(line: str) -> str | None:
    """The canonical project name of a requirement line, None for URLs/options pip also reads."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    try:
        return canonicalize_name(Requirement(line).name)
    except InvalidRequirement:
        return None


def check_requirements(lines: Iterable[str]) -> list[str]:
    """The version's requirement lines, stripped; options (``-e``, ``--index-url``) are refused
    because they would bypass the build's index settings and secrets."""
    checked = []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            raise ConfigError(
                f"requirement {line!r}: pip options are not allowed in a version's requirements",
                field="requirements",
            )
        checked.append(line)
    return checked


def installed_closure(requires: Iterable[str], skip: Iterable[str] = ()) -> list[str]:
    """``name==version`` for every installed distribution ``requires`` needs (transitively,
    extras followed), except the names in ``skip``; sorted by name."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    skipped = {canonicalize_name(name) for name in skip}
    pins: dict[str, str] = {}
    pending: list[tuple[Requirement, frozenset[str]]] = []
    for line in requires:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            pending.append((requirement, frozenset(requirement.extras)))
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        requirement, extras = pending.pop()
        name = canonicalize_name(requirement.name)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError as exc:
            raise ConfigError(
                f"{requirement.name} (needed by ferry-ml) is not installed here; "
                "reinstall ferry-ml so its dependencies can be pinned",
                package=requirement.name,
            ) from exc
        if name not in skipped:
            pins[name] = dist.version
        for child_line in dist.requires or ():
            child = Requirement(child_line)
            if child.marker is not None and not any(
                child.marker.evaluate({"extra": extra}) for extra in ("", *extras)
            ):
                continue
            pending.append((child, frozenset(child.extras)))
    return [f"{name}=={pins[name]}" for name in sorted(pins)]
