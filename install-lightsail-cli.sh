#!/usr/bin/env bash
# Install lightsailctl, the AWS CLI plugin that `aws lightsail push-container-image` runs, into
# /usr/local/bin for the detected architecture (linux-amd64 or linux-arm64).
#
#   sudo ./install-lightsail-cli.sh                                # AWS's "latest" binary
#   sudo LIGHTSAILCTL_VERSION=1.0.8 ./install-lightsail-cli.sh     # a release, checksum-verified
#   sudo LIGHTSAILCTL_VERSION=1.0.8 LIGHTSAILCTL_SHA256=<hex> ./install-lightsail-cli.sh
#
# Default: the binary from AWS's download location (what the Lightsail guide installs). AWS
# publishes no checksum or signature for that file, so the script checks what it can: HTTPS, an
# ELF executable for this CPU, a working `lightsailctl --version`, and LIGHTSAILCTL_SHA256 (the
# binary's hash, one you recorded yourself) when given.
# LIGHTSAILCTL_VERSION: the release archive from github.com/aws/lightsailctl instead; it is
# installed only when its sha256 matches its line in that release's checksums file (which hashes
# the archives, not the binary) and LIGHTSAILCTL_SHA256, the archive's hash, when given.
# Idempotent: when lightsailctl is already on PATH it says so and changes nothing.
# Test hooks: OS_RELEASE_FILE, UNAME_M; sourcing this file does not run main.
set -euo pipefail

INSTALL_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/lib/platform.sh
source "$INSTALL_DIR/deploy/lib/platform.sh"

LIGHTSAILCTL_BASE_URL=https://s3.us-west-2.amazonaws.com/lightsailctl/latest
LIGHTSAILCTL_RELEASES_URL=https://github.com/aws/lightsailctl/releases/download
LIGHTSAILCTL_DEST=${LIGHTSAILCTL_DEST:-/usr/local/bin/lightsailctl}

lightsailctl_url() {
  printf '%s/linux-%s/lightsailctl\n' "$LIGHTSAILCTL_BASE_URL" "$PLATFORM_DEB_ARCH"
}

# release_version: LIGHTSAILCTL_VERSION without a leading "v" (the archives are named without it).
release_version() {
  local version=${LIGHTSAILCTL_VERSION#v}
  [[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "LIGHTSAILCTL_VERSION must look like 1.0.8 (got '$LIGHTSAILCTL_VERSION')"
  printf '%s\n' "$version"
}

# release_archive_name / release_checksums_name: the asset names goreleaser gives a release.
release_archive_name() {
  printf 'lightsailctl_%s_linux_%s.tar.gz\n' "$(release_version)" "$PLATFORM_DEB_ARCH"
}

release_checksums_name() {
  printf 'lightsailctl_%s_checksums.txt\n' "$(release_version)"
}

# release_url NAME: where a release asset is downloaded from.
release_url() {
  printf '%s/v%s/%s\n' "$LIGHTSAILCTL_RELEASES_URL" "$(release_version)" "$1"
}

sha256_of() {
  sha256sum "$1" | awk '{ print $1 }'
}

# check_pinned_sha256 FILE WHAT: LIGHTSAILCTL_SHA256, when set, is FILE's hash.
check_pinned_sha256() {
  [[ -n ${LIGHTSAILCTL_SHA256:-} ]] || return 0
  local actual
  actual=$(sha256_of "$1")
  if [[ $actual != "${LIGHTSAILCTL_SHA256,,}" ]]; then
    echo "error: $2 has sha256 $actual, not LIGHTSAILCTL_SHA256=$LIGHTSAILCTL_SHA256" >&2
    return 1
  fi
}

# verify_release_archive ARCHIVE CHECKSUMS NAME: ARCHIVE's sha256 is the one CHECKSUMS lists for
# NAME (goreleaser's "<hash>  <file>" lines), and LIGHTSAILCTL_SHA256 when set.
verify_release_archive() {
  local archive=$1 checksums=$2 name=$3 expected actual
  expected=$(awk -v name="$name" '$2 == name || $2 == "*" name { print $1; exit }' "$checksums")
  if [[ ! $expected =~ ^[0-9a-fA-F]{64}$ ]]; then
    echo "error: $(basename "$checksums") has no sha256 for $name" >&2
    return 1
  fi
  actual=$(sha256_of "$archive")
  if [[ $actual != "${expected,,}" ]]; then
    echo "error: $name has sha256 $actual, but the release's checksums file says $expected" >&2
    return 1
  fi
  check_pinned_sha256 "$archive" "$name"
}

# extract_lightsailctl ARCHIVE DIR: the lightsailctl executable from a release archive, into DIR.
extract_lightsailctl() {
  tar -xzf "$1" -C "$2" --no-same-owner lightsailctl || {
    echo "error: $(basename "$1") has no lightsailctl executable" >&2
    return 1
  }
}

# check_lightsailctl_binary FILE: an executable for this CPU.
check_lightsailctl_binary() {
  local file=$1 machine
  machine=$(elf_machine "$file")
  if [[ $machine != "$PLATFORM_ARCH" ]]; then
    echo "error: downloaded file is $machine, expected an ELF executable for $PLATFORM_ARCH" >&2
    return 1
  fi
}

download() {
  log "downloading $1"
  curl -fsSL --retry 3 --proto '=https' "$1" -o "$2"
}

# fetch_release DIR: download, verify and unpack a release; prints the binary's path.
fetch_release() {
  local dir=$1 archive checksums
  archive=$(release_archive_name)
  checksums=$(release_checksums_name)
  download "$(release_url "$archive")" "$dir/$archive" >&2
  download "$(release_url "$checksums")" "$dir/$checksums" >&2
  verify_release_archive "$dir/$archive" "$dir/$checksums" "$archive" || die "not installing $archive"
  log "sha256 of $archive matches $checksums" >&2
  mkdir "$dir/unpacked"
  extract_lightsailctl "$dir/$archive" "$dir/unpacked" || die "not installing $archive"
  printf '%s\n' "$dir/unpacked/lightsailctl"
}

# fetch_latest DIR: download AWS's latest binary; prints its path.
fetch_latest() {
  local binary=$1/lightsailctl
  download "$(lightsailctl_url)" "$binary" >&2
  check_pinned_sha256 "$binary" "the downloaded lightsailctl" || die "not installing the downloaded file"
  printf '%s\n' "$binary"
}

main() {
  case ${1:-} in
    "") ;;
    -h | --help)
      sed -n '2,17p' "$0"
      return 0
      ;;
    *) die "unknown option $1 (use --help)" ;;
  esac
  if command -v lightsailctl >/dev/null 2>&1; then
    log "lightsailctl is already installed ($(command -v lightsailctl), $(lightsailctl --version 2>&1 || echo 'version unknown')); nothing to do"
    return 0
  fi
  detect_platform || exit 1
  [[ -z ${LIGHTSAILCTL_VERSION:-} ]] || release_version >/dev/null
  require_root "$@"
  ensure_commands curl
  local tmp binary
  tmp=$(mktemp -d)
  # shellcheck disable=SC2064  # expand now: the path is fixed
  trap "rm -rf '$tmp'" EXIT
  if [[ -n ${LIGHTSAILCTL_VERSION:-} ]]; then
    binary=$(fetch_release "$tmp")
  else
    binary=$(fetch_latest "$tmp")
  fi
  check_lightsailctl_binary "$binary" || die "not installing the downloaded file"
  install -m 0755 "$binary" "$LIGHTSAILCTL_DEST"
  log "installed: $LIGHTSAILCTL_DEST $("$LIGHTSAILCTL_DEST" --version 2>&1)"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
