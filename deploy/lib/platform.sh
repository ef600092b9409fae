# shellcheck shell=bash
# Shared helpers for install-docker.sh, install-aws-cli.sh and install-lightsail-cli.sh:
# logging, root, distro/arch detection, package installs and key checks.
#
# Sourced, never run. Detection reads $OS_RELEASE_FILE (default /etc/os-release) and
# $UNAME_M (default: the output of `uname -m`) so tests can feed stand-in systems.

log() { printf '==> %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# os_release_value KEY FILE: the value of KEY in an os-release file, quotes removed.
# Parsed line by line instead of sourced, so a stand-in file cannot run code.
os_release_value() {
  local key=$1 file=$2 line value
  while IFS= read -r line || [[ -n $line ]]; do
    [[ $line == "$key="* ]] || continue
    value=${line#*=}
    value=${value#\"}
    value=${value%\"}
    value=${value#\'}
    value=${value%\'}
    printf '%s\n' "$value"
    return 0
  done <"$file"
}

# detect_arch: sets PLATFORM_ARCH (x86_64|aarch64, the AWS CLI's spelling) and
# PLATFORM_DEB_ARCH (amd64|arm64, the spelling of Debian, Docker and lightsailctl).
detect_arch() {
  local machine=${UNAME_M:-$(uname -m)}
  case $machine in
    x86_64 | amd64) PLATFORM_ARCH=x86_64 PLATFORM_DEB_ARCH=amd64 ;;
    aarch64 | arm64) PLATFORM_ARCH=aarch64 PLATFORM_DEB_ARCH=arm64 ;;
    *)
      printf 'error: unsupported CPU architecture %s (supported: x86_64, aarch64)\n' "$machine" >&2
      return 1
      ;;
  esac
}

# detect_distro: sets PLATFORM_ID (ubuntu|debian|amzn), PLATFORM_FAMILY (debian|amzn),
# PLATFORM_VERSION, PLATFORM_CODENAME (apt suite; empty on Amazon Linux) and
# PLATFORM_PKG (apt-get|dnf). Ubuntu derivatives (ID_LIKE=ubuntu) count as Ubuntu.
# Amazon Linux 2 is refused: its support ended on 2026-06-30 (AL2023 is supported to 2029).
detect_distro() {
  local file=${OS_RELEASE_FILE:-/etc/os-release}
  if [[ ! -r $file ]]; then
    printf 'error: cannot read %s; supported systems: Ubuntu, Debian, Amazon Linux 2023\n' "$file" >&2
    return 1
  fi
  local id id_like version codename ubuntu_codename
  id=$(os_release_value ID "$file")
  id_like=$(os_release_value ID_LIKE "$file")
  version=$(os_release_value VERSION_ID "$file")
  codename=$(os_release_value VERSION_CODENAME "$file")
  ubuntu_codename=$(os_release_value UBUNTU_CODENAME "$file")

  PLATFORM_VERSION=$version
  case $id in
    ubuntu | debian)
      PLATFORM_ID=$id PLATFORM_FAMILY=debian PLATFORM_PKG=apt-get
      PLATFORM_CODENAME=${codename:-$ubuntu_codename}
      ;;
    amzn)
      PLATFORM_ID=amzn PLATFORM_FAMILY=amzn PLATFORM_CODENAME=
      case $version in
        2023*) PLATFORM_PKG=dnf ;;
        2)
          printf 'error: Amazon Linux 2 reached its end of support on 2026-06-30; use Amazon Linux 2023\n' >&2
          return 1
          ;;
        *)
          printf 'error: unsupported Amazon Linux version %s (supported: 2023)\n' "${version:-?}" >&2
          return 1
          ;;
      esac
      ;;
    *)
      if [[ " $id_like " == *" ubuntu "* && -n $ubuntu_codename ]]; then
        PLATFORM_ID=ubuntu PLATFORM_FAMILY=debian PLATFORM_PKG=apt-get
        PLATFORM_CODENAME=$ubuntu_codename
      else
        printf 'error: unsupported distribution %s (supported: Ubuntu, Debian, Amazon Linux 2023)\n' "${id:-unknown}" >&2
        return 1
      fi
      ;;
  esac
  if [[ $PLATFORM_FAMILY == debian && -z $PLATFORM_CODENAME ]]; then
    printf 'error: %s has no VERSION_CODENAME in %s; cannot choose the apt suite\n' "$PLATFORM_ID" "$file" >&2
    return 1
  fi
}

