"""Confinement of kernels: bubblewrap namespaces, one unprivileged uid per sandbox, rlimits.

Under ``bwrap`` isolation every kernel of a sandbox is started as::

    env -i bwrap <namespaces, mounts, --setenv ...> -- \\
        prlimit <limits> -- taskset -c <cpus> -- setpriv --reuid U ... -- <kernel argv>

- ``env -i``: bwrap itself (and its init inside the pid namespace) holds no variable
  of the server; the kernel gets only the allow-listed ones set with ``--setenv``.
- namespaces: mount, pid, ipc, uts and network; ``--die-with-parent`` and the pid
  namespace take every process of the kernel down with it. A sandbox with internet
  access gets a way out of its network namespace later, from slirp4netns
  (`sandbox_magic.server.network`), never the host's loopback.
- mounts: the system (``/usr``, some of ``/etc``) and the server's Python read-only,
  the sandbox's workspace at ``/workspace``, its home at ``/home/sandbox``, a private
  ``/tmp``, and the kernel's own runtime directory (connection file and sockets).
  Nothing else: not the host's home, the state directory, other sandboxes or kernels.
- ``prlimit``: address space, processes and threads (per uid, so per sandbox), open
  files and file size; ``taskset`` pins the sandbox to ``vcpus`` CPUs unless a cgroup
  quota holds it to that much CPU time (`sandbox_magic.server.cgroups`).
- ``setpriv``: as root, the kernel runs as the sandbox's own uid with no capabilities
  and ``no_new_privs``. A server not running as root gets a user namespace instead
  and all its sandboxes share its uid (still each in its own mounts).

`detect` finds out, by starting a real confined process, what this machine allows.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from sandbox_magic.server.network import resolv_conf

if TYPE_CHECKING:
    from sandbox_magic.server.cgroups import SandboxCgroup

__all__ = [
    "ISOLATION_MODES",
    "Confinement",
    "IsolationUnavailable",
    "Jail",
    "LimitPolicy",
    "Limits",
    "detect",
    "lower_limits_code",
]

log = logging.getLogger(__name__)

ISOLATION_MODES: Final = ("auto", "bwrap", "none")
Mode = Literal["bwrap", "none"]

#: Where the code sees its sandbox.
WORKSPACE: Final = "/workspace"
SANDBOX_ROOT: Final = "/sandbox"
HOME: Final = "/home/sandbox"

#: The environment a confined kernel starts with (plus the kernelspec's, the
#: sandbox's own ``envs`` and whatever the server was told to pass on).
_BASE_ENV: Final = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": HOME,
    "USER": "sandbox",
    "LOGNAME": "sandbox",
    "LANG": "C.UTF-8",
    "TMPDIR": "/tmp",
    "PYTHONNOUSERSITE": "1",
}

#: What of ``/etc`` a kernel sees: enough for names, certificates, fonts and the loader.
_ETC: Final = (
    "passwd",
    "group",
    "hosts",
    "nsswitch.conf",
    "host.conf",
    "gai.conf",
    "localtime",
    "timezone",
    "ssl",
    "ca-certificates",
    "fonts",
    "alternatives",
    "mime.types",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "matplotlibrc",
    # R's configuration (/usr/lib/R/etc links here)
    "R",
)

#: Further ``/etc`` directories a runtime reads, by pattern (the JDK's configuration:
#: ``/usr/lib/jvm/*/conf`` links into ``/etc/java-<version>-openjdk``).
_ETC_PATTERNS: Final = ("java-*",)

#: In a kernel's runtime directory: the ``/etc/resolv.conf`` it sees.
_RESOLV_CONF: Final = "resolv.conf"

_TOP_LEVEL: Final = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")

#: Sandbox uids are drawn at random from here, so that two servers on one machine
#: (and two sandboxes of one server) practically never share one.
_UID_RANGE: Final = (0x1000_0000, 0x7FFF_0000)

_PROBE_TIMEOUT: Final = 30.0


class IsolationUnavailable(RuntimeError):
    """``--isolation bwrap`` was asked for and this machine cannot provide it."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits of one sandbox, as really enforced."""

    vcpus: int
    memory_mb: int
    processes: int
    open_files: int
    file_size_mb: int
    #: Size of each of ``/tmp`` and ``/dev/shm`` (memory-backed).
    scratch_mb: int = 256
    #: Size of ``/workspace`` (its own filesystem, where the server can make one).
    disk_mb: int = 1024

    def public(self) -> dict[str, int]:
        return {
            "vcpus": self.vcpus,
            "memory_mb": self.memory_mb,
            "processes": self.processes,
            "open_files": self.open_files,
            "file_size_mb": self.file_size_mb,
            "scratch_mb": self.scratch_mb,
            "disk_mb": self.disk_mb,
        }


