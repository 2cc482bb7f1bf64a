#!/usr/bin/env bash
# What the container test needs from Debian's packages (like .ci/run's PostgreSQL and chromium steps): rootful
# Podman with runc and netavark (plus iptables, which netavark drives), and debootstrap for the stand-in base images.
set -euo pipefail
packages=(podman runc netavark aardvark-dns slirp4netns fuse-overlayfs uidmap iptables debootstrap catatonit)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "the container test needs: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
