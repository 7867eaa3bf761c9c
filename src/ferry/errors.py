"""The FerryError tree. Every class has a stable string ``code``; HTTP lives in server/errors.py."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class FerryError(Exception):
    """Base of every error Ferry raises on purpose."""

    code = "internal"
    # What an HTTP answer says instead of ``message`` when the message may carry internals (a
    # database URL, a driver's text, a path on the server); None: the message is for callers.
    public: str | None = None

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, object] = details


class ConfigError(FerryError):
    code = "config_error"


# --- the caller sent something we cannot read -------------------------------------------------
class InvalidRequest(FerryError):
    """The request as a whole is unreadable (bad JSON, wrong layout)."""

    code = "invalid_request"


class MalformedBody(InvalidRequest):
    code = "malformed_body"


class UnsupportedMediaType(InvalidRequest):
    code = "unsupported_media_type"


class RequestTimeout(InvalidRequest):
    """The client did not send its headers, or its body fast enough, within the deadline."""

    code = "request_timeout"


class PayloadTooLarge(InvalidRequest):
    code = "payload_too_large"


class HeadersTooLarge(InvalidRequest):
    """The request's headers are over FERRY_MAX_HEADER_BYTES (answered before any other work)."""

    code = "headers_too_large"


# --- the request is readable but its data does not fit the model's signature --------------------
class InvalidInput(FerryError):
    """Data that does not match the signature; details name the column/row."""

    code = "invalid_input"


class MissingColumn(InvalidInput):
    code = "missing_column"


class UnknownColumn(InvalidInput):
    code = "unknown_column"


class InvalidValue(InvalidInput):
    code = "invalid_value"


class InvalidShape(InvalidInput):
    code = "invalid_shape"


class EmptyBatch(InvalidInput):
    code = "empty_batch"


class UnknownOutput(InvalidInput):
    code = "unknown_output"


# --- lookups ----------------------------------------------------------------------------------
class NotFound(FerryError):
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class VersionNotFound(NotFound):
    code = "version_not_found"


class NotReady(FerryError):
    code = "not_ready"


class DatabaseUnavailable(NotReady):
    """The metadata database cannot be reached (down, refusing connections, its disk full):
    a 503 the caller may retry; what is already loaded keeps serving."""

    code = "database_unavailable"


class TooManyConnections(NotReady):
    """A worker holds as many connections as it may; this one is turned away."""

    code = "too_many_connections"


# --- models and bundles -----------------------------------------------------------------------
class BundleError(FerryError):
    """A bundle on disk is missing files, has a bad manifest or a checksum mismatch."""

    code = "bundle_error"


class FlavorError(FerryError):
    """A model file could not be recognised or loaded by any flavor."""

    code = "flavor_error"


class MissingDependency(FlavorError):
    code = "missing_dependency"


class UnsafeModel(FerryError):
    """A model file (a pickle) imports names outside the allowlist, or cannot be checked;
    ``details["globals"]`` lists the offending imports."""

    code = "unsafe_model"


class PredictionFailed(FerryError):
    """The model itself raised while predicting: the server's fault, not the caller's."""

    code = "prediction_failed"  # its message is the model's own words: what a caller can fix


class ConnectionFailed(FerryError):
    """A Ferry server could not be reached (refused, timed out, bad address)."""

    code = "connection_failed"


# --- registry ---------------------------------------------------------------------------------
class InvalidName(InvalidRequest):
    """A model, alias, tag or metric name that breaks the naming rules."""

    code = "invalid_name"


class Conflict(FerryError):
    """The request contradicts what the registry already holds."""

    code = "conflict"


class ModelExists(Conflict):
    code = "model_exists"


class AliasNotFound(NotFound):
    code = "alias_not_found"


class StorageError(FerryError):
    """The metadata database or the artifact store failed: the server's fault, not the caller's."""

    code = "storage_error"
    public = "the server's storage failed; the server's log has the cause under the request id"


class StorageUnavailable(StorageError):
    """The metadata database or the artifact store did not answer within its deadline."""

    code = "storage_unavailable"
    public = "the server's storage did not answer in time; retry later"


