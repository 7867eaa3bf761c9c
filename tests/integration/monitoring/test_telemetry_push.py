"""Push mode: bundles wait in the spool while our server is unreachable, then all go at the
next push; a bundle our server refuses is set aside, not retried forever."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import free_port
from tests.integration.control.conftest import StartControl
from tests.integration.monitoring.conftest import get, post
from tests.integration.monitoring.test_telemetry_cli import KEY, ferry

pytestmark = pytest.mark.integration


def test_store_and_forward(start_control: StartControl, tmp_path: Path) -> None:
    site_home, spool = tmp_path / "site", tmp_path / "spool"
    offline = f"http://127.0.0.1:{free_port()}"
    for attempt in (1, 2):
        pushed = ferry(
            site_home,
            "telemetry",
            "push",
            "--to",
            offline,
            "--spool",
            str(spool),
            "--site",
            "harbor-7",
        )
        assert pushed.returncode == 0, pushed
        assert f"kept {attempt} bundle(s)" in pushed.stdout
    assert len(list(spool.glob("*.tgz"))) == 2

    # a damaged bundle in the spool (the oldest name, so it goes first)
    first = sorted(spool.glob("*.tgz"))[0]
    damaged = bytearray(first.read_bytes())
    damaged[-20] ^= 0x10
    (spool / "00000000T000000Z.tgz").write_bytes(bytes(damaged))

    ours = start_control(FERRY_TELEMETRY_KEY=KEY)
    pushed = ferry(
        site_home,
        "telemetry",
        "push",
        "--to",
        ours.url,
        "--spool",
        str(spool),
        "--site",
        "harbor-7",
    )
    assert pushed.returncode == 0, pushed
    assert "sent 3 bundle(s)" in pushed.stdout
    assert list(spool.glob("*.tgz")) == []
    assert [p.name for p in (spool / "rejected").iterdir()] == ["00000000T000000Z.tgz"]

    [site] = get(f"{ours.url}/api/v1/telemetry/sites").json()["items"]
    assert site["site"] == "harbor-7"
    assert site["bundles"] == 3
    assert site["summary"]["versions"] == 0

    refused = post(f"{ours.url}/api/v1/telemetry", content=b"not a bundle")
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "telemetry_rejected"
    nothing_new = ferry(
        site_home, "telemetry", "push", "--to", ours.url, "--spool", str(spool), "--no-export"
    )
    assert "sent 0 bundle(s)" in nothing_new.stdout
