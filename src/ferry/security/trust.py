"""Trust decisions: who may let a model's own code run on the server, and how it is recorded.

A *code* model (``ferry.model.kinds``: a custom class, an MLflow ``python_function`` folder)
runs the uploader's Python when it loads, and so does a pickle the scanner refuses. Such a
version is registered only when the upload says ``trust=true`` and, with auth on, the caller
holds the ``trust`` scope for the model (``admin`` implies it; ``publish`` does not). Making a
model that holds code ``public=true`` needs the same scope, since it lets anyone without a key
run that code. With auth off (a single-user server, loopback unless ``--insecure``) there is no
scope to check, but ``trust=true`` is still required: the operator says, as with
``ferry serve --trust``, that they know the upload is code.

The decision is recorded twice: in the ``version.create`` audit row (``details.trusted``: who,
by which scope, the code reasons and the pickle scan's verdict), which nothing can change, and
in two version tags only the server sets (``ferry.trusted_by``, ``ferry.code``), so that a
server loading the version, or a person reading it, sees that it is code someone vouched for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ferry.errors import Forbidden, InvalidRequest, UnsafeModel
from ferry.model.kinds import ModelKind
from ferry.registry import Registry, VersionRecord
from ferry.registry.names import MAX_TAG_VALUE
from ferry.security.identity import Principal
from ferry.security.public import PUBLIC_TAG, is_public
from ferry.security.scopes import Action, Requirement

TRUSTED_BY_TAG = "ferry.trusted_by"  # the principal that vouched ("local": auth was off)
CODE_TAG = "ferry.code"  # why the version is code (ModelKind.reasons)
RESERVED_VERSION_TAGS = frozenset({TRUSTED_BY_TAG, CODE_TAG})
LOCAL = "local"  # the decider when auth is off: whoever runs the server
_PAGE = 1000


def trust_requirement(model: str) -> Requirement:
    return Requirement((Action.TRUST,), model)


@dataclass(frozen=True, slots=True)
class TrustDecision:
    """``trust=true`` accepted for ``model`` from ``by`` (a key id, ``jwt:<subject>``, or
    ``local``) through ``scope`` (empty with auth off)."""

    model: str
    by: str
    name: str
    kind: str  # "key" | "jwt" | "local"
    scope: str

    def audit(
        self, code: ModelKind, scan: Mapping[str, object] | None, *, public: bool
    ) -> dict[str, object]:
        """What the version.create audit row keeps about the decision."""
        return {
            "by": self.by,
            "name": self.name,
            "kind": self.kind,
            "scope": self.scope,
            "code": list(code.reasons),
            "pickle_verdict": None if scan is None else scan.get("verdict"),
            "unsafe_globals": [] if scan is None else scan.get("unsafe_globals", []),
            "public": public,
        }

    def tags(self, code: ModelKind) -> dict[str, str]:
        """The version tags that say it is trusted (and why it is code, when it is)."""
        tags = {TRUSTED_BY_TAG: self.by[:MAX_TAG_VALUE]}
        if code.is_code:
            tags[CODE_TAG] = "; ".join(code.reasons)[:MAX_TAG_VALUE]
        return tags


def decide_trust(principal: Principal | None, model: str) -> TrustDecision:
    """The decision ``trust=true`` stands for, or Forbidden (field ``trust``) when the caller
    lacks the ``trust`` scope for ``model``. ``principal`` is None with auth off."""
    if principal is None:
        return TrustDecision(model, LOCAL, LOCAL, LOCAL, "")
    need = trust_requirement(model)
    granting = next(
        (s for s in principal.scopes if s.grants(Action.TRUST, model)),
        None,
    )
    if granting is None:
        raise Forbidden(
            f"trust=true lets the model's own code run on the server (a code model, or a "
            f"pickle the scanner refuses); {principal.kind} {principal.name!r} lacks the "
            f"scope {need} (publish does not grant it; an admin creates keys that hold it)",
            field="trust",
            required=str(need),
        )
    return TrustDecision(model, principal.id, principal.name, principal.kind, str(granting))


def refuse_untrusted_code(kind: ModelKind, model: str) -> UnsafeModel:
    """The error for a code model uploaded without ``trust=true``."""
    need = trust_requirement(model)
    return UnsafeModel(
        f"the model is code ({'; '.join(kind.reasons)}): loading it runs its Python on the "
        f"server, so it is registered only with trust=true (ferry register --trust) from a key "
        f"holding the scope {need}",
        field="trust",
        reasons=list(kind.reasons),
        required=str(need),
        globals=[],
    )


def check_version_tags(tags: Mapping[str, str], field: str = "tags") -> None:
    """The trust tags are the server's record: a caller may not send them."""
    for key in tags:
        if key in RESERVED_VERSION_TAGS:
            raise InvalidRequest(
                f"{field}[{key!r}] is set by the server when a version's code is trusted; "
                "it cannot be sent",
                field=field,
                key=key,
            )


def is_trusted_version(record: VersionRecord) -> bool:
    """Whether someone allowed to vouched for the version at upload (the server's tag)."""
    return TRUSTED_BY_TAG in record.tags


def is_code_version(record: VersionRecord) -> bool:
    """Whether loading the version runs its own code: the server's tag, or (for versions
    registered before it was set) the manifest's flavor."""
    from ferry.model.flavors.mlflow import PYFUNC

    if CODE_TAG in record.tags:
        return True
    manifest = record.manifest
    if manifest.flavor == "custom":
        return True
    return manifest.flavor == "mlflow" and manifest.flavor_options.get("inner") == PYFUNC


def model_has_code(registry: Registry, name: str) -> bool:
    offset = 0
    while True:
        page = registry.list_versions(name, limit=_PAGE, offset=offset)
        if any(is_code_version(record) for record in page.items):
            return True
        offset += len(page.items)
        if not page.items or offset >= page.total:
            return False


def check_may_make_public(
    principal: Principal | None, registry: Registry, name: str, tags: Mapping[str, str]
) -> None:
    """Forbidden when ``tags`` make a model that holds code public and the caller lacks the
    ``trust`` scope for it: public predictions run that code for anyone. A model already
    public stays so without a new decision (its tags can be edited by its publishers)."""
    if principal is None or not is_public(tags):
        return
    if is_public(registry.get_model(name).tags) or not model_has_code(registry, name):
        return
    need = trust_requirement(name)
    if not principal.may(need):
        raise Forbidden(
            f"public=true lets anyone without a key run the code of model {name!r}; "
            f"{principal.kind} {principal.name!r} lacks the scope {need}",
            field=f"tags.{PUBLIC_TAG}",
            required=str(need),
        )
