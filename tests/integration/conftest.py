"""One Ray cluster for the sweeps of a test run.

A sweep that starts its own local Ray pays about 8 s for it (``ray.init`` and its
shutdown) before and after any trial; the integration tests run about forty sweeps. Unless a
test is marked ``own_ray``, its sweeps join one single-node cluster started for the whole
run, through ``RAY_ADDRESS`` (which ``orchestrate sweep`` honours as ``ray.init()`` does):
the same trials, schedulers, searchers and tracking, minus the start-up.

``own_ray`` keeps a test on the path a user's laptop takes (the sweep starts and stops its
own Ray): the shipped smoke sweep, the kill/Ctrl-C/outage tests (a killed driver takes its
Ray down with it), the fail-fast placement check of a local Ray, the planted-secrets sweep
(it reads its Ray's logs), tests that hand a trial environment variables (a joined
cluster's workers inherit the cluster's environment, not the driver's), tests with clusters
of their own, and tests whose sweeps run inside the pytest process (one process does not
move between a local Ray and a joined one reliably).
"""

from __future__ import annotations

import os

import pytest

from tests.integration.local_ray_cluster import LocalRayCluster

# what a driver joins with (the cluster's marker variable stays out: stop() finds the
# cluster's own processes by it)
_JOIN_ENV = ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN")
_shared: LocalRayCluster | None = None
_user_env = {k: os.environ.get(k) for k in _JOIN_ENV}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "own_ray: the test's sweeps start their own local Ray, as on a laptop"
    )


def _shared_cluster() -> LocalRayCluster:
    global _shared
    if _shared is None:
        # logical CPUs are scheduling tokens: 8 fit every test's max_concurrent trials
        cluster = LocalRayCluster(head_cpus=8, worker_cpus=None, dashboard=False)
        # no token: a driver in this process (an in-process sweep) reads Ray's auth mode
        # once, when it first connects, so it could not switch to a token later; the
        # cluster serves only this test run (token auth is tested by test_launch_ray.py)
        cluster.env["RAY_AUTH_MODE"] = "disabled"
        cluster.env.pop("RAY_AUTH_TOKEN", None)
        try:
            cluster.start()
        except BaseException:
            cluster.stop()
            raise
        _shared = cluster
    return _shared


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before the test's fixtures (module-scoped ones included, which run sweeps too);
    called for the tests of this folder only."""
    if item.get_closest_marker("own_ray") is not None:
        _restore_user_env()
        return
    cluster = _shared_cluster()
    os.environ["RAY_ADDRESS"] = cluster.gcs_address
    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ.pop("RAY_AUTH_TOKEN", None)


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """After the test's fixtures: the tests after it (unit tests too) see the user's env."""
    _restore_user_env()


def _restore_user_env() -> None:
    for key, value in _user_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _restore_user_env()
    if _shared is not None:
        _shared.stop()
