"""The host's pip settings as a build secret, and the apt mirror the base image comes from."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferry.packaging.base_image import DEFAULT_MIRROR, apt_mirror, rootfs_command
from ferry.packaging.pipconfig import CONTAINER_CA, host_pip_settings, pip_config_file


def test_private_index_goes_into_the_secret_and_its_token_is_masked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    index = tmp_path / "mirror" / "simple"
    index.mkdir(parents=True)
    url = "https://ferry:tok-123@pkgs.example.com/simple/"
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", f"{url} file://{index}")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    settings = host_pip_settings()
    assert settings.options["extra-index-url"] == f"{url} file://{index}"
    assert "tok-123" in settings.secrets
    mounts = dict(settings.mounts)
    assert mounts[str(wheels)] == str(wheels)
    assert mounts[str(index.parent)] == str(index.parent)  # ../files links resolve inside
    if Path("/etc/ssl/certs/ca-certificates.crt").is_file():
        assert settings.options["cert"] == CONTAINER_CA
    with pip_config_file(settings) as path:
        text = path.read_text()
        assert path.stat().st_mode & 0o777 == 0o600
        assert text.startswith("[global]\n")
        assert f"extra-index-url = {url} file://{index}" in text
    assert not path.exists()


def test_apt_mirror_from_one_line_and_deb822_sources(tmp_path: Path) -> None:
    one_line = tmp_path / "sources.list"
    one_line.write_text("# comment\ndeb [arch=amd64] http://mirror.example/debian/ bookworm main\n")
    assert apt_mirror((one_line,)) == "http://mirror.example/debian"
    folder = tmp_path / "sources.list.d"
    folder.mkdir()
    (folder / "debian.sources").write_text(
        "Types: deb\nURIs: http://security.example/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n\n"
        "Types: deb\nURIs: http://deb.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\n"
    )
    assert apt_mirror((tmp_path / "missing.list", folder)) == "http://deb.example/debian"
    assert apt_mirror((tmp_path / "missing.list",)) == DEFAULT_MIRROR


def test_rootfs_command_is_minimal() -> None:
    argv = rootfs_command("http://deb.example/debian")
    if argv[0] == "mmdebstrap":
        assert "--variant=minbase" in argv
        assert "--include=python3,python3-venv,ca-certificates,passwd" in argv
        assert "--dpkgopt=path-exclude=/usr/share/doc/*" in argv
        assert argv[-3:] == ["bookworm", "-", "http://deb.example/debian"]


def test_without_mounts_keeps_only_what_a_docker_build_can_reach(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    index = tmp_path / "mirror" / "simple"
    index.mkdir(parents=True)
    url = "https://ferry:tok-123@pkgs.example.com/simple/"
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", f"{url} file://{index}")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    settings = host_pip_settings().without_mounts()
    assert settings.mounts == ()
    assert settings.options["extra-index-url"] == url
    assert "find-links" not in settings.options
    assert settings.options.get("cert") != CONTAINER_CA
    assert "tok-123" in settings.secrets
