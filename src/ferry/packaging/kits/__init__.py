"""Deploy kits: the files that run one registered version somewhere (compose, Kubernetes,
Terraform, PaaS, CI), rendered from the version's real values. One module per kit, each with
``render(target, options) -> {relative path: text}``; the same inputs give the same bytes."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

from ferry.errors import ConfigError
from ferry.packaging.kits.target import DeployTarget, KitOptions

Renderer = Callable[[DeployTarget, KitOptions], dict[str, str]]

KITS: dict[str, str] = {
    "compose": "ferry.packaging.kits.compose:render",
    "k8s": "ferry.packaging.kits.k8s:render",
    "terraform": "ferry.packaging.kits.terraform:render",
    "paas": "ferry.packaging.kits.paas:render",
    "ci": "ferry.packaging.kits.ci:render",
}


def get_kit(name: str) -> Renderer:
    if name not in KITS:
        raise ConfigError(f"no deploy kit {name!r}; known kits: {sorted(KITS)}", kit=name)
    module, _, attribute = KITS[name].partition(":")
    renderer: Renderer = getattr(importlib.import_module(module), attribute)
    return renderer


def render_kit(name: str, target: DeployTarget, options: KitOptions) -> Mapping[str, str]:
    """The kit's files, sorted by path."""
    files = get_kit(name)(target, options)
    return dict(sorted(files.items()))


__all__ = ["KITS", "DeployTarget", "KitOptions", "get_kit", "render_kit"]
