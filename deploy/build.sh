#!/bin/sh
# The container image's build stage: deploy/Dockerfile runs this script (and
# CI builds that Dockerfile with buildah: internal/deploytest, TestImage), so
# the image's build is the one that is tested.
#
#   deploy/build.sh OUTDIR
#
# Writes OUTDIR/zerotouch and OUTDIR/zerotouch-healthcheck (static, no cgo:
# the in-process TPM simulator, a device-side tool, is left out) and
# OUTDIR/rootfs/var/lib/zerotouch, the data volume's directory, mode 0700 and
# owned by the image's user (65532, distroless "nonroot") when run as root.
# POSIX sh: it runs in the golang image and in CI alike.
set -eu
out=${1:?usage: deploy/build.sh OUTDIR}
uid=${ZEROTOUCH_IMAGE_UID:-65532}
cd "$(dirname "$0")/.."
mkdir -p "$out"
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$out/zerotouch" ./cmd/zerotouch
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$out/zerotouch-healthcheck" ./deploy/healthcheck
mkdir -p "$out/rootfs/var/lib/zerotouch"
chmod 0700 "$out/rootfs/var/lib/zerotouch"
if [ "$(id -u)" = 0 ]; then
  chown "$uid:$uid" "$out/rootfs/var/lib/zerotouch"
fi
