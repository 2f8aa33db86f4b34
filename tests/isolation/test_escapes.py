"""Hostile code in a sandbox of a ``--isolation bwrap`` server tries to get out, and fails.

Each test reproduces one escape that worked before the server confined its kernels
(issue 14), as remote code, and asserts that it is now refused. The code reports what
it managed to do as JSON on its last stdout line.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from testkit import idle_tree_of

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="needs bubblewrap (scripts/test.sh installs it)"
)

TERMINAL = {"succeeded", "failed", "cancelled"}


@dataclass
class Box:
    """One sandbox of the confined server."""

    api: httpx.Client
    id: str
    record: dict[str, Any]
    context: str = ""

    @property
    def base(self) -> str:
        return f"/v1/sandboxes/{self.id}"

    def run(self, code: str, timeout: float = 90.0, **body: Any) -> dict[str, Any]:
        if not self.context:
            response = self.api.post(f"{self.base}/code/contexts", json={})
            assert response.status_code == 201, response.text
            self.context = response.json()["id"]
        response = self.api.post(
            f"{self.base}/code/runs", json={"code": code, "context_id": self.context, **body}
        )
        assert response.status_code == 202, response.text
        run_id = response.json()["id"]
        deadline = time.monotonic() + timeout
        while True:
            run: dict[str, Any] = self.api.get(f"{self.base}/code/runs/{run_id}").json()
            if run["status"] in TERMINAL:
                return run
            assert time.monotonic() < deadline, f"run {run_id} did not finish: {run}"
            time.sleep(0.02)

    def report(self, code: str, **body: Any) -> Any:
        """Run ``code`` that prints a JSON report last; that report."""
        run = self.run(code, **body)
        assert run["status"] == "succeeded", run
        stdout = "".join(run["execution"]["logs"]["stdout"]).strip().splitlines()
        return json.loads(stdout[-1])

    def delete(self) -> None:
        self.api.delete(self.base)


@pytest.fixture(scope="module")
def api(confined_server: Any) -> Iterator[httpx.Client]:
    with confined_server.client() as client:
        yield client


@pytest.fixture
def new_box(api: httpx.Client) -> Iterator[Callable[..., Box]]:
    made: list[Box] = []

    def make(**body: Any) -> Box:
        response = api.post("/v1/sandboxes", json=body)
        assert response.status_code == 201, response.text
        box = Box(api, response.json()["id"], response.json())
        made.append(box)
        return box

    yield make
    for box in made:
        box.delete()


#: Tries ``f(path)`` on each path; maps path -> "ok" or the error's class name.
ATTEMPT = """
import json, os
def attempt(f, *items):
    out = {}
    for item in items:
        try:
            f(item)
            out[str(item)] = "ok"
        except Exception as error:
            out[str(item)] = type(error).__name__
    return out
"""


def test_healthz_and_sandbox_report_the_isolation_in_force(api: httpx.Client, new_box) -> None:
    from sandbox_magic.notebook.commands import describe_isolation

    health = api.get("/healthz").json()
    assert health["isolation"]["mode"] == "bwrap"
    assert health["limits"]["default_memory_mb"] == 512
    shown = describe_isolation(health)  # the "isolation" row of %sandbox status
    assert shown.startswith("bwrap (network: with internet_access only, via slirp4netns")
    assert "512 MB" in shown
    box = new_box()
    config = box.record["config"]
    assert config["isolation"] == "bwrap"
    assert config["memory_mb"] == 512  # the limit, not the host's memory
    assert config["vcpus"] == 1
    assert config["internet_access"] is False
    assert box.record["cwd"] == "/workspace"


def test_files_of_the_server_and_of_other_sandboxes_are_out_of_sight(
    confined_server: Any, new_box
) -> None:
    victim, thief = new_box(), new_box()
    victim.run("open('diary.txt', 'w').write('victim secret')")
    state = confined_server.state_dir
    victim_file = state / "sandboxes" / victim.id / "workspace" / "diary.txt"
    assert victim_file.read_text() == "victim secret"  # it is there, on the host
    seen = thief.report(
        ATTEMPT
        + f"""
import sys
paths = [{str(victim_file)!r}, {str(state / "token")!r}, {str(state / "server.db")!r},
         '/etc/shadow', '/sandbox/../sandboxes/x', {str(state)!r}]
