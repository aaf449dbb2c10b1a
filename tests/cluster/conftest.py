"""The cluster tests share one three-node cluster: started here when none runs, stopped at the end only if
this session started it (a developer's running cluster is left running)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# clusterkit imports as a top-level module under any import mode (tests/conftest.py adds tests/ itself)
sys.path.insert(0, str(Path(__file__).resolve().parent))

from clusterkit import SCRIPT


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.cluster)
            item.add_marker(pytest.mark.slow)  # minutes, and a three-node cluster: not in the quick suite


@pytest.fixture(scope="session", autouse=True)
def cluster() -> Iterator[None]:
    # autouse in this directory only: a session without cluster tests never starts the cluster
    running = subprocess.run([str(SCRIPT), "status"], capture_output=True, check=False).returncode == 0
    if not running:
        started = subprocess.run([str(SCRIPT), "start"], check=False)
        if started.returncode != 0:
            pytest.fail("scripts/kafka.sh start --cluster failed (output above)")
    try:
        yield
    finally:
        if not running:
            subprocess.run([str(SCRIPT), "stop"], check=False)