@dataclass(frozen=True, slots=True)
class LimitPolicy:
    """Server defaults and maxima for the limits a sandbox may ask for."""

    default_vcpus: int = 1
    max_vcpus: int = 0  # 0: the host's CPU count
    default_memory_mb: int = 1024
    max_memory_mb: int = 4096
    processes: int = 256
    open_files: int = 1024
    file_size_mb: int = 1024
    scratch_mb: int = 256
    default_disk_mb: int = 1024
    max_disk_mb: int = 8192

    def describe(self) -> dict[str, int]:
        """Defaults and maxima, for ``/healthz``."""
        return {
            "default_vcpus": self.default_vcpus,
            "max_vcpus": min(self.max_vcpus or os.cpu_count() or 1, os.cpu_count() or 1),
            "default_memory_mb": self.default_memory_mb,
            "max_memory_mb": self.max_memory_mb,
            "processes": self.processes,
            "open_files": self.open_files,
            "file_size_mb": self.file_size_mb,
            "scratch_mb": self.scratch_mb,
            "default_disk_mb": self.default_disk_mb,
            "max_disk_mb": self.max_disk_mb,
        }

    def disk(self, disk_mb: int | None) -> int:
        """The ``/workspace`` size for a sandbox that asked for ``disk_mb``."""
        return max(16, min(disk_mb or self.default_disk_mb, self.max_disk_mb))

    def limits(
        self, *, vcpus: int | None, memory_mb: int | None, disk_mb: int | None = None
    ) -> Limits:
        """The limits for a new sandbox: what it asked for, within the maxima."""
        host_cpus = os.cpu_count() or 1
        max_vcpus = min(self.max_vcpus or host_cpus, host_cpus)
        return Limits(
            vcpus=max(1, min(vcpus or self.default_vcpus, max_vcpus)),
            memory_mb=max(64, min(memory_mb or self.default_memory_mb, self.max_memory_mb)),
            processes=self.processes,
            open_files=self.open_files,
            file_size_mb=self.file_size_mb,
            scratch_mb=self.scratch_mb,
            disk_mb=self.disk(disk_mb),
        )


@dataclass(frozen=True, slots=True)
class Jail:
    """What confines one sandbox: its uid, directory, limits and network."""

    uid: int
    root: Path
    limits: Limits
    internet: bool = False
    #: Its cgroups, where the server can use them (limits on the sandbox as a whole).
    cgroup: SandboxCgroup | None = field(default=None, compare=False)
    #: Whether its workspace is a filesystem of its own, ``limits.disk_mb`` large.
    disk: bool = False

    @property
    def cpu_quota(self) -> bool:
        """Whether a cgroup holds it to ``limits.vcpus`` CPUs' worth of time.

        Then it is not pinned to CPUs as well: its kernel may run on whichever core is
        free, which measurably shortens every cell on a busy server.
        """
        return self.cgroup is not None and "cpu" in self.cgroup.directories

    @property
    def workspace(self) -> Path:
        return self.root / "workspace"

    @property
    def home(self) -> Path:
        return self.root / "home"


def new_uid() -> int:
    """A fresh uid for a sandbox."""
    low, high = _UID_RANGE
    return low + secrets.randbelow(high - low)