found = attempt(lambda p: open(p).read(), *paths)
# The host's home holds at most the path to the Python installation, read-only.
home = {os.path.expanduser("~")!r}
found["home"] = [p for p in (os.listdir(home) if os.path.isdir(home) else [])
                 if not sys.base_prefix.startswith(os.path.join(home, p))]
print(json.dumps(found))
"""
    )
    assert seen.pop("home") == []
    assert set(seen.values()) <= {"FileNotFoundError", "PermissionError"}, seen
    mine = thief.report("import os, json; print(json.dumps(sorted(os.listdir('/workspace'))))")
    assert mine in ([], [".nullspace"])  # its own, empty workspace (and package area)


def test_the_token_and_the_servers_environment_do_not_reach_the_code(
    confined_server: Any, new_box, host_secret: str
) -> None:
    box = new_box(envs={"MINE": "visible"})
    seen = box.report(
        """
import json, os
found = {"environ": dict(os.environ), "procs": {}}
for pid in os.listdir('/proc'):
    if pid.isdigit():
        for name in ('cmdline', 'environ'):
            try:
                found["procs"][pid + '/' + name] = open(f'/proc/{pid}/{name}', 'rb').read().decode(
                    'utf-8', 'replace')
            except Exception as error:
                found["procs"][pid + '/' + name] = type(error).__name__
found["server_pid_visible"] = os.path.exists('/proc/%d' % SERVER_PID)
print(json.dumps(found))
""".replace("SERVER_PID", str(confined_server.process.pid))
    )
    text = json.dumps(seen)
    assert confined_server.token not in text
    assert host_secret not in text
    assert not [name for name in seen["environ"] if name.startswith(("NULLSPACE", "SANDBOX_"))]
    assert seen["environ"]["MINE"] == "visible"
    assert "JPY_PARENT_PID" not in seen["environ"]
    # Only the sandbox's own processes: bwrap's init and the kernel.
    assert len({key.split("/")[0] for key in seen["procs"]}) <= 3, seen["procs"].keys()


def test_the_history_of_other_sandboxes_is_not_shared(new_box) -> None:
    writer, reader = new_box(), new_box()
    writer.run("secret_history_marker = 41 + 1")
    seen = reader.report(
        """
import json, os, glob
home = os.path.expanduser('~')
files = glob.glob(home + '/**/*.sqlite', recursive=True) + glob.glob('/root/**', recursive=True)
print(json.dumps({"home": home, "text": ''.join(
    open(f, 'rb').read().decode('latin-1') for f in files if os.path.isfile(f))}))
"""
    )
    assert seen["home"] == "/home/sandbox"
    assert "secret_history_marker" not in seen["text"]


def test_other_kernels_connection_files_are_out_of_sight(new_box) -> None:
    first, second = new_box(), new_box()
    first.run("pass")
    seen = second.report(
        """
import json, glob, os
from ipykernel.connect import get_connection_file
own = get_connection_file()
files = [p for p in glob.glob('/tmp/**/*.json', recursive=True)] + glob.glob('/tmp/sbm-*/*/*.json')
print(json.dumps({"own": own, "files": sorted(set(files)), "dirs": os.listdir(os.path.dirname(
    os.path.dirname(own)))}))
"""
    )
    assert seen["files"] == [seen["own"]]
    assert len(seen["dirs"]) == 1, seen  # only its own kernel directory


#: The code's network: its interfaces, whether it has a default route, and what of
#: the server's port and the outside it can open a socket to.
NETWORK_REPORT = (
    ATTEMPT
    + """
import socket
def connect(address):
    with socket.create_connection(address, timeout=3):
        pass
with open('/proc/net/dev') as dev:
    interfaces = sorted(line.split(':')[0].strip() for line in dev.readlines()[2:])
with open('/proc/net/route') as table:
    routed = any(line.split()[1] == '00000000' for line in table.readlines()[1:])
with open('/etc/resolv.conf') as resolv:
    dns = resolv.read().split()
