#!/usr/bin/env bash
# Install lightsailctl, the AWS CLI plugin that `aws lightsail push-container-image`
# runs, from AWS's official download location for the detected architecture
# (linux-amd64 or linux-arm64) into /usr/local/bin.
#
#   sudo ./install-lightsail-cli.sh
#   sudo LIGHTSAILCTL_SHA256=<sha256> ./install-lightsail-cli.sh   # pin a known checksum
#
# AWS publishes no checksum or signature next to this download, so the script checks
# what it can: HTTPS from AWS's S3 endpoint, an ELF executable for this CPU, a working
# `lightsailctl --version`, and LIGHTSAILCTL_SHA256 when you give one.
# Idempotent: when lightsailctl is already on PATH it says so and changes nothing.
# Test hooks: OS_RELEASE_FILE, UNAME_M; sourcing this file does not run main.
set -euo pipefail

INSTALL_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/lib/platform.sh
source "$INSTALL_DIR/deploy/lib/platform.sh"

LIGHTSAILCTL_BASE_URL=https://s3.us-west-2.amazonaws.com/lightsailctl/latest
LIGHTSAILCTL_DEST=${LIGHTSAILCTL_DEST:-/usr/local/bin/lightsailctl}

lightsailctl_url() {
  printf '%s/linux-%s/lightsailctl\n' "$LIGHTSAILCTL_BASE_URL" "$PLATFORM_DEB_ARCH"
}

# check_lightsailctl_binary FILE: an executable for this CPU (and the pinned checksum if set).
check_lightsailctl_binary() {
  local file=$1 machine
  machine=$(elf_machine "$file")
  if [[ $machine != "$PLATFORM_ARCH" ]]; then
    echo "error: downloaded file is $machine, expected an ELF executable for $PLATFORM_ARCH" >&2
    return 1
  fi
  if [[ -n ${LIGHTSAILCTL_SHA256:-} ]]; then
    local actual
    actual=$(sha256sum "$file" | awk '{ print $1 }')
    if [[ $actual != "$LIGHTSAILCTL_SHA256" ]]; then
      echo "error: sha256 $actual does not match LIGHTSAILCTL_SHA256=$LIGHTSAILCTL_SHA256" >&2
      return 1
    fi
  fi
}

main() {
  case ${1:-} in
    "") ;;
    -h | --help)
      sed -n '2,13p' "$0"
      return 0
      ;;
    *) die "unknown option $1 (use --help)" ;;
  esac
  if command -v lightsailctl >/dev/null 2>&1; then
    log "lightsailctl is already installed ($(command -v lightsailctl), $(lightsailctl --version 2>&1 || echo 'version unknown')); nothing to do"
    return 0
  fi
  detect_platform || exit 1
  require_root "$@"
  ensure_commands curl
  local tmp url
  tmp=$(mktemp)
  # shellcheck disable=SC2064  # expand now: the path is fixed
  trap "rm -f '$tmp'" EXIT
  url=$(lightsailctl_url)
  log "downloading $url"
  curl -fsSL --retry 3 --proto '=https' "$url" -o "$tmp"
  check_lightsailctl_binary "$tmp" || die "not installing the downloaded file"
  install -m 0755 "$tmp" "$LIGHTSAILCTL_DEST"
  log "installed: $LIGHTSAILCTL_DEST $("$LIGHTSAILCTL_DEST" --version 2>&1)"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
