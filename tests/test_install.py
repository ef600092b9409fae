"""The install-*.sh scripts: distro/arch detection on stand-in /etc/os-release files and
`uname -m` outputs, the download URLs each platform gets, the signature, checksum and binary
checks, idempotency (an installed tool means "nothing to do" and no installer runs), and dry runs
of whole installs against stand-in package managers, downloads and keys.

The real installs need root and the internet; nothing here downloads or installs anything.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INSTALLERS = ["install-docker.sh", "install-aws-cli.sh", "install-lightsail-cli.sh"]
# The fingerprint printed in the AWS CLI install guide ("AWS CLI Team <aws-cli@amazon.com>").
AWS_CLI_PUBLISHED_FINGERPRINT = "FB5DB77FD5C118B80511ADA8A6310ACC4672475C"

OS_RELEASES = {
    "ubuntu-22.04": 'NAME="Ubuntu"\nVERSION_ID="22.04"\nID=ubuntu\nID_LIKE=debian\n'
    "VERSION_CODENAME=jammy\nUBUNTU_CODENAME=jammy\n",
    "ubuntu-24.04": 'NAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\nID_LIKE=debian\n'
    "VERSION_CODENAME=noble\nUBUNTU_CODENAME=noble\n",
    "debian-12": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_ID="12"\n'
    "VERSION_CODENAME=bookworm\nID=debian\n",
    "amzn-2": 'NAME="Amazon Linux"\nVERSION="2"\nID="amzn"\nID_LIKE="centos rhel fedora"\nVERSION_ID="2"\n',
    "amzn-2023": 'NAME="Amazon Linux"\nVERSION="2023"\nID="amzn"\nID_LIKE="fedora"\nVERSION_ID="2023"\n',
    "mint-21": 'NAME="Linux Mint"\nVERSION_ID="21.3"\nID=linuxmint\nID_LIKE="ubuntu debian"\n'
    "VERSION_CODENAME=virginia\nUBUNTU_CODENAME=jammy\n",
    "fedora-40": 'NAME="Fedora Linux"\nVERSION_ID=40\nID=fedora\n',
    "alpine-3.20": 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.0\n',
    "amzn-2018": 'NAME="Amazon Linux AMI"\nID="amzn"\nVERSION_ID="2018.03"\n',
    "debian-sid": 'PRETTY_NAME="Debian GNU/Linux trixie/sid"\nID=debian\n',
    # {marker} is replaced by a path: sourcing this file (instead of parsing it) would create it.
    "hostile": "ID=ubuntu\nVERSION_CODENAME=jammy\n$(touch {marker})\nID_LIKE=`touch {marker}`\n",
}


def sourced(script: str, snippet: str, **env: str) -> subprocess.CompletedProcess:
    """Source an installer (main does not run) and run a snippet in the same shell."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("OS_RELEASE_FILE", "UNAME_M")}
    full_env.update(env)
    return subprocess.run(
        ["bash", "-c", f'source "$1"; {snippet}', "bash", str(ROOT / script)],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=ROOT,
        timeout=60,
    )


def detect(tmp_path: Path, release: str, machine: str, script: str = "install-docker.sh"):
    os_release = tmp_path / "os-release"
    os_release.write_text(OS_RELEASES[release].replace("{marker}", str(tmp_path / "executed")))
    result = sourced(
        script, "detect_platform && platform_summary", OS_RELEASE_FILE=str(os_release), UNAME_M=machine
    )
    values = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    return result, values


