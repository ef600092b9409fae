"""The install-*.sh scripts: distro/arch detection on stand-in /etc/os-release files and
`uname -m` outputs, the download URLs each platform gets, the signature and binary checks,
and idempotency (an installed tool means "nothing to do" and no installer runs).

The real installs need root and the internet; nothing here downloads or installs anything.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
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
        ("amzn-2", "x86_64", dict(ID="amzn", FAMILY="amzn", CODENAME="", PKG="yum", ARCH="x86_64")),
        ("amzn-2023", "aarch64", dict(ID="amzn", FAMILY="amzn", VERSION="2023", PKG="dnf", ARCH="aarch64")),
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


@pytest.mark.parametrize(
    ("release", "machine", "line"),
    [
        (
            "ubuntu-22.04",
            "x86_64",
            "deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/ubuntu jammy stable",
        ),
        (
            "debian-12",
            "aarch64",
            "deb [arch=arm64 signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/debian bookworm stable",
        ),
    ],
)
def test_docker_apt_source_per_platform(tmp_path: Path, release: str, machine: str, line: str):
    os_release = tmp_path / "os-release"
    os_release.write_text(OS_RELEASES[release])
    result = sourced(
        "install-docker.sh",
        "detect_platform && docker_apt_source",
        OS_RELEASE_FILE=str(os_release),
        UNAME_M=machine,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == line


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


def test_lightsailctl_check_enforces_a_pinned_checksum(tmp_path: Path):
    binary = tmp_path / "lightsailctl"
    binary.write_bytes(elf_header(0x3E))
    good = subprocess.run(["sha256sum", str(binary)], capture_output=True, text=True).stdout.split()[0]
    assert check_binary(binary, "x86_64", LIGHTSAILCTL_SHA256=good).returncode == 0
    bad = check_binary(binary, "x86_64", LIGHTSAILCTL_SHA256="0" * 64)
    assert bad.returncode != 0 and "does not match" in bad.stderr


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


def test_aws_cli_v1_is_not_taken_for_v2(sandbox: dict):
    # v1 present: the script must go on to install v2 (here it stops at the unsupported
    # distro, which proves it did not claim "nothing to do").
    sandbox["installed"]("aws", "aws-cli/1.29.0 Python/3.9.16 Linux/6.1.0 botocore/1.31.0")
    result = sandbox["run"]("install-aws-cli.sh", release="fedora-40")
    assert "nothing to do" not in result.stdout
    assert "found aws-cli/1.29.0" in result.stderr
