"""``ferry deploy KIT REF``: write a deploy kit (compose, k8s, terraform, paas, ci) for one
registered version, read from a Ferry server's registry (``--url`` / $FERRY_URL)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from ferry.client.schemas import ModelVersion
    from ferry.packaging.kits import DeployTarget, KitOptions
    from ferry.packaging.kits.target import MonitoringFiles

deploy_app = typer.Typer(
    help="Write the files that run a registered version somewhere.", no_args_is_help=True
)

RefArgument = Annotated[str, typer.Argument(help="iris@production, iris/3, or iris.")]
OutOption = Annotated[
    Path | None, typer.Option("--out", "-o", help="Folder to write (default: ./ferry-NAME-KIT).")
]
ImageOption = Annotated[
    str | None, typer.Option(help="Image to run (default: ferry-model-NAME:VERSION).")
]
PortOption = Annotated[int, typer.Option(min=1, max=65535, help="Port the server listens on.")]
WorkersOption = Annotated[int, typer.Option(min=1, help="Worker processes per container.")]
ForceOption = Annotated[bool, typer.Option(help="Replace files that exist with other content.")]
UrlOption = Annotated[
    str | None,
    typer.Option(
        help="Ferry server (default: $FERRY_URL, else http://127.0.0.1:8000).", show_default=False
    ),
]
NamespaceOption = Annotated[str, typer.Option(help="Kubernetes namespace.")]
ReplicasOption = Annotated[int, typer.Option(min=1, help="Replicas (the autoscaler's minimum).")]
MaxReplicasOption = Annotated[int, typer.Option(min=1, help="The autoscaler's maximum.")]
CpuOption = Annotated[int, typer.Option(min=1, max=100, help="Autoscale at this CPU %.")]
HostOption = Annotated[
    str | None, typer.Option(help="Expose through an Ingress for this host name.")
]
TlsOption = Annotated[
    str | None, typer.Option(help="TLS Secret for the Ingress host (kubernetes.io/tls).")
]
MemoryOption = Annotated[str, typer.Option(help="Memory limit per container, e.g. 1Gi.")]


def target_of(version: ModelVersion, ref: str) -> DeployTarget:
    from ferry.packaging.kits import DeployTarget

    return DeployTarget(
        model=version.model,
        version=version.version,
        sha256=version.sha256,
        flavor=version.flavor,
        signature=version.signature,
        requirements=tuple(version.requirements),
        size=version.size,
        ref=ref,
    )


def _options(**values: object) -> KitOptions:
    from ferry.packaging.kits import KitOptions

    return KitOptions(**values)  # type: ignore[arg-type]  # typer checked each value's type


def _write(
    kit: str, ref: str, url: str | None, out: Path | None, force: bool, options: KitOptions
) -> None:
    from ferry.client import Client

    with Client(url) as client:
        target = target_of(client.resolve(ref), ref)
    _emit(kit, target, out, force, options)


def _emit(
    kit: str, target: DeployTarget, out: Path | None, force: bool, options: KitOptions
) -> None:
    from ferry.cli.output import show_lines
    from ferry.packaging.kits import render_kit
    from ferry.packaging.kits.target import write_kit

    files = render_kit(kit, target, options)
    folder = out or Path(f"ferry-{target.slug}-{kit}")
    written = write_kit(files, folder, force=force)
    which = f"version {target.version} ({target.ref})" if target.version else "(not registered)"
    show_lines(
        [f"{kit} kit for {target.model} {which} in {folder}:"]
        + [f"  {path.relative_to(folder)}" for path in written]
    )


@deploy_app.command("compose")
def compose(
    ref: RefArgument,
    out: OutOption = None,
    image: ImageOption = None,
    server_image: Annotated[
        str | None, typer.Option(help="Image for the ferry server service (default: --image).")
    ] = None,
    port: PortOption = 8000,
    workers: WorkersOption = 1,
    force: ForceOption = False,
    url: UrlOption = None,
) -> None:
    """compose.yaml: ferry server, PostgreSQL, MinIO, the model, Prometheus and Grafana."""
    extra = {"server_image": server_image} if server_image else {}
    options = _options(
        image=image, port=port, workers=workers, extra=extra, monitoring=monitoring_files()
    )
    _write("compose", ref, url, out, force, options)


def monitoring_files() -> MonitoringFiles:
    """The dashboard and alert rules of `ferry monitoring export` (default limits, the drift
    rule at this server's PSI threshold), for the compose kit's Prometheus and Grafana."""
    from ferry.config.settings import get_settings
    from ferry.monitoring.alerts import AlertLimits, alert_rules_text, dashboard_json
    from ferry.monitoring.drift import thresholds_from_settings
    from ferry.packaging.kits.target import MonitoringFiles

    limits = AlertLimits(drift_psi=thresholds_from_settings(get_settings()).psi)
    return MonitoringFiles(dashboard=dashboard_json(), alert_rules=alert_rules_text(limits))


def _cluster_command(kit: str, summary: str) -> Callable[..., None]:
    """``ferry deploy k8s`` and ``ferry deploy terraform`` take the same options: the
    Kubernetes objects, written as manifests or as a Terraform module applying them."""

    def command(
        ref: RefArgument,
        out: OutOption = None,
        image: ImageOption = None,
        namespace: NamespaceOption = "ferry",
        replicas: ReplicasOption = 2,
        max_replicas: MaxReplicasOption = 10,
        cpu_target: CpuOption = 70,
        memory: MemoryOption = "1Gi",
        ingress_host: HostOption = None,
        tls_secret: TlsOption = None,
        port: PortOption = 8000,
        workers: WorkersOption = 1,
        force: ForceOption = False,
        url: UrlOption = None,
    ) -> None:
        options = _options(
            image=image,
            namespace=namespace,
            replicas=replicas,
            max_replicas=max_replicas,
            target_cpu_percent=cpu_target,
            memory_limit=memory,
            ingress_host=ingress_host,
            tls_secret=tls_secret,
            port=port,
            workers=workers,
        )
        _write(kit, ref, url, out, force, options)

    command.__doc__ = summary
    command.__name__ = kit
    return command


K8S_SUMMARY = (
    "Kubernetes manifests: Deployment, Service, HPA, ConfigMap, PDB, NetworkPolicy, Ingress."
)
TERRAFORM_SUMMARY = (
    "A Terraform module applying the Kubernetes manifests with the kubernetes provider."
)
deploy_app.command("k8s")(_cluster_command("k8s", K8S_SUMMARY))
deploy_app.command("terraform")(_cluster_command("terraform", TERRAFORM_SUMMARY))


@deploy_app.command("paas")
def paas(
    ref: RefArgument,
    out: OutOption = None,
    image: ImageOption = None,
    replicas: Annotated[int, typer.Option(min=1, help="Instances to keep running.")] = 1,
    memory: MemoryOption = "1Gi",
    port: PortOption = 8000,
    workers: WorkersOption = 1,
    force: ForceOption = False,
    url: UrlOption = None,
) -> None:
    """fly.toml, render.yaml, railway.json, and Procfile + requirements.txt for buildpacks."""
    _write(
        "paas",
        ref,
        url,
        out,
        force,
        _options(
            image=image,
            replicas=replicas,
            max_replicas=max(replicas, 10),
            memory_limit=memory,
            port=port,
            workers=workers,
        ),
    )


@deploy_app.command("ci")
def ci(
    ref: Annotated[
        str | None,
        typer.Argument(help="A registered version (its requirements go in the pipeline)."),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="A model not registered yet (uses requirements.txt).")
    ] = None,
    provider: Annotated[str, typer.Option(help="github or circleci.")] = "github",
    train_command: Annotated[
        str, typer.Option(help="Command that trains and writes the bundle.")
    ] = "python train.py",
    bundle_dir: Annotated[str, typer.Option(help="Folder the training writes.")] = "bundle",
    out: Annotated[Path, typer.Option("--out", "-o", help="The model repository's root.")] = Path(
        "."
    ),
    force: ForceOption = False,
    url: UrlOption = None,
) -> None:
    """A CI pipeline for the model's repository: train, check, register, wheel, image."""
    options = _options(provider=provider, train_command=train_command, bundle_dir=bundle_dir)
    if ref is not None:
        _write("ci", ref, url, out, force, options)
        return
    if name is None:
        raise typer.BadParameter("give a registered REF, or --name for a new model")
    from ferry.packaging.kits.ci import unregistered

    _emit("ci", unregistered(name), out, force, options)


def register(app: typer.Typer) -> None:
    app.add_typer(deploy_app, name="deploy")
