"""Fixtures for the executor tests: one local Ray for the whole test session, and the check that Ray runs in a
network namespace that holds only loopback.

Ray advertises the machine's first interface (eth0) by default and reaches for 8.8.8.8 to find it; a Ray test here
must only talk to loopback. .ci/run runs `make test` inside `unshare -n` with lo up; a developer runs the Ray tests
the same way (README, Tests). Outside such a namespace a Ray test skips with the reason, and fails under CI=true
(tests/conftest.py skip_unless_ci), so a CI run that lost its namespace goes red rather than green with fewer tests.

The session Ray is started on first use and shut down at the end of the session. A test that needs a cluster of its
own (ray.cluster_utils.Cluster, test_ray_nodes.py) takes `own_cluster`, which shuts the session Ray down first; the
next test that takes `ray_local` starts it again (about 3 s)."""
from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import skip_unless_ci

IFF_UP = 0x1


def interfaces() -> list[str]:
    return sorted(name for _, name in socket.if_nameindex())


def loopback_up() -> bool:
    flags = Path("/sys/class/net/lo/flags")
    return flags.exists() and int(flags.read_text(), 16) & IFF_UP != 0


def loopback_only() -> bool:
    """True inside a network namespace whose only interface is loopback, and loopback is up (`unshare -n` then
    `ip link set lo up`): Ray started here cannot advertise or reach anything off this machine."""
    return interfaces() == ["lo"] and loopback_up()


def require_loopback_only() -> None:
    if not loopback_only():
        here = ", ".join(interfaces())
        skip_unless_ci(f"Ray tests run in a loopback-only network namespace (interfaces here: {here}); run: sudo "
                       "unshare -n bash -c 'ip link set lo up && RAY_USAGE_STATS_ENABLED=0 .venv/bin/python -m pytest "
                       "tests/execution' (README, Tests)")


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        skip_unless_ci("ray is not installed (pip install -e '.[ray]'; make install does it)")
    return ray


def require_ray_executor() -> None:
    """The `ray` executor is registered by harness/execution/ (issue 15)."""
    try:
        from harness.execution import EXECUTORS  # noqa: F401
    except ImportError as err:
        pytest.fail(f"harness.execution is not importable: {err}", pytrace=False)


class SessionRay:
    """The session's local Ray: started on first use, stopped when a test needs a cluster of its own."""

    def __init__(self) -> None:
        self.starts = 0

    def ensure(self) -> Any:
        require_loopback_only()
        ray = require_ray()
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if not ray.is_initialized():
            # num_cpus=2: the machine's cores. Token authentication is on by default for a local cluster in Ray
            # 2.60 (ray.init sets RAY_AUTH_MODE=token and writes ~/.ray/auth_token when absent): nothing to do here.
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
                     address="local")
            self.starts += 1
        return ray

    def stop(self) -> None:
        try:
            import ray
        except ImportError:
            return
        if ray.is_initialized():
            ray.shutdown()


@pytest.fixture(scope="session")
def session_ray() -> Iterator[SessionRay]:
    handle = SessionRay()
    yield handle
    handle.stop()


@pytest.fixture()
def ray_local(session_ray: SessionRay) -> Any:
    """The session's local Ray (ray.init(num_cpus=2)), started if it is not running; the ray module."""
    require_ray_executor()
    return session_ray.ensure()


@pytest.fixture()
def own_cluster(session_ray: SessionRay) -> Iterator[Any]:
    """A `ray.cluster_utils.Cluster` for one test: the session Ray is shut down first, the cluster after the test."""
    require_loopback_only()
    require_ray()
    require_ray_executor()
    session_ray.stop()
    from ray.cluster_utils import Cluster

    cluster = Cluster()
    try:
        yield cluster
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
