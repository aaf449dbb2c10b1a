from __future__ import annotations

import sys
from pathlib import Path

import pytest

# tests import their shared helpers (kafkatools) as top-level modules
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def broker() -> str:
    """The real local broker's bootstrap address; fails loudly when it is not running."""
    from confluent_kafka.admin import AdminClient
    from kafkatools import BOOTSTRAP

    try:
        AdminClient({"bootstrap.servers": BOOTSTRAP}).list_topics(timeout=15)
    except Exception as exc:  # pragma: no cover - the message is the point
        pytest.fail(f"no Kafka broker at {BOOTSTRAP} ({exc}); start one with scripts/kafka.sh start")
    return BOOTSTRAP


@pytest.fixture(scope="session")
def registry() -> str:
    """The real Schema Registry's client URL (scripts/registry.sh); fails loudly when it does not answer."""
    from registrytools import REGISTRY_URL, client

    try:
        client().get_subjects()
    except Exception as exc:  # pragma: no cover - the message is the point
        pytest.fail(f"no Schema Registry at {REGISTRY_URL} ({exc}); start one with scripts/registry.sh start")
    return REGISTRY_URL
