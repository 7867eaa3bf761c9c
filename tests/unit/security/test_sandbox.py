"""The sandbox of uploaded code: no secret, no network, no inherited descriptor, bounded."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from ferry.config.settings import Settings
from ferry.errors import SandboxUnavailable
from ferry.security.sandbox import Launch, Sandbox, exit_signal

SECRETS = {
    "FERRY_JWT_SECRET": "jwt-secret-value",
    "FERRY_AUTH_SECRET": "auth-secret-value-0123456789abcdef",
    "FERRY_DATABASE_URL": "postgresql://ferry:hunter2@127.0.0.1/ferry",
    "AWS_SECRET_ACCESS_KEY": "aws-secret",
}


def run_code(launch: Launch, code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``launch`` (of ``python -m x``) running ``code`` instead of the module."""
    argv = [*launch.argv[:-2], "-c", code]
    return subprocess.run(  # noqa: S603 - the sandbox's own argv
        argv, env=launch.env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "auth.secret").write_text("s" * 64)
    monkeypatch.setenv("FERRY_HOME", str(home))
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    return home


def test_child_sees_no_secret_variable_or_file(home: Path) -> None:
    sandbox = Sandbox.from_settings(Settings())
    code = (
        "import os, pathlib\n"
        f"print(sorted(k for k in os.environ if k.startswith(('FERRY', 'AWS'))))\n"
        f"print(pathlib.Path({str(home / 'auth.secret')!r}).exists())\n"
        "print(os.environ['HOME'])\n"
    )
    done = run_code(sandbox.python("x"), code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]", "False", "/tmp"]
    assert not any(value in done.stdout for value in SECRETS.values())


def test_secret_home_inside_a_bound_folder_is_covered(home: Path) -> None:
    # the home sits under a folder the child may read (an import path): it is still hidden
    sandbox = Sandbox(
        mode="bwrap",
        limits=Sandbox.from_settings(Settings()).limits,
        hidden=(home,),
        python_paths=(*Sandbox.from_settings(Settings()).python_paths, str(home.parent)),
    )
    done = run_code(sandbox.python("x"), f"import os; print(os.listdir({str(home)!r}))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_child_cannot_connect_to_a_listening_port(home: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        code = (
            "import socket\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=2); print('connected')\n"
            "except OSError as exc:\n"
            "    print('refused', type(exc).__name__)\n"
            "s = socket.socket(); s.bind(('127.0.0.1', " + str(port) + ")); s.listen()\n"
            "print('bound its own')\n"
        )
        done = run_code(Sandbox.from_settings(Settings()).python("x"), code)
        server.settimeout(0.2)
        with pytest.raises(TimeoutError):
            server.accept()  # nothing reached the test's port
    assert done.returncode == 0, done.stderr
    # the port the test holds was free in the child's own network namespace: a model that
    # listens can neither take the server's port nor be reached
    assert done.stdout.split() == ["refused", "ConnectionRefusedError", "bound", "its", "own"]


def test_network_setting_lets_it_connect(home: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        sandbox = Sandbox.from_settings(Settings(sandbox_network=True))
        code = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2)"
        assert run_code(sandbox.python("x"), code).returncode == 0


def test_memory_limit_stops_a_large_allocation(home: Path) -> None:
    sandbox = Sandbox.from_settings(Settings(sandbox_memory_mb=1024))
    code = "try:\n    bytearray(3_000_000_000)\nexcept MemoryError:\n    print('MemoryError')\n"
    done = run_code(sandbox.python("x"), code)
    assert done.stdout.strip() == "MemoryError", done.stderr


def test_cpu_and_file_limits(home: Path, tmp_path: Path) -> None:
    sandbox = Sandbox.from_settings(Settings(sandbox_max_file_mb=1), cpu_seconds=1)
    started = time.monotonic()
    assert exit_signal(run_code(sandbox.python("x"), "while True: pass").returncode) == 24
    assert time.monotonic() - started < 10
    out = tmp_path / "out"
    out.mkdir()
    code = f"open({str(out / 'big')!r}, 'wb').write(b'0' * 2_000_000)"
    done = run_code(sandbox.python("x", writable=[out]), code)
    assert "File too large" in done.stderr  # Python ignores SIGXFSZ: the write fails (EFBIG)
    assert (out / "big").stat().st_size <= 1024 * 1024


