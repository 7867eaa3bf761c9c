"""Naming rules for models, aliases, tags and metrics, and version references (``iris@prod``)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ferry.errors import InvalidName, InvalidRequest

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
KEY_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._:/-]{0,127}$")
PRODUCTION = "production"
# the tag `ferry optimize` puts on the ONNX copy it registers (value: the target format)
OPTIMIZED_TAG = "optimized"
MAX_TAG_VALUE = 1000
MAX_ACTOR = 256
MAX_DESCRIPTION = 10_000


@dataclass(frozen=True, slots=True)
class Ref:
    """A parsed version reference: a model name plus at most one of version or alias."""

    model: str
    version: int | None = None
    alias: str | None = None


def check_name(name: str, field: str = "name") -> str:
    """A model name: letters, digits, ``.``, ``_``, ``-``; starts alphanumeric; no ``..``."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or ".." in name:
        raise InvalidName(
            f"{field} {name!r} is not a valid name: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, without '/' or '..'",
            field=field,
            value=str(name),
        )
    return name


def check_alias(alias: str) -> str:
    check_name(alias, "alias")
    if alias.isdigit():
        raise InvalidName(
            f"alias {alias!r} is all digits and would read as a version number",
            field="alias",
            value=alias,
        )
    return alias


MAX_VERSION = 2**31 - 1  # the column is a 32-bit INTEGER; larger numbers overflow the driver


def check_version(version: int, field: str = "version") -> int:
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_VERSION:
        raise InvalidRequest(
            f"{field} must be a positive integer, got {version!r}", field=field, value=version
        )
    return version


def check_key(key: str, field: str) -> str:
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise InvalidName(
            f"{field} key {key!r} is not valid: use 1-128 letters, digits, '.', '_', ':', '/' "
            "or '-'",
            field=field,
            value=str(key),
        )
    return key


def check_tags(tags: Mapping[str, str] | None, field: str = "tags") -> dict[str, str]:
    checked: dict[str, str] = {}
    for key, value in (tags or {}).items():
        check_key(key, field)
        if not isinstance(value, str) or len(value) > MAX_TAG_VALUE:
            raise InvalidRequest(
                f"{field}[{key!r}] must be a string of at most {MAX_TAG_VALUE} characters",
                field=field,
                key=key,
            )
        checked[key] = value
    return checked


def check_metrics(metrics: Mapping[str, float] | None) -> dict[str, float]:
    checked: dict[str, float] = {}
    for key, value in (metrics or {}).items():
        check_key(key, "metrics")
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise InvalidRequest(
                f"metric {key!r} must be a finite number, got {value!r}",
                field="metrics",
                key=key,
            )
        checked[key] = float(value)
    return checked


def check_text(value: str, field: str, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidRequest(f"{field} must be a string of at most {limit} characters", field=field)
    return value


def check_actor(actor: str) -> str:
    if not isinstance(actor, str) or not actor or len(actor) > MAX_ACTOR:
        raise InvalidRequest(
            f"actor must be a non-empty string of at most {MAX_ACTOR} characters", field="actor"
        )
    return actor


def parse_ref(ref: str) -> Ref:
    """``iris``, ``iris@staging``, ``iris/3``, ``iris:3`` or ``iris@3`` (aliases are never all
    digits, so ``@3`` can only mean version 3)."""
    if not isinstance(ref, str) or not ref:
        raise InvalidName(f"{ref!r} is not a model reference", field="ref", value=str(ref))
    if "@" in ref:
        model, _, alias = ref.partition("@")
        if alias.isdigit() and int(alias) >= 1:
            return Ref(check_name(model), version=int(alias))
        return Ref(check_name(model), alias=check_alias(alias))
    for separator in ("/", ":"):
        if separator in ref:
            model, _, number = ref.partition(separator)
            if not number.isdigit() or int(number) < 1:
                raise InvalidName(
                    f"{ref!r}: the version after {separator!r} must be a positive integer",
                    field="ref",
                    value=ref,
                )
            return Ref(check_name(model), version=int(number))
    return Ref(check_name(ref))
