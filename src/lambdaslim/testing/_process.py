"""Processes and ports of the local runtime: a free loopback port, waiting for it, stopping a group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

from ._errors import EmulatorError


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_port(port: int, proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise EmulatorError(f"the emulator exited with code {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise EmulatorError(f"nothing listened on 127.0.0.1:{port} within {timeout} s")


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as fh:
                out.extend(int(c) for c in fh.read().split())
        except OSError:
            continue
    return out


def _stop_group(proc: subprocess.Popen[bytes] | None) -> None:
    """Stop a runtime or emulator we started, its process group and its children."""
    if proc is None or proc.poll() is not None:
        return
    # The emulator may start the runtime in a group of its own: kill those children by pid.
    stack, family = [proc.pid], []
    while stack:
        pid = stack.pop()
        family.append(pid)
        stack.extend(_children(pid))
    for pid in family[1:]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=3)
    except (ProcessLookupError, PermissionError):
        pass
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=3)
