"""Runs the Helm chart's pods with podman, the way the kubelet would run them.

The chart is rendered with helm; a pod template (the Deployment's or the audit CronJob's) is turned into
``podman run`` commands: the containers' security context (user and group, fsGroup as a supplementary
group, read-only root filesystem with nothing else writable, dropped capabilities, no privilege
escalation), the memory limit, the environment (fieldRef and ``$(VAR)`` references resolved), command and
args over the image's ENTRYPOINT and CMD, and the volumes: the rendered ConfigMaps and Secrets written to
files with the modes and group Kubernetes gives them, emptyDirs as directories the pod's containers share.
Init containers run first and must succeed. The network is the host's (the broker on 127.0.0.1).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helmtools import REPO, render

IMAGE_WORK = REPO / ".cache" / "image"


def podman_env() -> dict[str, str]:
    """The environment pointing podman at scripts/build-image.sh's configuration and storage."""
    return {
        **os.environ,
        "CONTAINERS_CONF": str(IMAGE_WORK / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(IMAGE_WORK / "storage.conf"),
    }


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["podman", *args], env=podman_env(), capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")
    return result


def render_chart(values: Path, *set_files: str) -> list[dict[str, Any]]:
    """``helm template`` of the chart with a values file; the manifests as mappings."""
    return render("-f", str(values), *[arg for item in set_files for arg in ("--set-file", item)])


def memory_quantity(value: str) -> str:
    """A Kubernetes memory quantity (512Mi, 1Gi, 1G, bytes) in podman's --memory syntax (bytes)."""
    match = re.fullmatch(r"(\d+)([KMGT]i?)?", value)
    if not match:
        raise ValueError(f"unsupported memory quantity {value!r}")
    number, unit = int(match.group(1)), match.group(2) or ""
    power = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4}[unit[:1]]
    base = 1024 if unit.endswith("i") else 1000
    return f"{number * base**power}b"


