"""Shared fixtures. Tests marked `integration` run against a real local control plane.

The cluster (`labenv-test`, separate state and ports from the demo cluster `labenv`) starts once per
session and is purged at the end. It is never skipped: if binaries cannot be built or the cluster
cannot start, every integration test ERRORs with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import pytest

from labenv.errors import LabenvError
from labenv.localcluster import LocalCluster, ensure_toolchain

TEST_CLUSTER = os.environ.get("LABENV_TEST_CLUSTER", "labenv-test")
_BUILD_ERROR = pytest.StashKey[LabenvError]()


def _uncaptured(config: pytest.Config) -> AbstractContextManager[Any]:
    """Let build and start-up progress reach the terminal while pytest captures output."""
    capture = config.pluginmanager.getplugin("capturemanager")
    return capture.global_and_fixture_disabled() if capture else nullcontext()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build missing binaries before the first test: a cold build (~15 min on 2 cores) would otherwise
    count against that test's timeout."""
    if session.config.option.collectonly:
        return
    if not any(item.get_closest_marker("integration") for item in session.items):
        return
    with _uncaptured(session.config):
        try:
            ensure_toolchain()
        except LabenvError as error:
            session.config.stash[_BUILD_ERROR] = error


@pytest.fixture(scope="session")
def local_cluster(pytestconfig: pytest.Config) -> Iterator[LocalCluster]:
    """A running cluster: `.kubeconfig`, `.kubectl` and `.env` (PATH and KUBECONFIG for subprocesses)."""
    if _BUILD_ERROR in pytestconfig.stash:
        raise pytestconfig.stash[_BUILD_ERROR]
    cluster = LocalCluster(TEST_CLUSTER)
    with _uncaptured(pytestconfig):
        try:
            cluster.down(purge=True)  # what an interrupted run left behind would fail the audits
            cluster.up()
        except BaseException:
            cluster.down()  # keep state: the error names the log to read
            raise
    yield cluster
    cluster.down(purge=True)


@pytest.fixture(autouse=True)
def _integration_needs_cluster(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("integration"):
        request.getfixturevalue("local_cluster")