class BlobNotFound(StorageError):
    """A content-addressed blob the registry expected is not in the artifact store."""

    code = "blob_not_found"


class ModelLoadFailed(FerryError):
    """A registered model could not be loaded for serving: the server's problem, a 500."""

    code = "model_load_failed"


class FeatureNotConfigured(ConfigError):
    """A feature the server was not set up for (no telemetry key, no sandbox tool, no image
    builder): a 409 whose ``details["setting"]`` names what to set or install, never a 5xx,
    since retrying cannot help and the caller asked for something this server does not do."""

    code = "feature_not_configured"


class SandboxUnavailable(FeatureNotConfigured):
    """Uploaded code cannot be confined on this machine (bubblewrap or prlimit missing), so it
    does not run: a 409 until the tool is installed or FERRY_SANDBOX=off is set on purpose."""

    code = "sandbox_unavailable"


class ModelCrashed(FerryError):
    """A code model's sandboxed process died, hit a limit or missed its deadline while
    answering: a 500 without internals; the process starts again on the next request."""

    code = "model_crashed"


# --- packaging: image builds ------------------------------------------------------------------
class BuildFailed(FerryError):
    """An image build, smoke test, export or push failed; the message carries the log's tail."""

    code = "build_failed"


class BuilderUnavailable(FeatureNotConfigured):
    """No usable image builder (docker daemon, podman, buildah) or base-image tool here: a 409
    naming the tool to install."""

    code = "builder_unavailable"


class BuildNotFound(NotFound):
    code = "build_not_found"


class BuildInProgress(Conflict):
    """A build of this version is already queued or running."""

    code = "build_in_progress"


# --- security -----------------------------------------------------------------------------------
class Unauthorized(FerryError):
    """No credentials, or credentials that are invalid, expired or revoked."""

    code = "unauthorized"


class Forbidden(FerryError):
    """Valid credentials without the scope the request needs."""

    code = "forbidden"


class RateLimited(FerryError):
    """A key's requests-per-minute or rows-per-day quota is used up; details say when to retry."""

    code = "rate_limited"


# --- monitoring: the prediction log and feedback ---------------------------------------------
class PredictionNotFound(NotFound):
    """No logged prediction has this request id."""

    code = "prediction_not_found"


class AmbiguousRequestId(Conflict):
    """A client's own request id (X-Request-ID) that several logged requests sent: only the
    server's request id names one."""

    code = "ambiguous_request_id"


class PredictionLogDisabled(Conflict):
    """Feedback or logs asked of a server that does not log predictions."""

    code = "prediction_log_disabled"


def error_class(code: str) -> type[FerryError]:
    """The FerryError subclass whose ``code`` is ``code`` (FerryError itself when none is);
    rebuilds an error reported across a process or HTTP boundary."""
    pending: list[type[FerryError]] = [FerryError]
    while pending:
        cls = pending.pop(0)
        if cls.code == code:
            return cls
        pending.extend(cls.__subclasses__())
    return FerryError


# --- packaging --------------------------------------------------------------------------------
class IndexUploadFailed(FerryError):
    """A package index refused an upload (credentials, an existing version, a bad file)."""

    code = "index_upload_failed"


class ProfileNotFound(NotFound):
    """The version has no reference profile (registered before profiling, or no example)."""

    code = "profile_not_found"


class DriftReportNotFound(NotFound):
    code = "drift_report_not_found"


class TelemetryRejected(InvalidRequest):
    """A telemetry bundle whose signature or file hashes do not check out."""

    code = "telemetry_rejected"


# --- pydantic's validation errors, read once ---------------------------------------------------
_LOCATION_KINDS = ("body", "query", "path", "header")


def first_problem(errors: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """The first of pydantic's (or FastAPI's) validation errors as ``(field, message)``: the
    field a dotted path without the location kind (``body``, ``query``...) or list indices,
    ``""`` for the whole value."""
    first = errors[0] if errors else {}
    loc = [str(part) for part in first.get("loc", ()) if not isinstance(part, int)]
    if loc and loc[0] in _LOCATION_KINDS:
        loc = loc[1:]
    return ".".join(loc), str(first.get("msg", "invalid value"))