@dataclass(frozen=True, slots=True)
class Confinement:
    """The isolation in force on this server, and how to start a kernel under it."""

    mode: Mode
    reason: str = ""
    bwrap: str = ""
    as_root: bool = False
    internet_allowed: bool = False
    #: slirp4netns, which gives a sandbox with internet access its network ("": none).
    slirp4netns: str = ""
    pass_env: tuple[str, ...] = ()
    #: Whether this bwrap can size a tmpfs (``--size``, bubblewrap 0.8 and later).
    sized_tmpfs: bool = False

    @property
    def active(self) -> bool:
        return self.mode == "bwrap"

    @property
    def offers_internet(self) -> bool:
        """Whether a sandbox asking for ``internet_access`` gets it under this isolation."""
        return not self.active or (self.internet_allowed and bool(self.slirp4netns))

    def _network(self) -> str:
        if self.offers_internet:
            return "with internet_access only, via slirp4netns; never the host's loopback"
        if not self.internet_allowed:
            return "none (turned off with --no-internet)"
        return "none (slirp4netns is not installed)"

    def describe(self) -> dict[str, Any]:
        """What ``/healthz`` shows."""
        if not self.active:
            return {"mode": "none", "limits": "none", "note": self.reason}
        return {
            "mode": "bwrap",
            "uid": "one per sandbox" if self.as_root else "the server's (user namespace)",
            "limits": "rlimit",
            "cpus": "taskset",
            "network": self._network(),
            "note": self.reason,
        }

    # -- paths ------------------------------------------------------------------------

    def inside(self, jail: Jail, host_path: Path) -> str:
        """The path the confined code sees for ``host_path`` of its sandbox."""
        if not self.active:
            return str(host_path)
        resolved = host_path.resolve()
        workspace = jail.workspace.resolve()
        if resolved.is_relative_to(workspace):
            relative = resolved.relative_to(workspace).as_posix()
            return WORKSPACE if relative == "." else f"{WORKSPACE}/{relative}"
        relative = resolved.relative_to(jail.root.resolve()).as_posix()
        return SANDBOX_ROOT if relative == "." else f"{SANDBOX_ROOT}/{relative}"

    def prepare(self, jail: Jail) -> None:
        """Create the sandbox's directories, owned by its uid."""
        for directory in (jail.root, jail.workspace, jail.home):
            directory.mkdir(parents=True, exist_ok=True)
            if self.active and self.as_root:
                os.chown(directory, jail.uid, jail.uid)
        if self.active:
            jail.root.chmod(0o700)

    def prepare_kernel_dir(self, jail: Jail | None, directory: Path) -> None:
        """The kernel's runtime directory, readable only by its sandbox's uid (with the
        ``/etc/resolv.conf`` the kernel sees: slirp4netns's DNS)."""
        directory.mkdir(mode=0o700)
        if self.active:
            (directory / _RESOLV_CONF).write_text(resolv_conf())
        if self.active and self.as_root and jail is not None:
            os.chown(directory, jail.uid, jail.uid)

    def own_file(self, jail: Jail | None, path: Path) -> None:
        if self.active and self.as_root and jail is not None:
            os.chown(path, jail.uid, jail.uid)

    # -- the command ------------------------------------------------------------------

    def kernel_env(self, spec_env: Mapping[str, str], envs: Mapping[str, str]) -> dict[str, str]:
        """The whole environment of a confined kernel (an allow-list)."""
        env = dict(_BASE_ENV)
        env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
        for name in self.pass_env:
            if name in os.environ:
                env[name] = os.environ[name]
        env.update(spec_env)
        env.update(envs)
        return env

    def wrap(
        self,
        argv: Sequence[str],
        *,
        jail: Jail,
        kernel_dir: Path,
        cwd: str,
        env: Mapping[str, str],
        extra_ro: Sequence[Path] = (),
        reserve_mb: int = 0,
    ) -> list[str]:
        """The command that starts ``argv`` confined in ``jail``, in ``cwd`` (as the
        code sees it: in its workspace, its sandbox or its private ``/tmp``).
        ``reserve_mb`` raises the data limit for a runtime that reserves address space
        it does not use (V8); that runtime then caps its own heap."""
        if not self.active:
            return list(argv)
        mounts = _Mounts()
        mounts.system()
        mounts.add("--proc", "/proc", "--dev", "/dev")
        # /tmp and /dev/shm live in memory, outside the memory limit: bounded apart.
        size = jail.limits.scratch_mb * 1024 * 1024 if self.sized_tmpfs else None
        for scratch in ("/tmp", "/dev/shm"):
            mounts.tmpfs(scratch, size_bytes=size)
        # After the scratch mounts, so that a Python installed under /tmp stays visible.
        for path in _python_paths(extra_ro):
            mounts.bind(path, str(path), read_only=True)
        if (kernel_dir / _RESOLV_CONF).is_file():
            mounts.bind(kernel_dir / _RESOLV_CONF, "/etc/resolv.conf", read_only=True)
        mounts.bind(jail.root, SANDBOX_ROOT)
        mounts.bind(jail.workspace, WORKSPACE)
        mounts.bind(jail.home, HOME)
        mounts.bind(kernel_dir, str(kernel_dir))
        if cwd != "/tmp" and cwd.startswith("/tmp/"):
            mounts.add("--perms", "01777", "--dir", cwd)  # in the private /tmp, made now
        command = ["/usr/bin/env", "-i", self.bwrap, *_namespaces(self, jail), *mounts.args]
        command += ["--chdir", cwd, "--hostname", "sandbox"]
        for name, value in env.items():
            command += ["--setenv", name, value]
        if self.as_root:
            command += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        command += ["--", *_limit_prefix(jail.limits, reserve_mb, pin=not jail.cpu_quota)]
        if self.as_root:
            command += [
                "setpriv",
                f"--reuid={jail.uid}",
                f"--regid={jail.uid}",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--no-new-privs",
                "--",
            ]
        command = [*command, *argv]
        return jail.cgroup.joining(command) if jail.cgroup is not None else command