reached = attempt(connect, *[(host, PORT) for host in ('127.0.0.1', 'localhost', '10.0.2.2')])
print(json.dumps({"interfaces": interfaces, "routed": routed, "dns": dns, "reached": reached}))
"""
)


def test_no_socket_reaches_the_server_or_the_network(confined_server: Any, new_box) -> None:
    port = int(confined_server.url.rsplit(":", 1)[1])
    box = new_box()
    assert box.record["config"]["internet_access"] is False
    seen = box.report(NETWORK_REPORT.replace("PORT", str(port)))
    assert seen["interfaces"] == ["lo"]
    assert not seen["routed"]
    assert "ok" not in seen["reached"].values(), seen


@pytest.mark.skipif(shutil.which("slirp4netns") is None, reason="needs slirp4netns")
def test_internet_access_gives_a_way_out_but_never_the_hosts_loopback(
    confined_server: Any, new_box
) -> None:
    port = int(confined_server.url.rsplit(":", 1)[1])
    box = new_box(internet_access=True)
    assert box.record["config"]["internet_access"] is True
    seen = box.report(NETWORK_REPORT.replace("PORT", str(port)))
    assert seen["interfaces"] == ["lo", "tap0"]
    assert seen["routed"]  # outbound traffic has somewhere to go
    assert seen["dns"] == ["nameserver", "10.0.2.3"]
    # The server listens on the host's loopback: neither the jail's own loopback nor
    # slirp4netns's gateway to the host (10.0.2.2) reaches it.
    assert "ok" not in seen["reached"].values(), seen
    # A restart gives the new kernel process its network again.
    context = box.context
    restarted = box.api.post(f"{box.base}/code/contexts/{context}/restart")
    assert restarted.status_code in (200, 204), restarted.text
    again = box.report(NETWORK_REPORT.replace("PORT", str(port)))
    assert again["interfaces"] == ["lo", "tap0"]
    assert again["routed"]


def test_killing_the_server_or_another_kernel_fails(confined_server: Any, new_box) -> None:
    bystander, killer = new_box(), new_box()
    bystander.run("alive = 'still here'")
    server_pid = confined_server.process.pid
    bystander_pids = [p.pid for p in psutil.Process(server_pid).children(recursive=True)]
    seen = killer.report(
        ATTEMPT
        + f"""
import signal
print(json.dumps(attempt(lambda pid: os.kill(pid, signal.SIGKILL), {server_pid},
                         *{bystander_pids!r})))
