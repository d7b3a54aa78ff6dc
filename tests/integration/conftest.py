"""Session-wide servers for the integration tests: Knot DNS serving the test world, and moto.

Neither ever skips: a machine without knotd fails the suite with a message saying what to install.
(``test_harness.py`` defines module-scoped fixtures of the same names with zones of its own;
those shadow these in that module only.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack import world
from devstack.knot import KnotServer, find_knotd
from devstack.moto_server import MotoServer


@pytest.fixture(scope="session")
def knot(tmp_path_factory: pytest.TempPathFactory, keys: world.Keys) -> Iterator[KnotServer]:
    """knotd serving every zone of ``devstack/world.py`` on 127.0.0.1 and ::1."""
    if find_knotd() is None:
        pytest.fail(
            "knotd (Knot DNS) not found on PATH or in /usr/sbin: the integration tests need it "
            "(apt-get install knot); they never skip",
            pytrace=False,
        )
    with KnotServer(world.write_zone_dir(tmp_path_factory.mktemp("zones"), keys)) as server:
        yield server


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """moto's standalone server; point boto3 at it with ``aws_env(moto.endpoint_url)``."""
    with MotoServer() as server:
        yield server
