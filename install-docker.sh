#!/usr/bin/env bash
# Install Docker Engine on Ubuntu, Debian (Docker's official apt repository, signing key
# checked against Docker's published fingerprint) or Amazon Linux 2/2023 (the distro's
# `docker` package). Non-interactive and idempotent: when `docker` is already installed
# it says so and changes nothing.
#
#   sudo ./install-docker.sh
#
# Test hooks: OS_RELEASE_FILE and UNAME_M replace /etc/os-release and `uname -m`;
# sourcing this file defines the functions without running main.
set -euo pipefail

INSTALL_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/lib/platform.sh
source "$INSTALL_DIR/deploy/lib/platform.sh"

# Published at https://docs.docker.com/engine/install/ubuntu/ (and /debian/).
DOCKER_GPG_FINGERPRINT=9DC858229FC7DD38854AE2D88D81803C0EBFCD88
DOCKER_KEYRING=/etc/apt/keyrings/docker.asc
DOCKER_SOURCES=/etc/apt/sources.list.d/docker.list
DOCKER_PACKAGES=(docker-ce docker-ce-cli containerd.io docker-buildx-plugin docker-compose-plugin)

docker_repo_url() {
  printf 'https://download.docker.com/linux/%s\n' "$PLATFORM_ID"
}

# docker_apt_source: the one line written to docker.list for the detected system.
docker_apt_source() {
  printf 'deb [arch=%s signed-by=%s] %s %s stable\n' \
    "$PLATFORM_DEB_ARCH" "$DOCKER_KEYRING" "$(docker_repo_url)" "$PLATFORM_CODENAME"
}

docker_installed() {
  command -v docker >/dev/null 2>&1 && docker --version >/dev/null 2>&1
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
  install -m 0755 -d "$(dirname "$DOCKER_KEYRING")"
  install -m 0644 "$key" "$DOCKER_KEYRING"
  docker_apt_source >"$DOCKER_SOURCES"
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
