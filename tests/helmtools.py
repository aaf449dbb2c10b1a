"""The Helm chart rendered with the helm that scripts/check-deploy.sh builds into .cache/bin."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
HELM = REPO / ".cache" / "bin" / "helm"
CHART = REPO / "helm" / "stream-anon"


def helm_template(*args: str) -> subprocess.CompletedProcess[str]:
    """``helm template`` of the chart (release stream-anon, namespace streaming); not checked."""
    command = [str(HELM), "template", "stream-anon", str(CHART), "--namespace", "streaming", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)


def render(*args: str) -> list[dict[str, Any]]:
    """The rendered manifests as mappings; an AssertionError with helm's message when it refuses."""
    done = helm_template(*args)
    if done.returncode != 0:
        raise AssertionError(f"helm template {' '.join(args)} failed: {done.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]
