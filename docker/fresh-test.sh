#!/usr/bin/env bash
# `make fresh-test`: proves that `make test` works on a fresh Debian 12 machine.
#
#   docker/fresh-test.sh [MAKE-TARGET...]     (default: test)
#
# Runs `make MAKE-TARGET` as root in a new container of a pristine Debian 12 (debootstrap
# minbase, made by docker/base-image.sh when missing) holding nothing but `make` and the
# committed tree (`git archive HEAD`: no .venv, no .local, no uncommitted change). The
# container uses the host's network (the tests talk over loopback only) and the host's way to
# the package registries, mounted read-only and never part of an image: the CA bundle named
# by SSL_CERT_FILE, /etc/pip.conf, apt's sources and its Acquire settings (proxy and the
# like), proxy variables. See docker/README.md ("A fresh Debian 12 in a container").
#
# Output and logs go to .local/fresh-test/<time>-<commit>/; each stage's duration is printed
# at the end. The container is removed however the run ends. IVR_FRESH_IMAGE picks another
# base image.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PODMAN="$ROOT/docker/podman.sh"
IMAGE="${IVR_FRESH_IMAGE:-localhost/debian:bookworm}"
targets=("$@")
((${#targets[@]})) || targets=(test)

if [ "$(id -u)" != 0 ]; then
  echo "run as root (sudo make fresh-test): debootstrap and podman's vfs storage need it" >&2
  exit 1
fi

commit="$(git rev-parse HEAD)"
OUT="$ROOT/.local/fresh-test/$(date +%Y%m%d-%H%M%S)-${commit:0:7}"
mkdir -p "$OUT"
TIMES="$OUT/stages.txt"
: >"$TIMES"

stage_started=0
stage_name=""
stage() { # stage NAME: ends the running stage (if any) and starts NAME
  local now=$SECONDS
  if [ -n "$stage_name" ]; then
    printf '%-44s %5d s\n' "$stage_name" $((now - stage_started)) >>"$TIMES"
  fi
  stage_name="$1"
  stage_started=$now
  [ -z "$stage_name" ] || echo "== $stage_name" >&2
}

# --- host tools: podman, runc (docker/podman.sh), debootstrap (docker/base-image.sh) -----
stage "host: podman, runc, debootstrap"
need=()
for tool in podman runc debootstrap; do
  command -v "$tool" >/dev/null || need+=("$tool")
done
if ((${#need[@]})); then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
"$PODMAN" info >/dev/null # writes the configuration under .local/podman/

stage "host: base image $IMAGE"
"$ROOT/docker/base-image.sh" "$IMAGE"

stage "host: git archive HEAD (${commit:0:12})"
git archive --format=tar -o "$OUT/src.tar" "$commit"
echo "$commit" >"$OUT/commit"

# --- how the host reaches package registries, read-only -----------------------------------
mounts=()
envs=()
HOST_CA=/run/host-registry/ca-certificates.crt
if [ -n "${SSL_CERT_FILE:-}" ] && [ -f "$SSL_CERT_FILE" ]; then
  # Not at the host's path: Debian's ca-certificates (pulled in by the install step) rewrites
  # /etc/ssl/certs/ca-certificates.crt, which a bind mount there would make fail.
  mounts+=(-v "$(readlink -f "$SSL_CERT_FILE"):$HOST_CA:ro")
  for var in SSL_CERT_FILE PIP_CERT REQUESTS_CA_BUNDLE CURL_CA_BUNDLE; do
    envs+=(-e "$var=$HOST_CA")
  done
fi
[ ! -f /etc/pip.conf ] || mounts+=(-v /etc/pip.conf:/etc/pip.conf:ro)
for var in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST PIP_DEFAULT_TIMEOUT \
  http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
  [ -z "${!var:-}" ] || envs+=(-e "$var=${!var}")
done
# apt: the host's sources replace the image's; Acquire settings (proxies, date checks of a
# snapshot mirror) and credentials files come along.
[ ! -f /etc/apt/sources.list ] || mounts+=(-v /etc/apt/sources.list:/etc/apt/sources.list:ro)
[ ! -d /etc/apt/sources.list.d ] || mounts+=(-v /etc/apt/sources.list.d:/etc/apt/sources.list.d:ro)
for f in /etc/apt/apt.conf /etc/apt/apt.conf.d/*; do
  if [ -f "$f" ] && grep -q 'Acquire' "$f"; then
    mounts+=(-v "$f:$f:ro")
  fi
done
for f in /etc/apt/auth.conf /etc/apt/auth.conf.d /etc/apt/keyrings; do
  [ ! -e "$f" ] || mounts+=(-v "$f:$f:ro")
done

# --- the run inside the container --------------------------------------------------------
# Every output line gets the epoch second it was printed, so the stages inside `make` can be
# timed afterwards without changing what runs.
inner='
set -uo pipefail
stamp() { while IFS= read -r line; do printf "%(%s)T %s\n" -1 "$line"; printf "%s\n" "$line" >&2; done; }
{
  echo "+ apt-get install make    (what a fresh machine lacks to type make)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends make 2>&1
  echo "+ tar -x src.tar"
  mkdir -p /root/ivr12333 && tar -x -C /root/ivr12333 -f /fresh/src.tar
} 2>&1 | stamp >/out/make.log || exit 1
cd /root/ivr12333
echo "+ make $*" | stamp >>/out/make.log
PYTEST_ADDOPTS="--junitxml=/out/junit.xml" make "$@" 2>&1 | stamp >>/out/make.log
rc=${PIPESTATUS[0]}
echo "+ make exited $rc" | stamp >>/out/make.log
# What the suite left: the logs of its PostgreSQL, Asterisk and servers (not the database
# files, the Asterisk root or the prompts).
grep -h "asterisk_root_ready" .local/test/run-*/app.log >/out/asterisk-root.json 2>/dev/null
tar -C .local -czf /out/local-logs.tar.gz --exclude="*/pg/data" --exclude=asterisk-root \
  --exclude=sounds --exclude="asterisk-root.partial-*" . 2>/dev/null
dpkg-query -W -f="\${Package} \${Version}\n" >/out/packages.txt
du -sxm / 2>/dev/null | cut -f1 >/out/container-mb
exit $rc
'

name="ivr12333-fresh-test-$$"
cleanup() { "$PODMAN" rm -f --ignore --time 0 "$name" >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM

stage "container: make ${targets[*]} (total)"
container_started=$SECONDS
set +e
# Root with a fixed, narrow set of capabilities (podman 4.3's defaults, spelled out so other
# versions give the same): no SYS_ADMIN, no --privileged. The Asterisk root is built with
# debootstrap (MKNOD for its /dev, SYS_CHROOT for its package scripts and for Asterisk;
# debootstrap only warns that it cannot mount /proc and /sys there), PostgreSQL runs as
# the postgres user (SETUID, SETGID; KILL to stop it).
caps=CHOWN,DAC_OVERRIDE,FOWNER,FSETID,KILL,SETGID,SETUID,SETPCAP,SETFCAP,MKNOD,SYS_CHROOT
caps+=,NET_BIND_SERVICE,NET_RAW,AUDIT_WRITE
"$PODMAN" run --rm --name "$name" --network host --cap-drop all --cap-add "$caps" \
  --shm-size 512m \
  -v "$OUT/src.tar:/fresh/src.tar:ro" -v "$OUT:/out" \
  "${mounts[@]}" "${envs[@]}" \
  "$IMAGE" bash -c "$inner" fresh-test "${targets[@]}" &
# In the background so that a signal reaches the traps at once (bash runs them only after
# a foreground command ends) and the container is removed.
wait $!
rc=$?
set -e
stage ""
rm -f "$OUT/src.tar" # the commit names it

# --- report --------------------------------------------------------------------------------
# Stages inside make, from the first line each step printed (seconds since the container
# started); a step that did not run is left out.
awk -v total=$((SECONDS - container_started)) '
  NR == 1 { t0 = $1 }
  { sub(/\r$/, "") }
  !s["apt"] && /^[0-9]+ installing system packages:/ { s["apt"] = $1 - t0; order[++n] = "apt" }
  !s["make"] && /^[0-9]+ \+ make / { s["make"] = $1 - t0; order[++n] = "make" }
  !s["venv"] && /^[0-9]+ test -x \.venv\/bin\/python/ { s["venv"] = $1 - t0; order[++n] = "venv" }
  !s["lint"] && /^[0-9]+ \.venv\/bin\/ruff check/ { s["lint"] = $1 - t0; order[++n] = "lint" }
  !s["pytest"] && /^[0-9]+ \.venv\/bin\/pytest/ { s["pytest"] = $1 - t0; order[++n] = "pytest" }
  /^[0-9]+ \+ make exited/ { s["end"] = $1 - t0; order[++n] = "end" }
  END {
    label["make"] = "  bootstrap: apt-get install make, unpack"
    label["apt"] = "  make: system packages (apt)"
    label["venv"] = "  make: .venv and Python packages"
    label["lint"] = "  make: ruff, mypy"
    label["pytest"] = "  make: pytest"
    prev = 0; name = label["make"]
    for (i = 1; i <= n; i++) {
      k = order[i]
      if (k == "make") continue
      printf "%-44s %5d s\n", name, s[k] - prev
      prev = s[k]; name = label[k]
    }
    printf "%-44s %5d s\n", "  podman: start, collect logs, remove", total - prev
  }' "$OUT/make.log" >>"$TIMES" || true
if [ -s "$OUT/asterisk-root.json" ]; then
  seconds="$(grep -o '"seconds": *[0-9.]*' "$OUT/asterisk-root.json" | head -n 1 | grep -o '[0-9.]*$')"
  printf '%-44s %5s s\n' "    (within pytest) Asterisk root, debootstrap" "${seconds%.*}" >>"$TIMES"
fi

echo
echo "fresh Debian 12 ($IMAGE), commit ${commit:0:12}, make ${targets[*]}: exit $rc"
cat "$TIMES"
summary="$(grep -E '^[0-9]+ =+ .*[0-9]+ (passed|failed|error)' "$OUT/make.log" | tail -n 1 | cut -d' ' -f2- || true)"
[ -z "$summary" ] || echo "pytest: $summary"
echo "image $IMAGE: $("$PODMAN" image inspect --format '{{.Size}}' "$IMAGE" | numfmt --to=si)B"
[ ! -s "$OUT/container-mb" ] || echo "container file system at the end: $(cat "$OUT/container-mb") MB"
echo "logs: $OUT"
exit "$rc"