@pytest.mark.parametrize("script", INSTALLERS)
def test_installer_syntax(script: str):
    result = subprocess.run(["bash", "-n", str(ROOT / script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", INSTALLERS)
def test_installers_are_strict_and_executable(script: str):
    text = (ROOT / script).read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in text
    assert os.access(ROOT / script, os.X_OK)
    # `aws configure` may be mentioned in messages, never run as a command.
    commands = [line.strip() for line in text.splitlines() if not line.strip().startswith("#")]
    assert not any(line.startswith("aws configure") for line in commands)


@pytest.mark.parametrize("script", INSTALLERS)
def test_sourcing_an_installer_does_not_run_it(script: str):
    result = sourced(script, "declare -F main detect_platform >/dev/null && echo sourced-only")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "sourced-only"


@pytest.mark.parametrize(
    ("release", "machine", "expected"),
    [
        (
            "ubuntu-22.04",
            "x86_64",
            dict(ID="ubuntu", CODENAME="jammy", PKG="apt-get", ARCH="x86_64", DEB_ARCH="amd64"),
        ),
        (
            "ubuntu-24.04",
            "aarch64",
            dict(ID="ubuntu", CODENAME="noble", PKG="apt-get", ARCH="aarch64", DEB_ARCH="arm64"),
        ),
        (
            "debian-12",
            "arm64",
            dict(ID="debian", CODENAME="bookworm", PKG="apt-get", ARCH="aarch64", DEB_ARCH="arm64"),
        ),
        ("amzn-2023", "aarch64", dict(ID="amzn", FAMILY="amzn", VERSION="2023", CODENAME="", PKG="dnf",
                                      ARCH="aarch64")),
        ("mint-21", "amd64", dict(ID="ubuntu", FAMILY="debian", CODENAME="jammy", ARCH="x86_64")),
    ],
)
def test_detection_of_supported_systems(tmp_path: Path, release: str, machine: str, expected: dict):
    result, values = detect(tmp_path, release, machine)
    assert result.returncode == 0, result.stderr
    for key, value in expected.items():
        assert values[f"PLATFORM_{key}"] == value, key


@pytest.mark.parametrize(
    ("release", "machine", "message"),
    [
        ("fedora-40", "x86_64", "unsupported distribution fedora"),
        ("alpine-3.20", "x86_64", "unsupported distribution alpine"),
        ("amzn-2018", "x86_64", "unsupported Amazon Linux version 2018.03"),
        ("amzn-2", "x86_64", "Amazon Linux 2 reached its end of support on 2026-06-30; use Amazon Linux 2023"),
        ("debian-sid", "x86_64", "no VERSION_CODENAME"),
        ("ubuntu-22.04", "riscv64", "unsupported CPU architecture riscv64"),
        ("ubuntu-22.04", "armv7l", "unsupported CPU architecture armv7l"),
    ],
)
def test_detection_rejects_unsupported_systems(tmp_path: Path, release: str, machine: str, message: str):
    result, _ = detect(tmp_path, release, machine)
    assert result.returncode != 0
    assert message in result.stderr


def test_detection_without_os_release_fails_clearly(tmp_path: Path):
    result = sourced("install-docker.sh", "detect_platform", OS_RELEASE_FILE=str(tmp_path / "nope"))
    assert result.returncode != 0
    assert "cannot read" in result.stderr


def test_os_release_is_parsed_not_executed(tmp_path: Path):
    result, values = detect(tmp_path, "hostile", "x86_64")
    assert result.returncode == 0, result.stderr
    assert values["PLATFORM_CODENAME"] == "jammy"
    assert not (tmp_path / "executed").exists()


def test_detection_uses_uname_when_no_override(tmp_path: Path):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    uname = fake_bin / "uname"
    uname.write_text('#!/bin/sh\n[ "$1" = "-m" ] && echo aarch64\n')
    uname.chmod(0o755)
    os_release = tmp_path / "os-release"
    os_release.write_text(OS_RELEASES["debian-12"])
    result = sourced(
        "install-lightsail-cli.sh",
        "detect_platform && platform_summary",
        OS_RELEASE_FILE=str(os_release),
        PATH=f"{fake_bin}{os.pathsep}{os.environ['PATH']}",
    )
    assert result.returncode == 0, result.stderr
    assert "PLATFORM_ARCH=aarch64" in result.stdout


def docker_sources(repo: str, suite: str, arch: str, keyring: str = "/etc/apt/keyrings/docker.asc") -> str:
    """The deb822 stanza of Docker's install guide (docker.sources)."""
    return (f"Types: deb\nURIs: https://download.docker.com/linux/{repo}\nSuites: {suite}\n"
            f"Components: stable\nArchitectures: {arch}\nSigned-By: {keyring}\n")


@pytest.mark.parametrize(
    ("release", "machine", "expected"),
    [
        ("ubuntu-22.04", "x86_64", docker_sources("ubuntu", "jammy", "amd64")),
        ("mint-21", "x86_64", docker_sources("ubuntu", "jammy", "amd64")),  # the Ubuntu base's suite
        ("debian-12", "aarch64", docker_sources("debian", "bookworm", "arm64")),
    ],
)
def test_docker_apt_sources_per_platform(tmp_path: Path, release: str, machine: str, expected: str):
    os_release = tmp_path / "os-release"
    os_release.write_text(OS_RELEASES[release])
    result = sourced(
        "install-docker.sh",
        "detect_platform && docker_apt_sources && echo \"$DOCKER_SOURCES\"",
        OS_RELEASE_FILE=str(os_release),
        UNAME_M=machine,
    )
    assert result.returncode == 0, result.stderr
    *stanza, path = result.stdout.splitlines()
    assert "\n".join(stanza) + "\n" == expected
    assert path == "/etc/apt/sources.list.d/docker.sources"


@pytest.mark.parametrize(
    ("machine", "aws_url", "lightsailctl_url"),
    [
        (
            "x86_64",
            "https://awscli.amazonaws.com/awscli-exe-linux-x86_64.zip",
            "https://s3.us-west-2.amazonaws.com/lightsailctl/latest/linux-amd64/lightsailctl",
        ),
        (
            "aarch64",
            "https://awscli.amazonaws.com/awscli-exe-linux-aarch64.zip",
            "https://s3.us-west-2.amazonaws.com/lightsailctl/latest/linux-arm64/lightsailctl",
        ),
    ],
)
def test_download_urls_per_architecture(tmp_path: Path, machine: str, aws_url: str, lightsailctl_url: str):
    os_release = tmp_path / "os-release"
    os_release.write_text(OS_RELEASES["amzn-2023"])
    env = dict(OS_RELEASE_FILE=str(os_release), UNAME_M=machine)
    aws = sourced("install-aws-cli.sh", "detect_platform && awscli_url", **env)
    ctl = sourced("install-lightsail-cli.sh", "detect_platform && lightsailctl_url", **env)
    assert aws.stdout.strip() == aws_url, aws.stderr
    assert ctl.stdout.strip() == lightsailctl_url, ctl.stderr


# ------------------------------------------------------------------ signatures

gpg_missing = pytest.mark.skipif(shutil.which("gpg") is None, reason="gpg is not installed")


@gpg_missing
def test_embedded_aws_cli_key_is_the_published_one(tmp_path: Path):
    result = sourced(
        "install-aws-cli.sh",
        'printf "%s\\n" "$AWS_CLI_PUBLIC_KEY" > "$KEYFILE"; key_fingerprint "$KEYFILE"; echo "$AWS_CLI_KEY_FINGERPRINT"',
        KEYFILE=str(tmp_path / "aws.asc"),
    )
    assert result.returncode == 0, result.stderr
    from_key, pinned = result.stdout.split()
    assert from_key == pinned == AWS_CLI_PUBLISHED_FINGERPRINT
    # gpg accepts the key's self-signature (the block is intact, not just its first lines).
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    subprocess.run(
        ["gpg", "--batch", "--homedir", str(home), "--import", str(tmp_path / "aws.asc")],
        check=True,
        capture_output=True,
    )
    sigs = subprocess.run(
        ["gpg", "--batch", "--homedir", str(home), "--with-colons", "--check-sigs"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert any(line.startswith("sig:!:") for line in sigs.splitlines()), sigs


@pytest.fixture
def signing_key(tmp_path: Path):
    """A throwaway signing key, its exported public key and a signed file."""
    home = tmp_path / "signer"
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--batch", "--homedir", str(home), "--passphrase", "", "--pinentry-mode", "loopback"]
    subprocess.run(
        [*gpg, "--quick-gen-key", "Test Signer <signer@example.invalid>", "ed25519", "sign", "never"],
        check=True,
        capture_output=True,
    )
    listing = subprocess.run(
        [*gpg, "--with-colons", "--list-keys"], check=True, capture_output=True, text=True
    )
    fingerprint = next(line.split(":")[9] for line in listing.stdout.splitlines() if line.startswith("fpr:"))
    public = tmp_path / "signer.asc"
    subprocess.run(
        [*gpg, "--armor", "--output", str(public), "--export", fingerprint], check=True, capture_output=True
    )
    payload = tmp_path / "awscliv2.zip"
    payload.write_bytes(b"PK\x03\x04 not really a zip")
    signature = tmp_path / "awscliv2.sig"
    subprocess.run(
        [*gpg, "--output", str(signature), "--detach-sign", str(payload)], check=True, capture_output=True
    )
    return dict(fingerprint=fingerprint, public=public, payload=payload, signature=signature)


def verify(key: dict, payload: Path, public: Path, fingerprint: str) -> subprocess.CompletedProcess:
    return sourced(
        "install-aws-cli.sh",
        'verify_signature "$ZIP" "$SIG" "$KEY" "$FPR"',
        ZIP=str(payload),
        SIG=str(key["signature"]),
        KEY=str(public),
        FPR=fingerprint,
    )


@gpg_missing
def test_signature_check_accepts_a_good_signature(signing_key: dict):
    result = verify(signing_key, signing_key["payload"], signing_key["public"], signing_key["fingerprint"])
    assert result.returncode == 0, result.stderr


@gpg_missing
def test_signature_check_rejects_a_tampered_archive(signing_key: dict):
    signing_key["payload"].write_bytes(b"PK\x03\x04 tampered")
    result = verify(signing_key, signing_key["payload"], signing_key["public"], signing_key["fingerprint"])
    assert result.returncode != 0
    assert "is not signed by key" in result.stderr


@gpg_missing
def test_signature_check_rejects_a_signature_by_another_key(signing_key: dict):
    # A valid signature, but not by the pinned AWS CLI key: must not pass.
    result = verify(signing_key, signing_key["payload"], signing_key["public"], AWS_CLI_PUBLISHED_FINGERPRINT)
    assert result.returncode != 0


# ------------------------------------------------------------- lightsailctl binary


def elf_header(machine_byte: int) -> bytes:
    header = bytearray(64)
    header[:4] = b"\x7fELF"
    header[18] = machine_byte
    return bytes(header)


def check_binary(path: Path, arch: str, **env: str) -> subprocess.CompletedProcess:
    return sourced(
        "install-lightsail-cli.sh",
        f'PLATFORM_ARCH={arch}; check_lightsailctl_binary "$BIN"',
        BIN=str(path),
        **env,
    )


def test_elf_machine_reads_real_and_crafted_headers(tmp_path: Path):
    crafted = tmp_path / "arm"
    crafted.write_bytes(elf_header(0xB7))
    text = tmp_path / "page.html"
    text.write_text("<html>AccessDenied</html>")
    result = sourced(
        "install-lightsail-cli.sh",
        'elf_machine "$A"; elf_machine "$B"; elf_machine "$C"',
        A=sys.executable,
        B=str(crafted),
        C=str(text),
    )
    real = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
    assert result.stdout.split() == [real.get(platform.machine(), "other"), "aarch64", "not-elf"]


def test_lightsailctl_check_accepts_the_right_architecture(tmp_path: Path):
    binary = tmp_path / "lightsailctl"
    binary.write_bytes(elf_header(0xB7))
    assert check_binary(binary, "aarch64").returncode == 0


def test_lightsailctl_check_rejects_wrong_architecture_and_error_pages(tmp_path: Path):
    binary = tmp_path / "lightsailctl"
    binary.write_bytes(elf_header(0x3E))
    wrong = check_binary(binary, "aarch64")
    assert wrong.returncode != 0 and "expected an ELF executable for aarch64" in wrong.stderr
    binary.write_text("<Error><Code>AccessDenied</Code></Error>")
    page = check_binary(binary, "x86_64")
    assert page.returncode != 0 and "not-elf" in page.stderr


def test_a_pinned_checksum_is_enforced_in_either_case(tmp_path: Path):
    binary = tmp_path / "lightsailctl"
    binary.write_bytes(elf_header(0x3E))
    good = hashlib.sha256(binary.read_bytes()).hexdigest()
    snippet = 'check_pinned_sha256 "$BIN" "the download"'
    assert sourced("install-lightsail-cli.sh", snippet, BIN=str(binary), LIGHTSAILCTL_SHA256=good).returncode == 0
    upper = sourced("install-lightsail-cli.sh", snippet, BIN=str(binary), LIGHTSAILCTL_SHA256=good.upper())
    assert upper.returncode == 0  # as copied from anywhere
    bad = sourced("install-lightsail-cli.sh", snippet, BIN=str(binary), LIGHTSAILCTL_SHA256="0" * 64)
    assert bad.returncode != 0 and "not LIGHTSAILCTL_SHA256=" in bad.stderr


# ------------------------------------------------------- lightsailctl releases

ARCHIVE = "lightsailctl_1.0.8_linux_amd64.tar.gz"


def release_names(machine: str, version: str) -> subprocess.CompletedProcess:
    return sourced(
        "install-lightsail-cli.sh",
        'detect_arch && release_archive_name && release_checksums_name && release_url "$(release_archive_name)"',
        UNAME_M=machine,
        LIGHTSAILCTL_VERSION=version,
    )


@pytest.mark.parametrize(("machine", "version"), [("x86_64", "1.0.8"), ("aarch64", "v1.0.8")])
def test_release_assets_have_goreleasers_names(machine: str, version: str):
    result = release_names(machine, version)
    arch = {"x86_64": "amd64", "aarch64": "arm64"}[machine]
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        f"lightsailctl_1.0.8_linux_{arch}.tar.gz",
        "lightsailctl_1.0.8_checksums.txt",
        f"https://github.com/aws/lightsailctl/releases/download/v1.0.8/lightsailctl_1.0.8_linux_{arch}.tar.gz",
    ]


def test_a_malformed_release_version_is_refused():
    result = sourced("install-lightsail-cli.sh", "release_version", LIGHTSAILCTL_VERSION="latest; rm -rf /")
    assert result.returncode != 0 and "LIGHTSAILCTL_VERSION must look like 1.0.8" in result.stderr


def make_release(directory: Path, binary: bytes, name: str = ARCHIVE) -> tuple[Path, Path]:
    """A release archive holding `lightsailctl` (plus the files goreleaser adds) and its checksums."""
    directory.mkdir(parents=True, exist_ok=True)
    staging = directory / "staging"
    staging.mkdir()
    (staging / "lightsailctl").write_bytes(binary)
    (staging / "lightsailctl").chmod(0o755)
    (staging / "LICENSE").write_text("Apache-2.0\n")
    archive = directory / name
    with tarfile.open(archive, "w:gz") as tar:
        for member in ("lightsailctl", "LICENSE"):
            tar.add(staging / member, arcname=member)
    shutil.rmtree(staging)
    other = "lightsailctl_1.0.8_darwin_arm64.tar.gz"
    checksums = directory / "lightsailctl_1.0.8_checksums.txt"
    checksums.write_text(f"{'ab' * 32}  {other}\n{hashlib.sha256(archive.read_bytes()).hexdigest()}  {name}\n")
    return archive, checksums


def verify_release(archive: Path, checksums: Path, **env: str) -> subprocess.CompletedProcess:
    return sourced(
        "install-lightsail-cli.sh",
        'verify_release_archive "$A" "$C" "$N"',
        A=str(archive),
        C=str(checksums),
        N=ARCHIVE,
        **env,
    )


def test_a_release_archive_matching_its_checksums_line_passes(tmp_path: Path):
    archive, checksums = make_release(tmp_path, elf_header(0x3E))
    assert verify_release(archive, checksums).returncode == 0
    pinned = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert verify_release(archive, checksums, LIGHTSAILCTL_SHA256=pinned).returncode == 0


def test_a_tampered_archive_or_one_the_checksums_do_not_list_is_refused(tmp_path: Path):
    archive, checksums = make_release(tmp_path, elf_header(0x3E))
    with archive.open("ab") as f:
        f.write(b"tampered")
    tampered = verify_release(archive, checksums)
    assert tampered.returncode != 0 and "the release's checksums file says" in tampered.stderr
    checksums.write_text(f"{'ab' * 32}  lightsailctl_1.0.8_darwin_arm64.tar.gz\n")
    unlisted = verify_release(archive, checksums)
    assert unlisted.returncode != 0 and f"has no sha256 for {ARCHIVE}" in unlisted.stderr


def test_a_pin_that_disagrees_with_the_checksums_file_is_refused(tmp_path: Path):
    archive, checksums = make_release(tmp_path, elf_header(0x3E))
    result = verify_release(archive, checksums, LIGHTSAILCTL_SHA256="0" * 64)
    assert result.returncode != 0 and "not LIGHTSAILCTL_SHA256" in result.stderr


def test_the_binary_is_extracted_from_the_archive(tmp_path: Path):
    archive, _ = make_release(tmp_path / "release", b"\x7fELF binary bytes")
    out = tmp_path / "out"
    out.mkdir()
    result = sourced("install-lightsail-cli.sh", 'extract_lightsailctl "$A" "$D"', A=str(archive), D=str(out))
    assert result.returncode == 0, result.stderr
    assert (out / "lightsailctl").read_bytes() == b"\x7fELF binary bytes"
    assert sorted(p.name for p in out.iterdir()) == ["lightsailctl"]  # nothing else unpacked


# ------------------------------------------------------------------ idempotency

# Commands the installers may use; linked into a private bin dir so tests control PATH fully.
BASE_TOOLS = [
    "bash",
    "dirname",
    "uname",
    "od",
    "tr",
    "awk",
    "grep",
    "sed",
    "cat",
    "mktemp",
    "rm",
    "head",
    "env",
    "sha256sum",
    "install",
]
# Stand-ins that must never run on a no-op or an unsupported system.
INSTALL_COMMANDS = ["sudo", "apt-get", "dnf", "yum", "curl", "gpg", "unzip", "systemctl", "usermod"]


@pytest.fixture
def sandbox(tmp_path: Path):
    """A PATH with only BASE_TOOLS, recording stand-ins for INSTALL_COMMANDS, and a log."""
    bin_dir = tmp_path / "sbin"
    bin_dir.mkdir()
    for tool in BASE_TOOLS:
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    log = tmp_path / "install-calls.log"
    for name in INSTALL_COMMANDS:
        stub = bin_dir / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\nexit 1\n')
        stub.chmod(0o755)

    def installed(name: str, version_output: str) -> None:
        stub = bin_dir / name
        stub.write_text(f"#!/bin/sh\necho '{version_output}'\n")
        stub.chmod(0o755)

    def run(script: str, release: str = "ubuntu-22.04") -> subprocess.CompletedProcess:
        os_release = tmp_path / "os-release"
        os_release.write_text(OS_RELEASES[release])
        env = {
            "PATH": str(bin_dir),
            "HOME": str(tmp_path),
            "OS_RELEASE_FILE": str(os_release),
            "UNAME_M": "x86_64",
        }
        return subprocess.run(
            [str(bin_dir / "bash"), str(ROOT / script)], capture_output=True, text=True, env=env, timeout=60
        )

    def calls() -> list[str]:
        return log.read_text().splitlines() if log.exists() else []

    return dict(installed=installed, run=run, calls=calls)


@pytest.mark.parametrize(
    ("script", "command", "version"),
    [
        ("install-docker.sh", "docker", "Docker version 27.3.1, build ce12230"),
        ("install-aws-cli.sh", "aws", "aws-cli/2.17.20 Python/3.11.9 Linux/6.1.0 exe/x86_64.ubuntu.22"),
        ("install-lightsail-cli.sh", "lightsailctl", "v1.0.7"),
    ],
)
def test_second_run_changes_nothing(sandbox: dict, script: str, command: str, version: str):
    sandbox["installed"](command, version)
    result = sandbox["run"](script)
    assert result.returncode == 0, result.stderr
    assert "already installed" in result.stdout and "nothing to do" in result.stdout
    assert version in result.stdout
    assert sandbox["calls"]() == []


@pytest.mark.parametrize("script", INSTALLERS)
def test_unsupported_system_stops_before_installing(sandbox: dict, script: str):
    result = sandbox["run"](script, release="fedora-40")
    assert result.returncode != 0
    assert "unsupported distribution fedora" in result.stderr
    assert sandbox["calls"]() == []


def test_podmans_docker_is_not_taken_for_docker_engine(sandbox: dict):
    sandbox["installed"]("docker", "podman version 4.9.3")
    result = sandbox["run"]("install-docker.sh", release="fedora-40")
    assert "nothing to do" not in result.stdout
    assert "unsupported distribution fedora" in result.stderr


def test_aws_cli_v1_is_not_taken_for_v2(sandbox: dict):
    # v1 present: the script must go on to install v2 (here it stops at the unsupported
    # distro, which proves it did not claim "nothing to do").
    sandbox["installed"]("aws", "aws-cli/1.29.0 Python/3.9.16 Linux/6.1.0 botocore/1.31.0")
    result = sandbox["run"]("install-aws-cli.sh", release="fedora-40")
    assert "nothing to do" not in result.stdout
    assert "found aws-cli/1.29.0" in result.stderr


# ------------------------------------------------------------------ dry runs

# Stand-ins placed first on PATH: they log their arguments and act just enough for the installer
# to go on. $STAND holds the log, the files "downloads" come from, and what dpkg "has".
STAND_INS = {
    "curl": """out=; url=
while [ $# -gt 0 ]; do case $1 in -o) out=$2; shift ;; https://*) url=$1 ;; esac; shift; done
src="$STAND/downloads/${url##*/}"
[ -f "$src" ] || { echo "curl: (22) 404 $url" >&2; exit 22; }
cp "$src" "$out"
""",
    "gpg": 'echo "fpr:::::::::${FAKE_KEY_FPR}:"\n',
    "dpkg-query": 'cat "$STAND/dpkg-status" 2>/dev/null\nexit 1  # as dpkg-query does when some package is unknown\n',
    # Docker Engine's CLI once a package manager has "installed" it; before that, not there.
    "docker": '[ -f "$STAND/docker-installed" ] || exit 127\necho "Docker version 29.1.2, build 0123456"\n',
    "apt-get": 'case " $* " in *" install "*docker-ce*) touch "$STAND/docker-installed" ;; esac\n',
    "sudo": '[ "$1" = -E ] && shift\nexec "$@"\n',
    "systemctl": "",
    "usermod": "",
    "dnf": 'case " $* " in *" install "*docker*) touch "$STAND/docker-installed" ;; esac\n',
}


@pytest.fixture
def stand(tmp_path: Path):
    """Stand-ins for the commands that install or download, and a way to run an installer."""
    root = tmp_path / "stand"
    (root / "bin").mkdir(parents=True)
    (root / "downloads").mkdir()
    for name, body in STAND_INS.items():
        script = root / "bin" / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> "$STAND/calls.log"\n{body}')
        script.chmod(0o755)

    def run(script: str, release: str = "ubuntu-24.04", machine: str = "x86_64", **env: str):
        os_release = tmp_path / "os-release"
        os_release.write_text(OS_RELEASES[release])
        full_env = {k: v for k, v in os.environ.items() if k not in ("SUDO_USER", "LIGHTSAILCTL_VERSION",
                                                                     "LIGHTSAILCTL_SHA256")}
        full_env.update(PATH=f"{root / 'bin'}{os.pathsep}{os.environ['PATH']}", STAND=str(root),
                        OS_RELEASE_FILE=str(os_release), UNAME_M=machine, **env)
        return subprocess.run(["bash", str(ROOT / script)], capture_output=True, text=True, env=full_env,
                              timeout=60)

    def calls() -> list[str]:
        log = root / "calls.log"
        return log.read_text().splitlines() if log.exists() else []

    return dict(root=root, run=run, calls=calls)


def test_docker_install_removes_conflicts_then_writes_docker_sources(stand: dict, tmp_path: Path):
    apt = tmp_path / "etc-apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list.d" / "docker.list").write_text("deb [signed-by=/old.gpg] https://download.docker.com/x jammy stable\n")
    (stand["root"] / "downloads" / "gpg").write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\n")
    (stand["root"] / "dpkg-status").write_text("ii  docker.io\nrc  runc\nii  containerd\n")
    result = stand["run"]("install-docker.sh", APT_ETC_DIR=str(apt), FAKE_KEY_FPR="9DC858229FC7DD38854AE2D88D81803C0EBFCD88")
    assert result.returncode == 0, result.stdout + result.stderr
    calls = [c for c in stand["calls"]() if not c.startswith(("gpg", "dpkg-query", "sudo", "docker"))]
    assert calls[0] == "curl -fsSL --retry 3 https://download.docker.com/linux/ubuntu/gpg -o " + calls[0].split()[-1]
    remove = calls.index("apt-get remove -y -q docker.io containerd")  # installed ones only (not runc: "rc")
    install = calls.index("apt-get install -y -q --no-install-recommends docker-ce docker-ce-cli containerd.io "
                          "docker-buildx-plugin docker-compose-plugin")
    assert remove < calls.index("apt-get update -q") < install
    assert (apt / "sources.list.d" / "docker.sources").read_text() == docker_sources(
        "ubuntu", "noble", "amd64", keyring=str(apt / "keyrings" / "docker.asc"))
    assert not (apt / "sources.list.d" / "docker.list").exists()  # no second copy of the repository
    assert (apt / "keyrings" / "docker.asc").read_text().startswith("-----BEGIN PGP")
    assert "installed: Docker version 29.1.2" in result.stdout


def test_docker_install_stops_on_a_key_with_another_fingerprint(stand: dict, tmp_path: Path):
    (stand["root"] / "downloads" / "gpg").write_text("not docker's key\n")
    result = stand["run"]("install-docker.sh", APT_ETC_DIR=str(tmp_path / "apt"), FAKE_KEY_FPR="0" * 40)
    assert result.returncode != 0 and "did not match the published fingerprint" in result.stderr
    assert not any(c.startswith("apt-get") for c in stand["calls"]())
    assert not (tmp_path / "apt" / "sources.list.d").exists()


def test_docker_install_on_amazon_linux_2023_uses_dnf(stand: dict):
    result = stand["run"]("install-docker.sh", release="amzn-2023")
    assert "dnf install -y -q docker" in stand["calls"](), result.stderr
    assert not any(c.startswith(("apt-get", "curl")) for c in stand["calls"]())


def host_binary() -> bytes:
    """A real executable for this CPU (its --version works), to stand in for lightsailctl."""
    return Path(shutil.which("true")).read_bytes()


HOST_MACHINE = {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine(), platform.machine())
HOST_DEB_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(HOST_MACHINE, HOST_MACHINE)


def test_lightsailctl_release_install_verifies_then_installs_the_binary(stand: dict, tmp_path: Path):
    name = f"lightsailctl_1.0.8_linux_{HOST_DEB_ARCH}.tar.gz"
    make_release(stand["root"] / "downloads", host_binary(), name=name)
    dest = tmp_path / "bin" / "lightsailctl"
    dest.parent.mkdir()
    result = stand["run"]("install-lightsail-cli.sh", machine=HOST_MACHINE, LIGHTSAILCTL_VERSION="1.0.8",
                          LIGHTSAILCTL_DEST=str(dest))
    assert result.returncode == 0, result.stdout + result.stderr
    downloads = [c.split()[-3] for c in stand["calls"]() if c.startswith("curl")]
    assert downloads == [f"https://github.com/aws/lightsailctl/releases/download/v1.0.8/{name}",
                         "https://github.com/aws/lightsailctl/releases/download/v1.0.8/lightsailctl_1.0.8_checksums.txt"]
    assert f"sha256 of {name} matches lightsailctl_1.0.8_checksums.txt" in result.stderr
    assert dest.read_bytes() == host_binary() and os.access(dest, os.X_OK)


def test_lightsailctl_release_install_refuses_an_archive_the_checksums_disown(stand: dict, tmp_path: Path):
    name = f"lightsailctl_1.0.8_linux_{HOST_DEB_ARCH}.tar.gz"
    archive, _ = make_release(stand["root"] / "downloads", host_binary(), name=name)
    with archive.open("ab") as f:
        f.write(b"x")  # changed after the checksums were made
    dest = tmp_path / "lightsailctl"
    result = stand["run"]("install-lightsail-cli.sh", machine=HOST_MACHINE, LIGHTSAILCTL_VERSION="1.0.8",
                          LIGHTSAILCTL_DEST=str(dest))
    assert result.returncode != 0 and f"not installing {name}" in result.stderr
    assert not dest.exists()


def test_lightsailctl_install_with_a_malformed_version_downloads_nothing(stand: dict, tmp_path: Path):
    result = stand["run"]("install-lightsail-cli.sh", LIGHTSAILCTL_VERSION="1.0", LIGHTSAILCTL_DEST=str(tmp_path / "x"))
    assert result.returncode != 0 and "must look like 1.0.8 (got '1.0')" in result.stderr
    assert not any(c.startswith("curl") for c in stand["calls"]())


def test_lightsailctl_latest_install_takes_awss_binary(stand: dict, tmp_path: Path):
    (stand["root"] / "downloads" / "lightsailctl").write_bytes(host_binary())
    dest = tmp_path / "lightsailctl"
    result = stand["run"]("install-lightsail-cli.sh", machine=HOST_MACHINE, LIGHTSAILCTL_DEST=str(dest))
    assert result.returncode == 0, result.stdout + result.stderr
    (download,) = [c for c in stand["calls"]() if c.startswith("curl")]
    assert f"https://s3.us-west-2.amazonaws.com/lightsailctl/latest/linux-{HOST_DEB_ARCH}/lightsailctl" in download
    assert dest.read_bytes() == host_binary()
