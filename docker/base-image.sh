#!/usr/bin/env bash
# Makes a Debian base image locally with debootstrap, for machines that reach the Debian
# mirror but no image registry:
#
#   docker/base-image.sh [--suite SUITE] [--include PKG,PKG] [--mirror URL] [--force] [IMAGE]
#
# IMAGE defaults to localhost/debian:SUITE (SUITE defaults to bookworm). Nothing is done when
# the image already exists, unless --force. The root is `debootstrap --variant=minbase`
# (what Debian's slim images hold: dpkg, apt, bash, coreutils, no python3), with the apt
# sources of a standard install and apt's caches and lists emptied, imported with
# `podman import` through docker/podman.sh. Dockerfiles taking their base as a build
# argument build on it unchanged, e.g.
#
#   docker/base-image.sh --suite sid localhost/debian:sid-slim
#   docker/podman.sh build --build-arg ASTERISK_BASE=localhost/debian:sid-slim ...
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PODMAN="$ROOT/docker/podman.sh"
STATE="${IVR_PODMAN_DIR:-$ROOT/.local/podman}"

suite=bookworm
include=""
mirror=http://deb.debian.org/debian
force=0
image=""
while (($#)); do
  case "$1" in
    --suite) suite="$2"; shift 2 ;;
    --include) include="$2"; shift 2 ;;
    --mirror) mirror="$2"; shift 2 ;;
    --force) force=1; shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) image="$1"; shift ;;
  esac
done
image="${image:-localhost/debian:$suite}"

old_id=""
if "$PODMAN" image exists "$image"; then
  if ((!force)); then
    echo "$image exists"
    exit 0
  fi
  old_id="$("$PODMAN" image inspect --format '{{.Id}}' "$image")"
fi

if ! command -v debootstrap >/dev/null; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends debootstrap
fi
[ "$(id -u)" = 0 ] || { echo "debootstrap needs root" >&2; exit 1; }

mkdir -p "$STATE"
rootfs="$(mktemp -d "$STATE/rootfs-$suite.XXXXXX")"
trap 'rm -rf "$rootfs"' EXIT
started=$SECONDS
log="$STATE/debootstrap-$suite.log"
echo "debootstrap --variant=minbase $suite (log: $log)"
if ! debootstrap --variant=minbase ${include:+--include="$include"} "$suite" "$rootfs" "$mirror" \
  >"$log" 2>&1; then
  tail -n 20 "$log" >&2
  exit 1
fi

# The sources of a standard install (deb822, as Debian's own images have them); suites
# without security updates or -updates (sid, testing) get the main suite only.
rm -f "$rootfs/etc/apt/sources.list"
mkdir -p "$rootfs/etc/apt/sources.list.d"
{
  printf 'Types: deb\nURIs: %s\n' "$mirror"
  case "$suite" in
    sid|unstable|testing|experimental) printf 'Suites: %s\n' "$suite" ;;
    *) printf 'Suites: %s %s-updates\n' "$suite" "$suite" ;;
  esac
  printf 'Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
  case "$suite" in
    sid|unstable|testing|experimental) ;;
    *) printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\nSigned-By: %s\n' \
         "${mirror%/debian}/debian-security" "$suite" /usr/share/keyrings/debian-archive-keyring.gpg ;;
  esac
} >"$rootfs/etc/apt/sources.list.d/debian.sources"
# What a built image should not carry: downloaded packages, package lists, logs.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/var/tmp/*
# apt downloads as _apt into its partial folders (debootstrap leaves one owned by root).
mkdir -p "$rootfs/var/lib/apt/lists/partial" "$rootfs/var/cache/apt/archives/partial"
chroot "$rootfs" chown _apt:root /var/lib/apt/lists/partial /var/cache/apt/archives/partial
chmod 700 "$rootfs/var/lib/apt/lists/partial" "$rootfs/var/cache/apt/archives/partial"
# A machine id is made at first boot, never shared by every container of the image.
: >"$rootfs/etc/machine-id"

# The image's / is the folder itself: mktemp made it 0700, which would lock every user but
# root out of the whole file system.
chmod 755 "$rootfs"
tar --numeric-owner -C "$rootfs" -c . |
  "$PODMAN" import --quiet --change 'CMD ["bash"]' --message "debootstrap --variant=minbase $suite" \
    - "$image" >/dev/null
# The replaced image, unless a container still uses it (vfs keeps a full copy of each).
[ -z "$old_id" ] || "$PODMAN" rmi "$old_id" >/dev/null 2>&1 || true
echo "$image made in $((SECONDS - started)) s ($("$PODMAN" image inspect --format '{{.Size}}' "$image") bytes)"
