#!/usr/bin/env bash
# Install Docker Engine on Ubuntu, Debian (Docker's official apt repository, signing key
# checked against Docker's published fingerprint) or Amazon Linux 2023 (the distro's `docker`
# package). On Ubuntu/Debian it first removes the packages Docker lists as conflicting
# (docker.io, podman-docker, containerd, runc, ...), as Docker's install guide does, and writes
# the repository as a deb822 file, /etc/apt/sources.list.d/docker.sources.
# Non-interactive and idempotent: when Docker Engine is already installed it says so and changes
# nothing (podman's `docker` stand-in does not count).
#
#   sudo ./install-docker.sh
#
# Test hooks: OS_RELEASE_FILE and UNAME_M replace /etc/os-release and `uname -m`, APT_ETC_DIR
# replaces /etc/apt; sourcing this file defines the functions without running main.
set -euo pipefail

INSTALL_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/lib/platform.sh
source "$INSTALL_DIR/deploy/lib/platform.sh"

# Published at https://docs.docker.com/engine/install/ubuntu/ (and /debian/).
DOCKER_GPG_FINGERPRINT=9DC858229FC7DD38854AE2D88D81803C0EBFCD88
APT_ETC_DIR=${APT_ETC_DIR:-/etc/apt}
DOCKER_KEYRING=$APT_ETC_DIR/keyrings/docker.asc
DOCKER_SOURCES=$APT_ETC_DIR/sources.list.d/docker.sources
# The one-line file older instructions (and earlier versions of this script) wrote: left beside
# docker.sources, apt would see the repository twice.
DOCKER_LEGACY_SOURCES=$APT_ETC_DIR/sources.list.d/docker.list
DOCKER_PACKAGES=(docker-ce docker-ce-cli containerd.io docker-buildx-plugin docker-compose-plugin)
# Unofficial packages that conflict with Docker's (its install guide's list; Ubuntu's adds
# docker-compose-v2).
DOCKER_CONFLICTS=(docker.io docker-compose docker-compose-v2 docker-doc podman-docker containerd runc)

docker_repo_url() {
  printf 'https://download.docker.com/linux/%s\n' "$PLATFORM_ID"
}

# docker_apt_sources: the deb822 stanza written to docker.sources for the detected system.
docker_apt_sources() {
  printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: stable\nArchitectures: %s\nSigned-By: %s\n' \
    "$(docker_repo_url)" "$PLATFORM_CODENAME" "$PLATFORM_DEB_ARCH" "$DOCKER_KEYRING"
}

# installed_conflicts: the DOCKER_CONFLICTS packages dpkg has installed, one per line.
installed_conflicts() {
  dpkg-query -W -f '${db:Status-Abbrev} ${Package}\n' "${DOCKER_CONFLICTS[@]}" 2>/dev/null |
    awk '$1 ~ /^.i/ { print $2 }' || true
}

remove_conflicts() {
  local conflicts
  mapfile -t conflicts < <(installed_conflicts)
  if ((${#conflicts[@]} == 0)); then
    return 0
  fi
  log "removing packages that conflict with Docker's: ${conflicts[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get remove -y -q "${conflicts[@]}"
}

# docker_installed: Docker Engine's own CLI answers (podman-docker's `docker` says "podman").
docker_installed() {
  command -v docker >/dev/null 2>&1 && [[ $(docker --version 2>/dev/null) == "Docker version "* ]]
}

install_docker_debian() {
  ensure_commands curl gpg
  local key
  key=$(mktemp)
  # shellcheck disable=SC2064  # expand now: the path is fixed
  trap "rm -f '$key'" EXIT
  log "downloading Docker's apt signing key"
  curl -fsSL --retry 3 "$(docker_repo_url)/gpg" -o "$key"
  verify_key_fingerprint "$key" "$DOCKER_GPG_FINGERPRINT" || die "Docker's signing key did not match the published fingerprint; aborting"
  remove_conflicts
  install -m 0755 -d "$(dirname "$DOCKER_KEYRING")" "$(dirname "$DOCKER_SOURCES")"
  install -m 0644 "$key" "$DOCKER_KEYRING"
  docker_apt_sources >"$DOCKER_SOURCES"
  chmod 0644 "$DOCKER_SOURCES"
  rm -f "$DOCKER_LEGACY_SOURCES"
  log "installing ${DOCKER_PACKAGES[*]} from $(docker_repo_url) ($PLATFORM_CODENAME)"
  APT_UPDATED='' pkg_install "${DOCKER_PACKAGES[@]}"
}

install_docker_amzn() {
  log "installing docker with $PLATFORM_PKG"
  pkg_install docker
}

start_docker() {
  if [[ -d /run/systemd/system ]]; then
    systemctl enable --now docker
  else
    warn "systemd is not running here; start the Docker daemon yourself (e.g. 'service docker start')"
  fi
  # Let the user who ran sudo use docker without sudo (after logging in again).
  if [[ -n ${SUDO_USER:-} && $SUDO_USER != root ]]; then
    usermod -aG docker "$SUDO_USER"
    log "added $SUDO_USER to the docker group; log out and back in for it to take effect"
  fi
}

main() {
  if docker_installed; then
    log "Docker is already installed ($(docker --version)); nothing to do"
    return 0
  fi
  detect_platform || exit 1
  require_root "$@"
  log "installing Docker on $PLATFORM_ID $PLATFORM_VERSION ($PLATFORM_ARCH)"
  case $PLATFORM_FAMILY in
    debian) install_docker_debian ;;
    amzn) install_docker_amzn ;;
  esac
  start_docker
  log "installed: $(docker --version)"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