"""
    )
    assert all(outcome in ("ProcessLookupError", "PermissionError") for outcome in seen.values())
    # The bluntest try: kill every process it can signal. Only its own kernel dies.
    killer.run("import os, signal; os.kill(-1, signal.SIGKILL)")
    assert confined_server.process.poll() is None
    assert "still here" in "".join(bystander.run("print(alive)")["execution"]["logs"]["stdout"])


def _marked(marker: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if marker in " ".join(process.info["cmdline"] or []):
            found.append(process)
    return found


def _wait_gone(marker: str, timeout: float = 20.0) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while (left := _marked(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


DAEMON = """
import subprocess, sys
subprocess.Popen(['sleep', 'MARKER'], start_new_session=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
"""


def test_deleting_a_sandbox_kills_processes_in_new_sessions(new_box) -> None:
    marker = f"{4000 + os.getpid() % 1000}.{time.time_ns() % 10**6}"
    box = new_box()
    run = box.run(DAEMON.replace("MARKER", marker), keep_processes=True)
    assert run["status"] == "succeeded", run
    assert _marked(marker), "the daemon did not start"
    box.delete()
    assert not _wait_gone(marker), "a process outlived its sandbox"


def test_stopping_the_server_even_by_sigkill_kills_every_sandbox_process(
    server_factory: Any,
) -> None:
    import signal

    for sig in (signal.SIGTERM, signal.SIGKILL):
        marker = f"{5000 + sig}.{time.time_ns() % 10**6}"
        server = server_factory(None, None, "--isolation", "bwrap")
        with server.client() as client:
            sandbox = client.post("/v1/sandboxes", json={}).json()["id"]
            run = client.post(
                f"/v1/sandboxes/{sandbox}/code/execute",
                json={"code": DAEMON.replace("MARKER", marker), "keep_processes": True},
            )
            assert run.status_code == 200
        assert _marked(marker)
        server.process.send_signal(sig)
        server.process.wait(timeout=30)
        assert not _wait_gone(marker), f"a sandbox process outlived the server ({sig!r})"


def test_running_out_of_memory_is_reported_and_the_context_restarts(new_box) -> None:
    box = new_box(memory_mb=256)
    assert box.record["config"]["memory_mb"] == 256
    box.run("kept = 1")
    run = box.run("hog = bytearray(600 * 1024 * 1024)")
    assert run["status"] == "failed"
    assert "out of memory: limit 256 MB" in run["failure_reason"], run
    assert run["execution"]["error"]["name"] == "MemoryError"
    after = box.run("print('fine'); print('kept' in globals())")
    assert after["status"] == "succeeded"
    assert after["execution"]["logs"]["stdout"] == ["fine\nFalse\n"]


def _cpus_seen(api: httpx.Client) -> int:
    """CPUs a one-vcpu sandbox may run on: all of them under a cgroup CPU quota, else one."""
    quota = _cgroups_in_force(api) and _sandbox_cgroup_possible("cpu")
    return len(os.sched_getaffinity(0)) if quota else 1


def test_processes_threads_cpus_and_files_are_limited(api: httpx.Client, new_box) -> None:
    box = new_box(vcpus=1)
    seen = box.report(
        """
import json, os, threading, resource
stop = threading.Event()
threads = []
try:
    while len(threads) < 5000:
        thread = threading.Thread(target=stop.wait)
        thread.start()
        threads.append(thread)
    error = None
except RuntimeError as exc:
    error = str(exc)
stop.set()
for thread in threads:
    thread.join()
files = []
try:
    while len(files) < 100000:
        files.append(open('/dev/null'))
except OSError as exc:
    files_error = exc.__class__.__name__
for f in files:
    f.close()
print(json.dumps({"threads": len(threads), "error": error, "files": len(files),
                  "files_error": files_error, "cpus": len(os.sched_getaffinity(0)),
                  "fsize": resource.getrlimit(resource.RLIMIT_FSIZE)[0]}))
"""
    )
    assert seen["error"] is not None, seen
    assert seen["threads"] < 256, seen
    assert seen["files"] < 1024, seen
    assert seen["files_error"] == "OSError", seen
    assert seen["cpus"] == _cpus_seen(api)
    assert 0 < seen["fsize"] <= 1024 * 1024 * 1024
    assert box.run("print('still works')")["status"] == "succeeded"


LIMITS_REPORT = """
import json, os, resource
print(json.dumps({"data": resource.getrlimit(resource.RLIMIT_DATA),
                  "nproc": resource.getrlimit(resource.RLIMIT_NPROC),
                  "cpus": len(os.sched_getaffinity(0)), "env": os.environ.get("MINE")}))
"""


def test_a_warm_kernel_gets_its_sandboxs_limits_also_after_a_restart(
    api: httpx.Client, new_box
) -> None:
    deadline = time.monotonic() + 60
    while api.get("/healthz").json()["warm_kernels_ready"] < 1:
        assert time.monotonic() < deadline, "no warm kernel became ready"
        time.sleep(0.05)
    box = new_box(memory_mb=300, vcpus=1, envs={"MINE": "x"})
    expected = {
        "data": [300 * 2**20] * 2,
        "nproc": [256, 256],
        "cpus": _cpus_seen(api),
        "env": "x",
    }
    assert box.report(LIMITS_REPORT) == expected
    restarted = api.post(f"{box.base}/code/contexts/{box.context}/restart")
    assert restarted.status_code in (200, 204), restarted.text
    assert box.report(LIMITS_REPORT) == expected


def test_memory_backed_scratch_space_is_bounded(new_box) -> None:
    box = new_box()
    scratch = box.record["config"]["limits"]["scratch_mb"]
    seen = box.report(
        """
import json, os
out = {}
for place in ('/tmp', '/dev/shm'):
    stat = os.statvfs(place)
    out[place] = stat.f_blocks * stat.f_frsize
print(json.dumps(out))
"""
    )
    for size in seen.values():
        assert 0 < size <= scratch * 2**20, seen


@pytest.mark.parametrize("cwd", ["/tmp", "/tmp/scratch/deeper"])
def test_a_tmp_cwd_is_the_kernels_own_private_tmp(new_box, cwd: str) -> None:
    box = new_box()
    response = box.api.post(f"{box.base}/code/contexts", json={"cwd": cwd})
    assert response.status_code == 201, response.text
    box.context = response.json()["id"]
    seen = box.report(
        "import json, os\nopen('note.txt', 'w').write('x')\n"
        "print(json.dumps([os.getcwd(), os.path.exists('/workspace/note.txt')]))"
    )
    assert seen == [cwd, False]  # where asked, writable, and not the workspace


def test_a_cold_started_kernel_starts_in_its_private_tmp(api: httpx.Client, new_box) -> None:
    if "bash" not in api.get("/healthz").json()["languages"]["offered"]:
        pytest.skip("bash-kernel is not installed (scripts/install_languages.sh)")
    box = new_box()
    response = box.api.post(
        f"{box.base}/code/contexts", json={"cwd": "/tmp/work", "language": "bash"}
    )
    assert response.status_code == 201, response.text
    box.context = response.json()["id"]
    run = box.run("pwd; touch made && echo writable")
    assert run["status"] == "succeeded", run
    assert "".join(run["execution"]["logs"]["stdout"]).split() == ["/tmp/work", "writable"]


def _cgroups_in_force(api: httpx.Client) -> bool:
    return str(api.get("/healthz").json()["isolation"]["limits"]).startswith("cgroup")


IDLE_TREE = "sandbox-magic-idle-"


def _sandbox_cgroup(sandbox_id: str, controller: str, *, idle: bool = False) -> list[Path]:
    """Where the server keeps a sandbox's cgroup of one hierarchy (found by its name);
    ``idle``: its twin in the idle ``cpu`` tree instead."""
    found = Path("/sys/fs/cgroup", controller).rglob(f"sandbox-magic-*/{sandbox_id}")
    return [path for path in found if path.parent.name.startswith(IDLE_TREE) == idle]


#: Three processes of 150 MB each: each is within the sandbox's 256 MB per process,
#: together they are not.
THREE_HOGS = """
import json, subprocess, sys
hog = "b = bytearray(150 * 1024 * 1024); import time; time.sleep(3)"
children = [subprocess.Popen([sys.executable, "-c", hog]) for _ in range(3)]
print(json.dumps([child.wait() for child in children]))
"""


def test_memory_is_limited_for_the_sandbox_as_a_whole(api: httpx.Client, new_box) -> None:
    if not _cgroups_in_force(api):
        pytest.skip("no writable cgroups on this machine: rlimits per process only")
    box = new_box(memory_mb=256)
    [memory] = _sandbox_cgroup(box.id, "memory")
    assert (memory / "memory.limit_in_bytes").read_text().strip() == str(256 * 1024 * 1024)
    [pids] = _sandbox_cgroup(box.id, "pids")
    assert int((pids / "pids.max").read_text()) == 256
    returncodes = box.report(THREE_HOGS)
    assert -9 in returncodes, returncodes  # the OOM killer took one; not all three fit
    assert box.run("print('the kernel lives on')")["status"] == "succeeded"


def test_a_sandboxs_cpu_quota_is_its_vcpus_for_all_its_processes(
    api: httpx.Client, new_box
) -> None:
    if not _cgroups_in_force(api) or not _sandbox_cgroup_possible("cpu"):
        pytest.skip("no writable cpu cgroup on this machine")
    box = new_box(vcpus=1)
    [cpu] = _sandbox_cgroup(box.id, "cpu")
    # its twin in the idle tree (where there is one) holds it to the same quota
    twins = _sandbox_cgroup(box.id, "cpu", idle=True)
    assert len(twins) == (idle_tree_of(box.id) is not None)
    for directory in (cpu, *twins):
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        assert quota == int((directory / "cpu.cfs_period_us").read_text())  # one CPU's worth


def _sandbox_cgroup_possible(controller: str) -> bool:
    return Path("/sys/fs/cgroup", controller).is_dir()


def test_deleting_a_sandbox_removes_its_cgroups(api: httpx.Client, new_box) -> None:
    if not _cgroups_in_force(api):
        pytest.skip("no writable cgroups on this machine")
    box = new_box()
    box.run("1")
    assert _sandbox_cgroup(box.id, "memory")
    assert len(_sandbox_cgroup(box.id, "cpu", idle=True)) == (idle_tree_of(box.id) is not None)
    box.delete()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (
        _sandbox_cgroup(box.id, "memory") or _sandbox_cgroup(box.id, "cpu", idle=True)
    ):
        time.sleep(0.05)
    assert not _sandbox_cgroup(box.id, "memory")
    assert not _sandbox_cgroup(box.id, "pids")
    assert not _sandbox_cgroup(box.id, "cpu", idle=True)