def _namespaces(confinement: Confinement, jail: Jail) -> list[str]:
    flags = [
        "--unshare-ipc",
        "--unshare-pid",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--unshare-net",
        "--die-with-parent",
        "--new-session",
    ]
    if not confinement.as_root:
        flags.append("--unshare-user")
    return flags


class _Mounts:
    """bwrap mount arguments; parent directories are made world-readable (bwrap's own
    are 0700, which an unprivileged uid cannot traverse)."""

    def __init__(self) -> None:
        self.args: list[str] = []
        self._made: set[str] = {"/"}

    def add(self, *args: str) -> None:
        self.args += args

    def _parents(self, destination: str) -> None:
        for parent in reversed(Path(destination).parents):
            name = str(parent)
            if name not in self._made:
                self._made.add(name)
                self.args += ["--perms", "0755", "--dir", name]
        self._made.add(destination)

    def tmpfs(self, destination: str, *, size_bytes: int | None = None) -> None:
        """A fresh, world-writable (sticky) memory file system at ``destination``."""
        self._parents(destination)
        self.args += ["--perms", "1777"]
        if size_bytes is not None:
            self.args += ["--size", str(size_bytes)]
        self.args += ["--tmpfs", destination]

    def bind(self, source: Path, destination: str, *, read_only: bool = False) -> None:
        self._parents(destination)
        self.args += ["--ro-bind" if read_only else "--bind", str(source), destination]

    def system(self) -> None:
        """``/usr``, the top-level links or directories into it, and some of ``/etc``."""
        self.bind(Path("/usr"), "/usr", read_only=True)
        for name in _TOP_LEVEL:
            path = Path("/") / name
            if path.is_symlink():
                self.args += ["--symlink", os.readlink(path), str(path)]
            elif path.is_dir():
                self.bind(path, str(path), read_only=True)
        for name in _ETC:
            path = Path("/etc") / name
            if path.exists():
                self.bind(path, str(path), read_only=True)
        for pattern in _ETC_PATTERNS:
            for path in sorted(Path("/etc").glob(pattern)):
                self.bind(path, str(path), read_only=True)


def _python_paths(extra: Sequence[Path]) -> list[Path]:
    """The server's Python (installation, environment, this package) and ``extra``."""
    import sandbox_magic

    wanted = [
        Path(sys.base_prefix),
        Path(sys.prefix),
        Path(sys.exec_prefix),
        Path(sandbox_magic.__file__).resolve().parent,
        *extra,
    ]
    seen: list[Path] = []
    for path in wanted:
        if not path.exists():
            continue
        for resolved in (path, path.resolve()):
            if str(resolved).startswith("/usr/") or resolved in seen:
                continue
            seen.append(resolved)
    return seen


def _limit_prefix(limits: Limits, reserve_mb: int = 0, *, pin: bool = True) -> list[str]:
    memory = (limits.memory_mb + reserve_mb) * 1024 * 1024
    file_size = limits.file_size_mb * 1024 * 1024
    cpus = ",".join(str(cpu) for cpu in _cpus(limits.vcpus, pin=pin))
    return [
        "prlimit",
        f"--data={memory}",
        f"--nproc={limits.processes}",
        f"--nofile={limits.open_files}",
        f"--fsize={file_size}",
        "--core=0",
        "--",
        "taskset",
        "-c",
        cpus,
    ]


