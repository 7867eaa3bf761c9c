#!/usr/bin/env bash
# Make this machine able to build and run Ferry images without a Docker daemon:
# rootful podman + buildah (runc, cgroupfs), mmdebstrap for the local Debian base image,
# and Debian's docker-registry for push tests. Idempotent: a second run only checks.
set -euo pipefail

PACKAGES=(podman buildah debootstrap mmdebstrap runc slirp4netns uidmap catatonit docker-registry)
CONF=/etc/containers/containers.conf

missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "setup-containers: missing ${missing[*]}; run as root (apt-get install) to install them" >&2
        exit 1
    fi
    if ! command -v apt-get >/dev/null; then
        echo "setup-containers: missing ${missing[*]} and this is not a Debian/Ubuntu machine (no apt-get);" \
            "install podman, buildah and mmdebstrap with your package manager" >&2
        exit 1
    fi
    echo "setup-containers: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The Debian package starts a registry on :5000 through systemd where systemd runs;
    # the tests start their own on a free loopback port instead.
    if command -v systemctl >/dev/null && systemctl is-active --quiet docker-registry 2>/dev/null; then
        systemctl disable --now docker-registry >/dev/null 2>&1 || true
    fi
fi

# crun (podman's default on Debian) fails on this kind of machine's hybrid cgroups and on
# ulimits; runc + cgroupfs work. Only write the file when there is none: an admin's own
# configuration is respected, and checked below.
if [[ ! -f $CONF ]]; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "setup-containers: $CONF is missing; run as root to write it" >&2
        exit 1
    fi
    mkdir -p "$(dirname "$CONF")"
    cat >"$CONF" <<'CONF'
# Written by ferry scripts/setup-containers.sh
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF
    echo "setup-containers: wrote $CONF"
fi

# Detect a machine where podman still cannot run a container and say why.
if ! podman info >/dev/null 2>&1; then
    echo "setup-containers: 'podman info' fails:" >&2
    podman info 2>&1 | tail -5 >&2
    echo "check $CONF (runtime = \"runc\", cgroup_manager = \"cgroupfs\")" >&2
    exit 1
fi
runtime=$(podman info --format '{{.Host.OCIRuntime.Name}}' 2>/dev/null || echo unknown)
if [[ $runtime != runc ]]; then
    echo "setup-containers: warning: podman uses OCI runtime '$runtime'; on cgroup-v1/hybrid hosts" \
        "only runc is known to work (set runtime = \"runc\" in $CONF)" >&2
fi
