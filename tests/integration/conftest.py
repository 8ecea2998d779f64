"""Integration fixtures: the CRDs installed on the local control plane and the operator running as
its own process, as it runs in a container, so tests can kill and restart it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SESSIONS_NAMESPACE = "labenv"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Operator:
    """The operator as a child process with its log in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "labenv.controller"], env=self.env, stdout=handle, stderr=subprocess.STDOUT
        )
        handle.close()

    def kill(self) -> None:
        """kill -9: no cleanup, as when a node dies."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> None:
        self.kill()
        self.start()

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.env['LABENV_METRICS_PORT']}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text: str = response.read().decode()
            return text

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class Cli:
    """`labenv` and `kubectl` as a user runs them, against the test cluster."""

    def __init__(self, env: dict[str, str], kubectl: Path) -> None:
        self.env = env
        self.kubectl_path = kubectl

    def labenv(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "labenv.cli", *args],
            env=self.env,
            text=True,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"labenv {' '.join(args)} exited {result.returncode}: {result.stderr}")
        return result

    def kubectl(
        self, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.kubectl_path), *args],
            env=self.env,
            text=True,
            input=stdin,
            capture_output=True,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} exited {result.returncode}: {result.stderr}")
        return result

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", "-o", "json", *args).stdout)

    def exists(self, *args: str) -> bool:
        return self.kubectl("get", *args, check=False).returncode == 0

    def wait_for(self, what: str, predicate: Any, timeout: float = 120, interval: float = 0.5) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="session")
def cli(local_cluster: Any) -> Cli:
    env = {
        **os.environ,
        **local_cluster.env,
        "KUBECONFIG": str(local_cluster.kubeconfig),
        "LABENV_NAMESPACE": SESSIONS_NAMESPACE,
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }
    env.pop("LABENV_COURSE", None)
    tool = Cli(env, local_cluster.kubectl)
    tool.labenv("install")
    return tool


@pytest.fixture(scope="session")
def operator(cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    env = {
        **cli.env,
        "LABENV_SWEEP_INTERVAL": "2",
        "LABENV_RETRY_DELAY": "1",
        "LABENV_WATCH_SERVER_TIMEOUT": "60",
        "LABENV_WATCH_CLIENT_TIMEOUT": "75",
        "LABENV_METRICS_PORT": str(free_port()),
    }
    op = Operator(env, log)
    op.start()
    yield op
    op.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On failure, show the operator's last log lines: that is where the story usually is."""
    outcome = yield
    report = outcome.get_result()
    op = item.funcargs.get("operator") if hasattr(item, "funcargs") else None
    if report.failed and isinstance(op, Operator) and op.log.exists():
        report.sections.append(("operator log (tail)", op.tail()))
