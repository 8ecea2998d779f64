"""Detached component processes tracked by pid files (Linux: liveness is read from /proc).

Each process gets its own session (so it outlives the labenv command that started it and can be
signalled as a group) and appends stdout and stderr to its log file. A pid only counts as ours if
/proc/<pid>/cmdline starts with the binary we launched, so a recycled pid is never signalled.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

_POLL_SECONDS = 0.1


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive across processes (a demo and a test run may start or build the same thing at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def spawn(argv: list[str], log: Path, pid_file: Path, env: Mapping[str, str]) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    # posix_spawn returns a bare pid: no Popen object that would warn when garbage-collected while running.
    pid = os.posix_spawn(
        argv[0],
        argv,
        env,
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,
    )
    pid_file.write_text(f"{pid}\n")
    _await_exec(pid)
    return pid


def _await_exec(pid: int, timeout: float = 5.0) -> None:
    """posix_spawn returns while the kernel may still be loading a big binary, and until it has,
    /proc/<pid>/cmdline is empty: wait for it so running_pid() does not mistake the process for dead."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not _gone(pid):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes():
                return
        except OSError:
            return
        time.sleep(0.01)


def running_pid(pid_file: Path, binary: Path) -> int | None:
    """The pid recorded in pid_file if that process is alive and runs `binary`, else None."""
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    if _gone(pid):
        return None
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0]
    except OSError:
        return None
    return pid if argv0 == os.fsencode(binary) else None


def stop(pids: list[int], grace_seconds: float = 10.0) -> None:
    """SIGTERM each process group, then SIGKILL whatever is still alive after the grace period."""
    _signal(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and not all(_gone(p) for p in pids):
        time.sleep(_POLL_SECONDS)
    survivors = [p for p in pids if not _gone(p)]
    _signal(survivors, signal.SIGKILL)
    while not all(_gone(p) for p in survivors):
        time.sleep(_POLL_SECONDS)


def _signal(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)  # the group of the session spawn() created; its leader is pid


def _gone(pid: int) -> bool:
    """True once pid has exited; reaps it if this process is its parent (else it would stay a zombie)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
    except ChildProcessError:
        pass  # not our child: its parent (or init) reaps it
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in {"Z", "X"}