def lower_limits_code(limits: Limits, *, pin: bool = True) -> str:
    """Python that lowers a running kernel's own limits to ``limits`` (a warm kernel,
    started with the maxima, given to a sandbox), pinning it to ``limits.vcpus`` CPUs
    if ``pin``. Lowering needs no privilege; the code leaves no names behind."""
    mb = 1024 * 1024
    values = {
        "RLIMIT_DATA": limits.memory_mb * mb,
        "RLIMIT_NPROC": limits.processes,
        "RLIMIT_NOFILE": limits.open_files,
        "RLIMIT_FSIZE": limits.file_size_mb * mb,
    }
    body = (
        "import os, resource\n"
        f"for name, value in {values!r}.items():\n"
        "    resource.setrlimit(getattr(resource, name), (value, value))\n"
        "for task in os.listdir('/proc/self/task'):\n"
        f"    os.sched_setaffinity(int(task), {set(_cpus(limits.vcpus, pin=pin))!r})\n"
    )
    return f"exec({body!r}, {{}})"


#: Where the next sandbox's CPUs start: sandboxes take the machine's CPUs in turn, so
#: they spread evenly over them.
_next_cpu = itertools.count()


def _cpus(vcpus: int, *, pin: bool = True) -> list[int]:
    """The CPUs a sandbox may run on: ``vcpus`` of them in turn, or all if not ``pin``."""
    try:
        available = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        available = list(range(os.cpu_count() or 1))
    if not pin:
        return available
    start = next(_next_cpu) % len(available)
    return sorted(
        available[(start + i) % len(available)] for i in range(min(vcpus, len(available)))
    )


# -- detection ------------------------------------------------------------------------


def detect(
    requested: str, *, allow_internet: bool = True, pass_env: Sequence[str] = ()
) -> Confinement:
    """The strongest isolation this machine allows, as asked for.

    ``none`` runs kernels unconfined. ``bwrap`` raises `IsolationUnavailable` with
    the reason when it cannot work here; ``auto`` then falls back to ``none`` and
    says why (the caller shows that loudly).
    """
    if requested not in ISOLATION_MODES:
        raise ValueError(f"isolation must be one of {', '.join(ISOLATION_MODES)}")
    if requested == "none":
        return Confinement(
            "none",
            reason="isolation was turned off (--isolation none)",
            internet_allowed=allow_internet,
        )
    try:
        confinement = _probe(allow_internet=allow_internet, pass_env=tuple(pass_env))
    except IsolationUnavailable as error:
        if requested == "bwrap":
            raise
        return Confinement(
            "none", reason=f"no isolation available: {error}", internet_allowed=allow_internet
        )
    return confinement


def _supports_size(bwrap: str) -> bool:
    try:
        done = subprocess.run(
            [bwrap, "--help"], capture_output=True, text=True, timeout=_PROBE_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--size" in done.stdout + done.stderr


def _probe(*, allow_internet: bool, pass_env: tuple[str, ...]) -> Confinement:
    if not sys.platform.startswith("linux"):
        raise IsolationUnavailable("bubblewrap isolation needs Linux")
    missing = [
        tool for tool in ("bwrap", "prlimit", "taskset", "setpriv") if not shutil.which(tool)
    ]
    if missing:
        raise IsolationUnavailable(
            f"{', '.join(missing)} not found (Debian: apt-get install bubblewrap util-linux)"
        )
    bwrap = shutil.which("bwrap") or "bwrap"
    confinement = Confinement(
        "bwrap",
        bwrap=bwrap,
        sized_tmpfs=_supports_size(bwrap),
        as_root=os.geteuid() == 0,
        internet_allowed=allow_internet,
        # It joins a kernel's namespaces from outside: as root (one uid per sandbox).
        slirp4netns=(shutil.which("slirp4netns") or "") if os.geteuid() == 0 else "",
        pass_env=pass_env,
    )
    with tempfile.TemporaryDirectory(prefix="sbm-probe-") as scratch:
        root = Path(scratch)
        jail = Jail(
            uid=new_uid(),
            root=root / "sandbox",
            limits=LimitPolicy().limits(vcpus=1, memory_mb=512),
        )
        confinement.prepare(jail)
        kernel_dir = root / "kernel"
        confinement.prepare_kernel_dir(jail, kernel_dir)
        command = confinement.wrap(
            [sys.executable, "-c", "import os, sys; sys.stdout.write(str(os.getuid()))"],
            jail=jail,
            kernel_dir=kernel_dir,
            cwd=WORKSPACE,
            env=confinement.kernel_env({}, {}),
        )
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=_PROBE_TIMEOUT, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise IsolationUnavailable(f"bwrap could not be started: {error}") from error
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise IsolationUnavailable(
            f"a confined test process failed ({detail[-1] if detail else done.returncode})"
        )
    if confinement.as_root and done.stdout.strip() != str(jail.uid):
        raise IsolationUnavailable("a confined test process did not run as its own uid")
    return confinement
