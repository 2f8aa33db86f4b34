"""Run a TCP-only kernel behind Unix sockets, inside its jail.

A confined kernel has a network namespace of its own, so a kernel that listens on
loopback TCP only (Deno's) is out of the server's reach. This program runs in the jail
in front of such a kernel: it listens on the Unix sockets that the server's connection
file names (``<ip>-<port>``, ZeroMQ's ipc addresses, in the kernel's runtime directory,
which the server sees too), starts the kernel with a copy of that file that names
loopback TCP ports of the jail instead, and copies bytes both ways for every
connection. ZeroMQ's wire protocol is the same over both transports.

Usage: ``python tcp_relay.py CONNECTION_FILE -- KERNEL ARGV...``; every argument of the
kernel equal to CONNECTION_FILE is replaced by the TCP copy. The relay ends with the
kernel, with the kernel's exit status. It imports nothing outside the standard library:
the server runs it from source inside the jail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Awaitable, Callable

CHANNELS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
LOOPBACK = "127.0.0.1"
CONNECT_TIMEOUT = 30.0
CHUNK = 1 << 16


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def tcp_copy(info: dict[str, object]) -> tuple[dict[str, object], dict[str, int]]:
    """The kernel's TCP connection info, and the ipc socket path of each TCP port."""
    tcp = dict(info, transport="tcp", ip=LOOPBACK)
    paths: dict[str, int] = {}
    for channel in CHANNELS:
        port = free_port()
        tcp[channel] = port
        paths[f"{info['ip']}-{info[channel]}"] = port
    return tcp, paths


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(CHUNK):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to the kernel's port, waiting for the kernel to listen on it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CONNECT_TIMEOUT
    while True:
        try:
            return await asyncio.open_connection(LOOPBACK, port)
        except OSError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.05)


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def relay_to(port: int) -> Handler:
    """A Unix-socket connection handler that relays to the kernel's TCP ``port``."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            kernel_reader, kernel_writer = await connect(port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, kernel_writer), pipe(kernel_reader, writer))

    return serve


def write_tcp_file(connection_file: str) -> tuple[str, dict[str, int]]:
    """The TCP copy of the connection file (written to the jail's /tmp), and the ports."""
    with open(connection_file) as file:
        info = json.load(file)
    tcp, paths = tcp_copy(info)
    handle, tcp_file = tempfile.mkstemp(prefix="kernel-tcp-", suffix=".json")
    with os.fdopen(handle, "w") as file:
        json.dump(tcp, file)
    return tcp_file, paths


async def main(argv: list[str], paths: dict[str, int]) -> int:
    """Listen on each ipc path, run the kernel, and relay until it exits."""
    servers = []
    for path, port in paths.items():
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        servers.append(await asyncio.start_unix_server(relay_to(port), path=path))
    kernel = await asyncio.create_subprocess_exec(*argv)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(signum, kernel.send_signal, signum)
    status = await kernel.wait()
    for server in servers:
        server.close()
    return status


def run(connection_file: str, argv: list[str]) -> int:
    tcp_file, paths = write_tcp_file(connection_file)
    try:
        return asyncio.run(
            main([tcp_file if arg == connection_file else arg for arg in argv], paths)
        )
    finally:
        for path in (*paths, tcp_file):
            with contextlib.suppress(OSError):
                os.unlink(path)


if __name__ == "__main__":
    arguments = sys.argv[1:]
    if len(arguments) < 3 or arguments[1] != "--":
        sys.exit("usage: tcp_relay.py CONNECTION_FILE -- KERNEL ARGV...")
    sys.exit(run(arguments[0], arguments[2:]))