@dataclass
class Pod:
    """One pod of a rendered workload: its host-side volumes and the podman commands of its containers."""

    name: str
    spec: dict[str, Any]
    workdir: Path
    configmaps: Mapping[str, Mapping[str, str]]
    secrets: Mapping[str, Mapping[str, bytes]]
    volume_paths: dict[str, Path] = field(default_factory=dict)
    started: list[str] = field(default_factory=list)

    @classmethod
    def from_manifests(cls, manifests: list[dict[str, Any]], kind: str, workdir: Path, name: str) -> Pod:
        (workload,) = [m for m in manifests if m["kind"] == kind]
        template = workload["spec"]["template"] if kind != "CronJob" else None
        if template is None:
            template = workload["spec"]["jobTemplate"]["spec"]["template"]
        configmaps = {m["metadata"]["name"]: m.get("data", {}) for m in manifests if m["kind"] == "ConfigMap"}
        secrets = {
            m["metadata"]["name"]: {
                **{k: base64.b64decode(v) for k, v in m.get("data", {}).items()},
                **{k: v.encode() for k, v in m.get("stringData", {}).items()},
            }
            for m in manifests
            if m["kind"] == "Secret"
        }
        pod = cls(name, template["spec"], workdir, configmaps, secrets)
        pod._materialize_volumes()
        return pod

    @property
    def security(self) -> dict[str, Any]:
        return dict(self.spec.get("securityContext") or {})

    @property
    def grace_period_s(self) -> int:
        return int(self.spec.get("terminationGracePeriodSeconds", 30))

    def container(self, name: str) -> dict[str, Any]:
        for c in self.spec.get("initContainers", []) + self.spec["containers"]:
            if c["name"] == name:
                return dict(c)
        raise KeyError(name)

    def _materialize_volumes(self) -> None:
        fs_group = self.security.get("fsGroup")
        for volume in self.spec.get("volumes", []):
            path = self.workdir / self.name / volume["name"]
            path.mkdir(parents=True)
            self.volume_paths[volume["name"]] = path
            if "configMap" in volume:
                source = volume["configMap"]
                files = {k: v.encode() for k, v in self.configmaps[source["name"]].items()}
            elif "secret" in volume:
                source = volume["secret"]
                files = dict(self.secrets[source["secretName"]])
            elif "emptyDir" in volume:
                # The kubelet makes an emptyDir world-writable, group fsGroup with the setgid bit.
                os.chown(path, 0, fs_group if fs_group is not None else 0)
                path.chmod(0o2777 if fs_group is not None else 0o777)
                continue
            else:
                raise ValueError(f"volume kind not emulated: {volume}")
            items = source.get("items") or [{"key": k, "path": k} for k in files]
            mode = source.get("defaultMode", 0o644)
            for item in items:
                target = path / item["path"]
                target.write_bytes(files[item["key"]])
                # Owned by root; with fsGroup, group fsGroup (readable through the group bits of the mode).
                os.chown(target, 0, fs_group if fs_group is not None else 0)
                target.chmod(item.get("mode", mode))
            path.chmod(0o755)

    def _environment(self, container: Mapping[str, Any]) -> list[str]:
        values: dict[str, str] = {}
        for entry in container.get("env", []):
            if "value" in entry:
                # $(VAR) names an earlier variable of the container, as Kubernetes expands it.
                value = re.sub(r"\$\((\w+)\)", lambda m: values.get(m.group(1), m.group(0)), entry["value"])
            else:
                ref = entry["valueFrom"]["fieldRef"]["fieldPath"]
                value = {"metadata.name": self.name, "metadata.namespace": "streaming"}[ref]
            values[entry["name"]] = value
        return [f"{k}={v}" for k, v in values.items()]

    def run_command(self, container: Mapping[str, Any], image: str, *, detach: bool) -> list[str]:
        """The ``podman run`` arguments of a container of this pod."""
        security = {**self.security, **(container.get("securityContext") or {})}
        user, group = security.get("runAsUser"), security.get("runAsGroup")
        if security.get("runAsNonRoot") and not user:
            raise AssertionError(f"{container['name']}: runAsNonRoot without a non-zero runAsUser")
        name = f"{self.name}-{container['name']}"
        args = ["run", "--name", name, "--network", "host", "--pull", "never"]
        args += ["--detach"] if detach else []
        if user is not None:
            args += ["--user", f"{user}:{group if group is not None else user}"]
        if self.security.get("fsGroup") is not None:
            args += ["--group-add", str(self.security["fsGroup"])]
        if security.get("readOnlyRootFilesystem"):
            # Only the pod's volumes are writable: podman would add tmpfs on /tmp, /run and /var/tmp.
            args += ["--read-only", "--read-only-tmpfs=false"]
        for cap in security.get("capabilities", {}).get("drop", []):
            args += ["--cap-drop", cap]
        for cap in security.get("capabilities", {}).get("add", []):
            args += ["--cap-add", cap]
        if security.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        if security.get("privileged"):
            args += ["--privileged"]
        limit = container.get("resources", {}).get("limits", {}).get("memory")
        if limit:
            args += ["--memory", memory_quantity(str(limit))]
        for variable in self._environment(container):
            args += ["--env", variable]
        for mount in container.get("volumeMounts", []):
            source = self.volume_paths[mount["name"]]
            if mount.get("subPath"):
                source = source / mount["subPath"]
            args += ["--volume", f"{source}:{mount['mountPath']}:{'ro' if mount.get('readOnly') else 'rw'}"]
        if "command" in container:
            args += ["--entrypoint", json.dumps(container["command"])]
        return [*args, image, *container.get("args", [])]

    def run(
        self, container: Mapping[str, Any], image: str, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Runs a container to completion (an init container, a Job's container); kept for its logs."""
        self.started.append(f"{self.name}-{container['name']}")
        return podman(*self.run_command(container, image, detach=False), timeout=timeout, check=False)

    def start(self, container: Mapping[str, Any], image: str) -> str:
        name = f"{self.name}-{container['name']}"
        self.started.append(name)
        podman(*self.run_command(container, image, detach=True))
        return name

    def run_init_containers(self, image: str) -> None:
        for init in self.spec.get("initContainers", []):
            result = self.run(init, image)
            assert result.returncode == 0, f"init container {init['name']} failed: {result.stderr}"

    def stop(self, container: str) -> tuple[int, float]:
        """SIGTERM, then SIGKILL after the pod's grace period; the exit code and the seconds it took."""
        started = time.monotonic()
        podman(
            "stop",
            "--time",
            str(self.grace_period_s),
            f"{self.name}-{container}",
            timeout=self.grace_period_s + 60,
        )
        elapsed = time.monotonic() - started
        code = podman("inspect", "--format", "{{.State.ExitCode}}", f"{self.name}-{container}").stdout.strip()
        return int(code), elapsed

    def logs(self, container: str) -> str:
        result = podman("logs", f"{self.name}-{container}", check=False)
        return result.stdout + result.stderr

    def remove(self) -> None:
        for name in self.started:
            podman("rm", "--force", "--time", "0", name, check=False)
        shutil.rmtree(self.workdir / self.name, ignore_errors=True)
