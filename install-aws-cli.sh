#!/usr/bin/env bash
# Install AWS CLI version 2 from AWS's official archive (awscli-exe-linux-<arch>.zip),
# verified with its detached PGP signature (.sig) against the AWS CLI Team public key
# embedded below, as https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html
# describes. Works on Ubuntu, Debian and Amazon Linux 2023, x86_64 and aarch64.
#
#   sudo ./install-aws-cli.sh            # install if missing
#   sudo ./install-aws-cli.sh --update   # replace an existing v2 with the latest release
#
# Idempotent: when AWS CLI v2 is already installed it says so and changes nothing.
# It never runs `aws configure`; lightsail-deployment.md explains credentials.
# Test hooks: OS_RELEASE_FILE, UNAME_M; sourcing this file does not run main.
set -euo pipefail

INSTALL_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/lib/platform.sh
source "$INSTALL_DIR/deploy/lib/platform.sh"

AWS_CLI_BASE_URL=https://awscli.amazonaws.com
AWS_CLI_INSTALL_DIR=/usr/local/aws-cli
AWS_CLI_BIN_DIR=/usr/local/bin
# "AWS CLI Team <aws-cli@amazon.com>", fingerprint as published in the AWS CLI install guide.
# The block below is that key with its current self-signature (valid until 2027-07-01);
# when AWS extends it again, replace the block from the guide: the fingerprint stays.
AWS_CLI_KEY_FINGERPRINT=FB5DB77FD5C118B80511ADA8A6310ACC4672475C
AWS_CLI_PUBLIC_KEY=$(
  cat <<'KEY'
-----BEGIN PGP PUBLIC KEY BLOCK-----

mQINBF2Cr7UBEADJZHcgusOJl7ENSyumXh85z0TRV0xJorM2B/JL0kHOyigQluUG
ZMLhENaG0bYatdrKP+3H91lvK050pXwnO/R7fB/FSTouki4ciIx5OuLlnJZIxSzx
PqGl0mkxImLNbGWoi6Lto0LYxqHN2iQtzlwTVmq9733zd3XfcXrZ3+LblHAgEt5G
TfNxEKJ8soPLyWmwDH6HWCnjZ/aIQRBTIQ05uVeEoYxSh6wOai7ss/KveoSNBbYz
gbdzoqI2Y8cgH2nbfgp3DSasaLZEdCSsIsK1u05CinE7k2qZ7KgKAUIcT/cR/grk
C6VwsnDU0OUCideXcQ8WeHutqvgZH1JgKDbznoIzeQHJD238GEu+eKhRHcz8/jeG
94zkcgJOz3KbZGYMiTh277Fvj9zzvZsbMBCedV1BTg3TqgvdX4bdkhf5cH+7NtWO
lrFj6UwAsGukBTAOxC0l/dnSmZhJ7Z1KmEWilro/gOrjtOxqRQutlIqG22TaqoPG
fYVN+en3Zwbt97kcgZDwqbuykNt64oZWc4XKCa3mprEGC3IbJTBFqglXmZ7l9ywG
EEUJYOlb2XrSuPWml39beWdKM8kzr1OjnlOm6+lpTRCBfo0wa9F8YZRhHPAkwKkX
XDeOGpWRj4ohOx0d2GWkyV5xyN14p2tQOCdOODmz80yUTgRpPVQUtOEhXQARAQAB
tCFBV1MgQ0xJIFRlYW0gPGF3cy1jbGlAYW1hem9uLmNvbT6JAlQEEwEIAD4CGwMF
CwkIBwIGFQoJCAsCBBYCAwECHgECF4AWIQT7Xbd/1cEYuAURraimMQrMRnJHXAUC
akV0ygUJDqP4lQAKCRCmMQrMRnJHXFHjD/9eyZLYcKuQOlLvtqSDtUBiEZf6ZZjM
i3ygYH8rJNtuToUH+HvSpe819urJCquXhDrlK6N+aqW0hCLtNABJG/vsafIgvIYJ
hSGgpgtNnQyMV1jViRWqPjbouw8OkYKBThUfT1i2Y+wn58ifs6ODBCmTexWtXspA
Si+Gt49xDOW0APmbOPnI+a4HJW6tVEo6MWS0WjzpiBayR3d1A4pt4YrPfSdDgpLo
h2SLQqlRqvvVZJaWBjhkErNFpfsBA06sDcPEOb0G8LBUbR4WOcdvhe5LubJbZuxC
AG9kNPCVeQP1ixwjgjXKysaxeQ6rv0VzIQgRp6tLVLWhy6AKDNvLjFSsmXZ1Wl08
Y/RlOHXlzLuQMRE6sR1wOdRxc9TsrNWTGiBK65cvSWOy03JeBkQQ8pesqltiyxI9
U21kkgiXtTSKNGfKK8pO27D81YANhRqPK7iTp6kuFiY2WtOg90KTMNlIT+Ff85Y2
b1rHj6Z0SrCkJujhWk3IBPic/wJgz01LEc/OAdUPlby90RJZcIBhSlWhT7mXnXIO
c0HWlNQrns2s3CTyYwZSiSlYe9ApeLwhjDo8NhbFuCAy61l6O5UsR4AfZxx/rGKv
2wFb1/RN/P4gNe6vmxZAPjR0AQcwD3tc2McimOLr/22kmPz8IH3I0X7WoSFr0Biz
E91G7bb0hOb/cA==
=knv7
-----END PGP PUBLIC KEY BLOCK-----
KEY
)

