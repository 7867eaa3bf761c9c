"""Kubernetes manifests for one version: Namespace, ConfigMap, Deployment, Service,
HorizontalPodAutoscaler, PodDisruptionBudget, NetworkPolicy and, with a host, an Ingress.

The Deployment runs ``ferry serve /model`` (the bundle inside the image) as a non-root user on a
read-only root filesystem (an emptyDir on /tmp takes what workers write); readiness is /readyz
(the model answers), liveness /healthz (the process lives). The checkov policy checks this kit
does not satisfy are skipped with their reason in ``checkov.io/skip*`` annotations.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ferry.packaging.kits.target import DeployTarget, KitOptions, to_json, to_yaml

Manifest = dict[str, Any]

RUN_AS = 10001  # a high uid/gid, owned by nothing on the host
HTTP_PORT_NAME = "http"
SERVICE_PORT = 80
MODEL_DIR = "/model"
CONFIG_DIR = "/etc/ferry"
# settings the server reads from FERRY_* variables, kept in the ConfigMap so they change
# without a new image; a change rolls the pods (the pod template carries their hash)
SETTINGS = {"FERRY_LOG_FORMAT": "json", "FERRY_LOG_LEVEL": "INFO"}


def render(target: DeployTarget, options: KitOptions) -> dict[str, str]:
    files = {f"{name}.yaml": to_yaml(manifest) for name, manifest in manifests(target, options)}
    files["README.txt"] = _readme(target, options, [name for name, _ in manifests(target, options)])
    return files


def manifests(target: DeployTarget, options: KitOptions) -> list[tuple[str, Manifest]]:
    """``(file stem, manifest)`` in the order ``kubectl apply`` should see them."""
    options.check()
    items: list[tuple[str, Manifest]] = []
    if options.namespace != "default":
        items.append(("00-namespace", namespace(options)))
    config = config_map(target, options)
    items += [
        ("10-configmap", config),
        ("20-deployment", deployment(target, options, config)),
        ("30-service", service(target, options)),
        ("40-hpa", autoscaler(target, options)),
        ("50-pdb", disruption_budget(target, options)),
        ("60-networkpolicy", network_policy(target, options)),
    ]
    if options.ingress_host:
        items.append(("70-ingress", ingress(target, options)))
    return items


def name_of(target: DeployTarget) -> str:
    return f"ferry-{target.slug}"[:63].rstrip("-")


def selector_labels(target: DeployTarget) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": name_of(target),
        "app.kubernetes.io/instance": name_of(target),
    }


def labels(target: DeployTarget) -> dict[str, str]:
    return {
        **selector_labels(target),
        "app.kubernetes.io/component": "model-server",
        "app.kubernetes.io/part-of": "ferry",
        "app.kubernetes.io/managed-by": "ferry",
        "app.kubernetes.io/version": str(target.version),
        "ferry.dev/model": target.slug,
        "ferry.dev/version": str(target.version),
    }


def identity(target: DeployTarget) -> dict[str, str]:
    """Annotations tying the object to the exact registered content."""
    return {"ferry.dev/ref": target.ref, "ferry.dev/sha256": target.sha256}


def _metadata(target: DeployTarget, options: KitOptions, **extra: Any) -> dict[str, Any]:
    return {
        "name": name_of(target),
        "namespace": options.namespace,
        "labels": labels(target),
        "annotations": identity(target),
        **extra,
    }


def namespace(options: KitOptions) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": options.namespace, "labels": {"app.kubernetes.io/part-of": "ferry"}},
    }


def config_map(target: DeployTarget, options: KitOptions) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(target, options),
        "data": {**SETTINGS, "model.json": to_json(target.facts())},
    }


def deployment(target: DeployTarget, options: KitOptions, config: Manifest) -> Manifest:
    config_hash = hashlib.sha256(
        json.dumps(config["data"], sort_keys=True).encode("utf-8")
    ).hexdigest()
    image = options.image_for(target)
    annotations = {**identity(target), **_skipped_checks(image)}
    pod_annotations = {
        **identity(target),
        "ferry.dev/config-sha256": config_hash,
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(options.port),
        "prometheus.io/path": "/metrics",
    }
    probe_port = {"path": "/readyz", "port": HTTP_PORT_NAME}
    container = {
        "name": "ferry",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": [
            "ferry",
            "serve",
            MODEL_DIR,
            "--host",
            "0.0.0.0",  # noqa: S104 - inside the pod; the Service and NetworkPolicy guard it
            "--no-auth",  # said explicitly: off loopback `ferry serve` requires keys otherwise
            "--port",
            str(options.port),
            "--workers",
            str(options.workers),
        ],
        "ports": [{"name": HTTP_PORT_NAME, "containerPort": options.port, "protocol": "TCP"}],
        "env": [
            # uid 10001 has no home in the image: point HOME and FERRY_HOME at the emptyDir
            {"name": "HOME", "value": "/tmp"},  # noqa: S108 - a private emptyDir
            {"name": "FERRY_HOME", "value": "/tmp/ferry"},  # noqa: S108
            *(
                {
                    "name": key,
                    "valueFrom": {"configMapKeyRef": {"name": name_of(target), "key": key}},
                }
                for key in SETTINGS
            ),
        ],
        "resources": {
            "requests": {"cpu": options.cpu_request, "memory": options.memory_request},
            "limits": {"cpu": options.cpu_limit, "memory": options.memory_limit},
        },
        # loading a model can take a while: the startup probe holds the other two off
        "startupProbe": {
            "httpGet": probe_port,
            "periodSeconds": 2,
            "timeoutSeconds": 2,
            "failureThreshold": 90,
        },
        "readinessProbe": {
            "httpGet": probe_port,
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": HTTP_PORT_NAME},
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - a private emptyDir
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(target, options, annotations=annotations),
        "spec": {
            "replicas": options.replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": selector_labels(target)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {"labels": labels(target), "annotations": pod_annotations},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": RUN_AS,
                        "runAsGroup": RUN_AS,
                        "fsGroup": RUN_AS,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [
                        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
                        {
                            "name": "config",
                            "configMap": {
                                "name": name_of(target),
                                "items": [{"key": "model.json", "path": "model.json"}],
                            },
                        },
                    ],
                },
            },
        },
    }


def _skipped_checks(image: str) -> dict[str, str]:
    """checkov skip annotations, each with why the check does not fit a model server."""
    skips = [
        "CKV_K8S_15=the tag is an immutable registry version (ferry-model-NAME:VERSION); "
        "IfNotPresent also runs images loaded on a node without a registry",
    ]
    if "@sha256:" not in image:
        skips.append(
            "CKV_K8S_43=the digest exists only once the image is built; pass "
            "--image REPO@sha256:DIGEST to pin it"
        )
    return {f"checkov.io/skip{i}": skip for i, skip in enumerate(skips, start=1)}


def service(target: DeployTarget, options: KitOptions) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(target, options),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(target),
            "ports": [
                {
                    "name": HTTP_PORT_NAME,
                    "port": SERVICE_PORT,
                    "targetPort": HTTP_PORT_NAME,
                    "protocol": "TCP",
                }
            ],
        },
    }


def autoscaler(target: DeployTarget, options: KitOptions) -> Manifest:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(target, options),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": name_of(target),
            },
            "minReplicas": options.replicas,
            "maxReplicas": options.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": options.target_cpu_percent,
                        },
                    },
                }
            ],
        },
    }


def disruption_budget(target: DeployTarget, options: KitOptions) -> Manifest:
    # one replica may go during node drains, never all of them
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(target, options),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(target)}},
    }


def network_policy(target: DeployTarget, options: KitOptions) -> Manifest:
    # the server only answers HTTP on its port and calls nothing: no egress at all
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(target, options),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(target)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"ports": [{"port": HTTP_PORT_NAME, "protocol": "TCP"}]}],
            "egress": [],
        },
    }


def ingress(target: DeployTarget, options: KitOptions) -> Manifest:
    assert options.ingress_host is not None
    spec: dict[str, Any] = {
        "rules": [
            {
                "host": options.ingress_host,
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {
                                "service": {
                                    "name": name_of(target),
                                    "port": {"name": HTTP_PORT_NAME},
                                }
                            },
                        }
                    ]
                },
            }
        ]
    }
    if options.tls_secret:
        spec = {
            "tls": [{"hosts": [options.ingress_host], "secretName": options.tls_secret}],
            **spec,
        }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": _metadata(target, options),
        "spec": spec,
    }


def _readme(target: DeployTarget, options: KitOptions, stems: list[str]) -> str:
    image = options.image_for(target)
    lines = [
        f"Kubernetes manifests for {target.model} version {target.version} ({target.ref})",
        f"content sha256 {target.sha256}, image {image}",
        "",
        "Apply them in file order:",
        "  kubectl apply -f .",
        "",
        "Files:",
        *(f"  {stem}.yaml" for stem in stems),
        "",
        f"The pods answer on port {options.port} (Service port {SERVICE_PORT}): readiness "
        "/readyz, liveness /healthz, Prometheus metrics /metrics.",
    ]
    if options.tls_secret:
        lines.append(
            f"TLS for {options.ingress_host} comes from the Secret {options.tls_secret!r} "
            "(type kubernetes.io/tls) in the same namespace."
        )
    return "\n".join(lines) + "\n"
