#!/usr/bin/env bash
# A minimal Debian root file system imported as a local image, the base of the test's stand-in images (no registry
# is reachable here, so nothing is pulled). Usage: debian-rootfs.sh IMAGE_TAG
# The host's extra CA certificates go in too: where egress passes through an inspecting proxy, pip and apt inside a
# build need them.
set -euo pipefail
tag=$1
suite=${DEBIAN_SUITE:-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
work=$(mktemp -d "${TMPDIR:-/var/tmp}/rskd-rootfs.XXXXXX")
trap 'rm -rf "$work"' EXIT
debootstrap --variant=minbase --include=ca-certificates "$suite" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log"; exit 1; }
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$work/rootfs/usr/local/share/ca-certificates/"
  chroot "$work/rootfs" update-ca-certificates >/dev/null
fi
echo "deb $mirror $suite main" >"$work/rootfs/etc/apt/sources.list"
rm -rf "$work"/rootfs/var/lib/apt/lists/* "$work"/rootfs/var/cache/apt/*.bin
tar -C "$work/rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - "$tag" >/dev/null
echo "imported $tag"