# awscli_url: the archive for the detected architecture (the .sig sits beside it).
awscli_url() {
  printf '%s/awscli-exe-linux-%s.zip\n' "$AWS_CLI_BASE_URL" "$PLATFORM_ARCH"
}

# awscli_v2_installed: true when `aws --version` reports aws-cli/2.x.
awscli_v2_installed() {
  command -v aws >/dev/null 2>&1 && [[ $(aws --version 2>&1) == aws-cli/2.* ]]
}

# verify_signature ZIP SIG KEYFILE FINGERPRINT: true only when SIG is a good signature of
# ZIP made by the key with FINGERPRINT, using a throwaway keyring (the user's is untouched).
verify_signature() {
  local zip=$1 sig=$2 keyfile=$3 fingerprint=$4 home status
  home=$(mktemp -d)
  gpg --batch --quiet --homedir "$home" --import "$keyfile" 2>/dev/null || {
    rm -rf "$home"
    echo "error: cannot import the signing key" >&2
    return 1
  }
  status=$(gpg --batch --homedir "$home" --no-auto-key-retrieve --status-fd 1 \
    --verify "$sig" "$zip" 2>/dev/null || true)
  rm -rf "$home"
  if ! grep -Eq "^\[GNUPG:\] VALIDSIG $fingerprint( |$)" <<<"$status"; then
    echo "error: $zip is not signed by key $fingerprint" >&2
    return 1
  fi
}

install_awscli() {
  local update=$1 work
  ensure_commands curl unzip gpg
  work=$(mktemp -d)
  # shellcheck disable=SC2064  # expand now: the path is fixed
  trap "rm -rf '$work'" EXIT
  local url
  url=$(awscli_url)
  log "downloading $url and its signature"
  curl -fsSL --retry 3 "$url" -o "$work/awscliv2.zip"
  curl -fsSL --retry 3 "$url.sig" -o "$work/awscliv2.sig"
  printf '%s\n' "$AWS_CLI_PUBLIC_KEY" >"$work/aws-cli.asc"
  verify_key_fingerprint "$work/aws-cli.asc" "$AWS_CLI_KEY_FINGERPRINT" || die "the embedded AWS CLI key is damaged"
  verify_signature "$work/awscliv2.zip" "$work/awscliv2.sig" "$work/aws-cli.asc" "$AWS_CLI_KEY_FINGERPRINT" ||
    die "signature check failed: not installing"
  log "signature verified (key $AWS_CLI_KEY_FINGERPRINT)"
  unzip -q "$work/awscliv2.zip" -d "$work"
  local args=(--install-dir "$AWS_CLI_INSTALL_DIR" --bin-dir "$AWS_CLI_BIN_DIR")
  [[ $update == 1 ]] && args+=(--update)
  "$work/aws/install" "${args[@]}"
}

main() {
  local update=0
  case ${1:-} in
    --update) update=1 ;;
    "") ;;
    -h | --help)
      sed -n '2,12p' "$0"
      return 0
      ;;
    *) die "unknown option $1 (use --update or --help)" ;;
  esac
  if awscli_v2_installed && [[ $update == 0 ]]; then
    log "AWS CLI v2 is already installed ($(aws --version 2>&1)); nothing to do"
    return 0
  fi
  if command -v aws >/dev/null 2>&1 && ! awscli_v2_installed; then
    warn "found $(aws --version 2>&1 | head -n1); installing v2 into $AWS_CLI_BIN_DIR (remove v1 or put $AWS_CLI_BIN_DIR first on PATH)"
  fi
  [[ -d $AWS_CLI_INSTALL_DIR ]] && update=1
  detect_platform || exit 1
  require_root "$@"
  install_awscli "$update"
  log "installed: $("$AWS_CLI_BIN_DIR/aws" --version 2>&1)"
  log "next: configure credentials yourself ('aws configure' or AWS_PROFILE); see lightsail-deployment.md"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