def test_no_descriptor_is_inherited(home: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.set_inheritable(True)  # as the supervisor's shared socket is
        launch = Sandbox.from_settings(Settings()).python("x")
        argv = [*launch.argv[:-2], "-c", "import os; print(sorted(os.listdir('/proc/self/fd')))"]
        done = subprocess.run(  # noqa: S603
            argv, env=launch.env, capture_output=True, text=True, check=False, close_fds=True
        )
    assert done.stdout.strip() == "['0', '1', '2', '3']"  # 3: the listing's own handle


def test_child_dies_with_its_parent(home: Path) -> None:
    token = uuid.uuid4().hex
    launch = Sandbox.from_settings(Settings()).python("x")
    argv = [*launch.argv[:-2], "-c", f"import time; time.sleep(60)  # {token}"]
    parent = subprocess.Popen(  # noqa: S603 - a parent that starts the sandbox, then is killed
        [
            sys.executable,
            "-c",
            f"import subprocess, time; subprocess.Popen({argv!r}, env={launch.env!r}); "
            "time.sleep(60)",
        ]
    )
    try:
        deadline = time.monotonic() + 20
        while not _running(token) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _running(token)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 2
        while _running(token) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(token)
    finally:
        parent.kill()


def _running(token: str) -> bool:
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if token.encode() in cmdline and b"time.sleep" in cmdline and b"bwrap" not in cmdline:
                return True
    return False


def test_missing_bwrap_fails_closed(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    (empty / "prlimit").symlink_to("/usr/bin/prlimit")
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(SandboxUnavailable, match="bubblewrap"):
        Sandbox.from_settings(Settings()).python("x")
    off = Sandbox.from_settings(Settings(sandbox="off"))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    done = run_code(off.python("x"), "import os; print('FERRY_JWT_SECRET' in os.environ)")
    assert done.stdout.strip() == "False"  # off: no namespaces, still a scrubbed environment


def test_secret_paths_name_every_local_store(tmp_path: Path) -> None:
    from ferry.security.sandbox import secret_paths

    for name in ("home", "db", "blobs", "jwks.json"):
        (tmp_path / name).mkdir() if "." not in name else (tmp_path / name).write_text("{}")
    settings = Settings(
        home=tmp_path / "home",
        database_url=f"sqlite:///{tmp_path / 'db'}",
        artifacts=f"file://{tmp_path / 'blobs'}",
        jwt_jwks=str(tmp_path / "jwks.json"),
    )
    found = set(secret_paths(settings))
    assert {tmp_path / n for n in ("home", "db", "blobs", "jwks.json")} <= found


@pytest.mark.skipif(os.geteuid() != 0, reason="a non-root server keeps its uid (user namespace)")
def test_root_server_runs_code_as_nobody(home: Path, tmp_path: Path) -> None:
    shown = tmp_path / "shown"
    shown.mkdir()
    (shown / "private.key").write_text("key")
    (shown / "private.key").chmod(0o600)  # a root-only file inside a folder the child sees
    sandbox = Sandbox.from_settings(Settings())
    code = (
        "import os\n"
        "print(os.getuid(), os.getgid(), os.getgroups())\n"
        "try:\n"
        f"    open({str(shown / 'private.key')!r}).read(); print('read')\n"
        "except PermissionError:\n"
        "    print('refused')\n"
        "open('/tmp/scratch', 'w').write('x'); print('tmp ok')\n"
    )
    done = run_code(sandbox.python("x", readable=[shown]), code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["65534 65534 []", "refused", "tmp ok"]


def test_process_limit_stops_a_thread_bomb(home: Path) -> None:
    import dataclasses

    base = Sandbox.from_settings(Settings())
    sandbox = dataclasses.replace(base, limits=dataclasses.replace(base.limits, processes=64))
    code = (
        "import threading, time\n"
        "started = 0\n"
        "try:\n"
        "    for _ in range(400):\n"
        "        threading.Thread(target=time.sleep, args=(2,), daemon=True).start()\n"
        "        started += 1\n"
        "except RuntimeError:\n"
        "    pass\n"
        "print(started)\n"
    )
    done = run_code(sandbox.python("x"), code)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) < 64
