#!/usr/bin/env bash
# Make sure Debian's HAProxy is installed: the load balancer of the production profile (make run-prod, make bench,
# make faults). It only runs as a child of `dvcbot run-prod` / the benchmark, never as a system service.
set -eu
if command -v haproxy >/dev/null; then exit 0; fi
if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null; then
  echo "HAProxy is missing: run 'apt-get install haproxy' as root, then try again." >&2
  exit 1
fi
SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
echo "Installing Debian's haproxy for the production profile ..."
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq haproxy >/dev/null
# the package starts a system service on an empty configuration where it can; the profile runs its own
if command -v systemctl >/dev/null && systemctl is-active --quiet haproxy 2>/dev/null; then
  $SUDO systemctl disable --now haproxy >/dev/null 2>&1 || true
fi
haproxy -v | head -1