# detect_platform: detect_distro + detect_arch.
detect_platform() {
  detect_distro && detect_arch
}

# platform_summary: the detected values as KEY=VALUE lines (used by the tests and in logs).
platform_summary() {
  printf 'PLATFORM_ID=%s\nPLATFORM_FAMILY=%s\nPLATFORM_VERSION=%s\nPLATFORM_CODENAME=%s\nPLATFORM_PKG=%s\nPLATFORM_ARCH=%s\nPLATFORM_DEB_ARCH=%s\n' \
    "$PLATFORM_ID" "$PLATFORM_FAMILY" "$PLATFORM_VERSION" "$PLATFORM_CODENAME" \
    "$PLATFORM_PKG" "$PLATFORM_ARCH" "$PLATFORM_DEB_ARCH"
}

# require_root "$@": re-run the calling script under sudo when not root.
require_root() {
  [[ $EUID -eq 0 ]] && return 0
  command -v sudo >/dev/null 2>&1 || die "run this script as root (sudo is not installed)"
  log "re-running with sudo"
  exec sudo -E bash "$0" "$@"
}

# pkg_install PACKAGE...: non-interactive install with the detected package manager.
pkg_install() {
  case $PLATFORM_PKG in
    apt-get)
      if [[ -z ${APT_UPDATED:-} ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -q
        APT_UPDATED=1
      fi
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
      ;;
    dnf) dnf install -y -q "$@" ;;
    *) die "no package manager detected (run detect_platform first)" ;;
  esac
}

# ensure_commands CMD...: install the packages that provide missing commands.
# Command and package names agree for everything the installers need (curl, gpg, unzip).
ensure_commands() {
  local missing=() cmd
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
  done
  if ((${#missing[@]})); then
    log "installing prerequisites: ${missing[*]}"
    local packages=()
    for cmd in "${missing[@]}"; do
      if [[ $cmd == gpg ]]; then
        # Amazon Linux 2023 ships gnupg2-minimal, which provides gpg already.
        if [[ $PLATFORM_FAMILY == debian ]]; then packages+=(gnupg); else packages+=(gnupg2); fi
      else
        packages+=("$cmd")
      fi
    done
    pkg_install ca-certificates "${packages[@]}"
  fi
}

# key_fingerprint FILE: the primary key fingerprint of an armored or binary OpenPGP key file.
key_fingerprint() {
  gpg --batch --with-colons --show-keys "$1" 2>/dev/null | awk -F: '$1 == "fpr" { print $10; exit }'
}

# verify_key_fingerprint FILE EXPECTED: fail unless FILE holds the key with that fingerprint.
verify_key_fingerprint() {
  local actual
  actual=$(key_fingerprint "$1")
  if [[ $actual != "$2" ]]; then
    printf 'error: key %s has fingerprint %s, expected %s\n' "$1" "${actual:-none}" "$2" >&2
    return 1
  fi
}

# elf_machine FILE: x86_64, aarch64, other or not-elf, read from the ELF header
# (magic bytes, then e_machine at offset 18, little-endian).
elf_machine() {
  local bytes
  local -a b
  bytes=$(od -An -t x1 -N 20 "$1" 2>/dev/null | tr -s ' \n' ' ')
  read -r -a b <<<"$bytes"
  if [[ ${#b[@]} -lt 20 || ${b[0]}${b[1]}${b[2]}${b[3]} != 7f454c46 ]]; then
    echo not-elf
    return 0
  fi
  case ${b[18]}${b[19]} in
    3e00) echo x86_64 ;;
    b700) echo aarch64 ;;
    *) echo other ;;
  esac
}
