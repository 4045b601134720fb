#!/usr/bin/env bash
# Docker engine, local registries and base-image tooling (tests/docker, startbench cluster up, startbench images).
# Debian packages: docker.io (dockerd, containerd, runc), docker-registry (distribution 2.8),
# debootstrap (the local base image), apache2-utils (htpasswd for the auth registry). Idempotent.
set -euo pipefail
source "$(dirname "$0")/apt.sh"
apt_ensure docker.io docker-registry debootstrap apache2-utils iptables
# Where systemd runs, the package just installed starts its own registry service on :5000; startbench runs
# its own registries there (with delete enabled), so stop the one this script brought in (never another).
if [[ " ${APT_INSTALLED[*]} " == *" docker-registry "* ]] && command -v systemctl >/dev/null 2>&1 \
    && systemctl is-active --quiet docker-registry 2>/dev/null; then
    systemctl disable --now docker-registry
fi
echo "docker tooling: $(dockerd --version), $(docker-registry --version | awk '{print $NF}'), debootstrap $(dpkg-query -W -f='${Version}' debootstrap)"
