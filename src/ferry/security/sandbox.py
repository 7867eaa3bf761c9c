"""The one launcher for processes that run uploaded code: the inspector and code models.

Uploaded code (a ``predictor.py``, an MLflow ``loader_module``, a trusted pickle) must never
run where a server secret is within reach. ``Sandbox.python`` wraps a Python command line so
the child:

- sees a scrubbed environment: an allowlist (``PATH``, ``LANG``, a private ``HOME`` and
  ``TMPDIR``, the ``PYTHONPATH`` that imports Ferry and its libraries, one-thread BLAS), so no
  ``FERRY_*`` secret, no ``AWS_*`` credential and no database URL;
- sees only an allowlisted file tree (bubblewrap, ``--unshare-all``): ``/usr``, a few ``/etc``
  files, the Python prefixes and ``sys.path`` read-only, a private ``/tmp``, and the folders the
  caller names (the bundle); ``FERRY_HOME`` (``auth.secret``, the SQLite database, the artifact
  store) and any other secret path are covered even when they sit inside a bound folder;
- has its own network namespace (only a loopback of its own: nothing connects out, and what it
  listens on nobody reaches) unless ``FERRY_SANDBOX_NETWORK=true``; its own PID and IPC
  namespaces, so it cannot see or signal the server's processes or read their environment;
- inherits no descriptor but its own pipes (``close_fds``; the launcher passes none), so never
  the listening socket;
- runs under rlimits set by ``prlimit`` before anything starts: address space (the 31-byte
  ``bytearray(3000000000)`` pickle fails with MemoryError, not by taking the host's memory),
  CPU time, file size, open files, processes (threads included), no core dumps;
- dies with its parent (``--die-with-parent``, a parent-death signal): a SIGKILLed server
  leaves no inspector or model process behind. The signal fires when the *thread* that started
  it exits, so callers start sandboxes from a thread that lives as long as they need the child.

Why bubblewrap: it is one small Debian package (``bubblewrap``), needs no daemon and no root
(user namespaces), adds about 10 ms to a start (13 ms for ``bwrap true`` against 2 ms for
``true`` here), and gives mounts, network and PIDs in one call; a container runtime would need
a daemon or an image per model, and seccomp or a separate uid alone hide neither files nor the
environment. A separate uid complements it: a server running as root starts bubblewrap without
a user namespace and ``setpriv`` drops the code to ``nobody`` (65534), so a root-only file is
unreadable even where a bound folder shows it, and RLIMIT_NPROC binds (the kernel exempts root
from it, even inside a user namespace); a folder the code may write is handed to that user.

Missing ``bwrap`` fails closed (``SandboxUnavailable``): code does not run unconfined unless
``FERRY_SANDBOX=off`` says so, which keeps the scrubbed environment and the rlimits and drops
the namespaces.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ferry.config.settings import Settings
from ferry.errors import SandboxUnavailable

log = logging.getLogger(__name__)

MB = 1024 * 1024
# the /etc files a Python process and its libraries read; /etc/ssl/private and the rest of /etc
# (TLS keys, credentials of other tools) stay out
ETC_FILES = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",  # Debian's libblas/liblapack symlinks go through here
    "localtime",
    "passwd",
    "group",
    "nsswitch.conf",
    "hosts",
    "ssl/certs",
    "mime.types",
)
TOP_LEVEL = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")  # symlinks into /usr on Debian
PASSED_VARIABLES = ("LANG", "LC_ALL", "LC_CTYPE", "TZ")
SANDBOX_TMP = "/tmp"  # noqa: S108 (a private tmpfs inside the sandbox)
NOBODY = 65534


@dataclass(frozen=True, slots=True)
class Limits:
    memory_bytes: int
    cpu_seconds: int
    file_bytes: int
    open_files: int = 256
    # threads count too (OpenBLAS, onnxruntime pools), and RLIMIT_NPROC counts every process
    # of the user: nobody's across all sandboxes for a root server, the server user's otherwise
    processes: int = 1024

    def prlimit_args(self) -> list[str]:
        return [
            f"--as={self.memory_bytes}",
            # soft:hard, so the child first gets SIGXCPU (named in its error), then SIGKILL
            f"--cpu={self.cpu_seconds}:{self.cpu_seconds + 5}",
            f"--fsize={self.file_bytes}",
            f"--nofile={self.open_files}",
            f"--nproc={self.processes}",
            "--core=0",
        ]


@dataclass(frozen=True, slots=True)
class Launch:
    """What to start: ``argv`` with exactly ``env`` (nothing else from the parent)."""

    argv: list[str]
    env: dict[str, str]


@dataclass(frozen=True, slots=True)
class Sandbox:
    mode: Literal["bwrap", "off"]
    limits: Limits
    network: bool = False
    hidden: tuple[Path, ...] = ()  # never visible inside, even under a bound folder
    uid: int | None = None  # a root server runs sandboxed code as this user (nobody)
    python_paths: tuple[str, ...] = field(default_factory=lambda: _python_paths())

    @classmethod
    def from_settings(cls, settings: Settings, *, cpu_seconds: int | None = None) -> Sandbox:
        """The sandbox ``FERRY_SANDBOX*`` describe; ``cpu_seconds`` overrides the CPU limit
        (the inspector's deadline)."""
        return cls(
            mode=settings.sandbox,
            network=settings.sandbox_network,
            limits=Limits(
                memory_bytes=settings.sandbox_memory_mb * MB,
                cpu_seconds=cpu_seconds or settings.sandbox_cpu_seconds,
                file_bytes=settings.sandbox_max_file_mb * MB,
            ),
            hidden=tuple(secret_paths(settings)),
            uid=NOBODY if os.geteuid() == 0 else None,
        )

    def python(
        self,
        module: str,
        *args: str,
        writable: Sequence[Path] = (),
        readable: Sequence[Path] = (),
        cwd: Path | None = None,
    ) -> Launch:
        """``python -m module args`` confined; ``writable``/``readable`` folders are the only
        ones of the server's visible inside (same paths); ``cwd`` must be one of them."""
        inner = [sys.executable, "-s", "-m", module, *args]
        env = self.environment()
        prlimit = _tool("prlimit", "util-linux")
        if self.mode == "off":
            log.warning("running %s without a sandbox (FERRY_SANDBOX=off)", module)
            setpriv = _tool("setpriv", "util-linux")
            return Launch(
                [
                    prlimit,
                    *self.limits.prlimit_args(),
                    "--",
                    setpriv,
                    "--pdeathsig",
                    "KILL",
                    *inner,
                ],
                env,
            )
        bwrap = _tool("bwrap", "bubblewrap")
        argv = [prlimit, *self.limits.prlimit_args(), "--", bwrap, *self._bwrap_args()]
        argv += self._mounts(writable, readable)
        argv += ["--clearenv"]
        for key, value in env.items():
            argv += ["--setenv", key, value]
        argv += ["--chdir", str(cwd or "/")]
        if self.uid is not None:
            setpriv = _tool("setpriv", "util-linux")
            user = [f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups"]
            inner = [setpriv, *user, "--", *inner]
        return Launch([*argv, "--", *inner], env)

    def environment(self) -> dict[str, str]:
        """The child's whole environment: nothing of the server's but locale and time zone."""
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": SANDBOX_TMP,
            "TMPDIR": SANDBOX_TMP,
            "PYTHONPATH": os.pathsep.join(self.python_paths),
            "PYTHONNOUSERSITE": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            # one BLAS/OpenMP thread: each extra one reserves address space (the memory limit
            # is on address space) and counts against the process limit
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "LANG": "C.UTF-8",
        }
        env.update({k: os.environ[k] for k in PASSED_VARIABLES if k in os.environ})
        return env

    def _bwrap_args(self) -> list[str]:
        if self.uid is None:  # a user namespace: no root needed
            args = ["--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
            return [*args, "--share-net"] if self.network else args
        # a root server: namespaces without a user one, then setpriv drops to ``uid`` (the
        # only capabilities kept are the two it needs for that)
        args = ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        args += [] if self.network else ["--unshare-net"]
        args += ["--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        return [*args, "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]

    def _mounts(self, writable: Sequence[Path], readable: Sequence[Path]) -> list[str]:
        layout = _Layout()
        layout.add("--perms", "1777", "--tmpfs", SANDBOX_TMP)
        shm = "/dev/shm"  # noqa: S108 (the sandbox's own, for joblib's semaphores)
        layout.add("--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", shm)
        layout.bind("--ro-bind", Path("/usr"))
        for name in TOP_LEVEL:
            top = Path("/") / name
            if top.is_symlink():
                layout.add("--symlink", os.readlink(top), str(top))
            elif top.is_dir():
                layout.bind("--ro-bind", top)
        for name in ETC_FILES:
            if (Path("/etc") / name).exists():
                layout.bind("--ro-bind", Path("/etc") / name)
        bound = _outermost(_python_roots(self.python_paths))
        for root in bound:
            layout.bind("--ro-bind", root)
        for secret in self.hidden:  # cover what a bound folder would otherwise show
            if any(_inside(secret, root) for root in (*bound, Path("/usr"))):
                layout.cover(secret)
        for folder in readable:
            layout.bind("--ro-bind", folder)
        for folder in writable:
            if self.uid is not None:  # the sandbox's user writes there; group root lets
                os.chown(folder, self.uid, 0)  # bubblewrap (root, no capabilities) chdir into it
                folder.chmod(0o770)
            layout.bind("--bind", folder)
        return layout.args


class _Layout:
    """bubblewrap mount arguments, with every folder it has to create made 0755: bubblewrap
    makes them 0700 as root, and the sandbox's own user could not walk through them."""

    def __init__(self) -> None:
        self.args: list[str] = []
        self._made: set[Path] = {Path("/")}
        self._bound: list[Path] = []  # host folders shown as they are (their subfolders exist)

    def add(self, *args: str) -> None:
        self.args += args

    def bind(self, option: str, path: Path) -> None:
        self._parents(path)
        self.args += [option, str(path), str(path)]
        self._bound.append(path)

    def cover(self, path: Path) -> None:
        if path.is_dir():
            self.args += ["--tmpfs", str(path)]
            self._bound = [b for b in self._bound if not _inside(b, path)]
            self._made = {m for m in self._made if not _inside(m, path) or m == path}
            self._made.add(path)
        else:
            self.args += ["--ro-bind", "/dev/null", str(path)]

    def _parents(self, path: Path) -> None:
        for parent in reversed(path.parents):
            if parent in self._made or self._shown(parent):
                continue
            self.args += ["--perms", "0755", "--dir", str(parent)]
            self._made.add(parent)

    def _shown(self, path: Path) -> bool:
        """True when ``path`` exists inside: under a bound host folder and not covered."""
        return any(_inside(path, b) for b in self._bound) and path.exists()


def close_inherited() -> None:
    """In a sandboxed child, first thing: close every descriptor but stdin/stdout/stderr, in
    case a launcher leaked one (uvloop's spawn ignores close_fds; bubblewrap passes all on)."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    os.closerange(3, soft if soft != resource.RLIM_INFINITY else 65536)


def exit_signal(code: int) -> int | None:
    """The signal that ended a sandboxed process: Popen's negative code, or bubblewrap's
    128 + N (its PID 1 reports its child's death that way)."""
    if code < 0:
        return -code
    return code - 128 if 128 < code < 128 + 65 else None


def secret_paths(settings: Settings) -> list[Path]:
    """Files and folders holding the server's secrets: the home (auth.secret, the SQLite
    database, the local artifact store), a SQLite database or artifact folder elsewhere, a
    local JWKS, and cloud credential files."""
    paths = [settings.home.expanduser().resolve()]
    if settings.jwt_jwks and not settings.jwt_jwks.startswith(("http://", "https://")):
        paths.append(Path(settings.jwt_jwks).expanduser().resolve())
    if settings.database_url and settings.database_url.startswith("sqlite:///"):
        paths.append(Path(settings.database_url.removeprefix("sqlite:///")).resolve())
    if settings.artifacts and "://" not in settings.artifacts.removeprefix("file://"):
        paths.append(Path(settings.artifacts.removeprefix("file://")).expanduser().resolve())
    home = Path.home()
    paths += [home / ".aws", home / ".config" / "gcloud", home / ".ssh", home / ".netrc"]
    return [p for p in paths if p.exists()]


def _tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise SandboxUnavailable(
            f"uploaded code runs only in a sandbox, and {name} is not installed on this "
            f"server: install the Debian package {package} (or set FERRY_SANDBOX=off to run "
            "it without one, knowing it can then read what the server can)",
            tool=name,
            setting="FERRY_SANDBOX",
        )
    return found


def _python_paths() -> tuple[str, ...]:
    """The parent's import path, so the child imports the same Ferry and libraries."""
    return tuple(p for p in sys.path if p and Path(p).exists())


def _python_roots(paths: Iterable[str]) -> list[Path]:
    executable = Path(sys.executable)
    roots = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix), executable.parent}
    roots.add(executable.resolve().parent.parent)  # a venv's python links into its base
    roots.update(Path(p) for p in paths)
    return [r.resolve() for r in roots if r.exists() and not _inside(r.resolve(), Path("/usr"))]


def _outermost(paths: Iterable[Path]) -> list[Path]:
    ordered = sorted(set(paths), key=lambda p: len(p.parts))
    kept: list[Path] = []
    for path in ordered:
        if not any(_inside(path, k) for k in kept):
            kept.append(path)
    return kept


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents
