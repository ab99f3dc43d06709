#!/usr/bin/env bash
# podman set up for a Debian 12 machine without a Docker engine (possibly itself a
# container): `docker/podman.sh ARGS...` runs `podman ARGS...` with
#   - the runc runtime (crun refuses cgroups v1 "hybrid" hosts),
#   - vfs storage (overlay does not nest inside a container),
#   - `default_ulimits = []` (otherwise every container fails on setrlimit RLIMIT_NOFILE)
#     and the cgroupfs cgroup manager (no systemd),
# with images, containers and configuration all under .local/podman/ (git-ignored), so
# nothing of the machine's own container set-up is touched. podman and runc are installed
# with apt when missing. IVR_PODMAN_DIR moves the state folder.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${IVR_PODMAN_DIR:-$ROOT/.local/podman}"

need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
if ((${#need[@]})); then
  echo "installing ${need[*]}" >&2
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

mkdir -p "$STATE"
# Rewritten each time, so a moved checkout or a changed IVR_PODMAN_DIR never points at an
# old folder; through a file of this process's own, since several may run at once.
cat >"$STATE/containers.conf.$$" <<EOF
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$STATE/tmp"
EOF
mv "$STATE/containers.conf.$$" "$STATE/containers.conf"
cat >"$STATE/storage.conf.$$" <<EOF
[storage]
driver = "vfs"
graphroot = "$STATE/storage"
runroot = "$STATE/run"
EOF
mv "$STATE/storage.conf.$$" "$STATE/storage.conf"

export CONTAINERS_CONF="$STATE/containers.conf"
export CONTAINERS_STORAGE_CONF="$STATE/storage.conf"
exec podman "$@"
