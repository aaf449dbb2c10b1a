"""Offline checks of the deployment files, called by scripts/check-deploy.sh.

  manifests FILE --expect KIND ...   rendered Helm output: Kubernetes schemas (kubernetes-validate, strict),
                                     structural checks of the CRDs, and the chart's promises (probes,
                                     securityContext, mounts, a config.yaml the worker accepts)
  compose FILE                       docker-compose.test.yml: the compose-spec JSON schema and the wiring
  lock                               print requirements.lock from the packages installed in this venv
  lock-check FILE                    pip resolves FILE for the image's platform to exactly its own pins

Each check prints what it verified; any failure is listed and the exit status is 1.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import re
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
WORKER_PROBES = {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"}
# Kinds the Kubernetes schemas do not carry (custom resources), checked structurally here instead.
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("keda.sh/v1alpha1", "ScaledObject")}
# pip's --platform takes exact tags: the image's glibc (Debian bookworm, 2.36) runs every older manylinux.
IMAGE_PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in (5, 12, *range(17, 37))] + [
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
]
# The venv's setuptools is the old copy ensurepip bundles with Python 3.11; only spaCy's `package`
# command imports it, so the image gets a current one.
LOCK_OVERRIDES = {"setuptools": "84.2.1"}
LOCK_HEADER = """\
# Runtime dependencies of the stream-anon container image, pinned: the closure of pyproject.toml's
# [project] dependencies as installed and tested in the development virtualenv (Python 3.11, Linux).
# The Dockerfile installs exactly these, then stream-anon itself with --no-deps.
# Regenerate after changing dependencies: .venv/bin/python scripts/check_deploy.py lock > requirements.lock
# scripts/check-deploy.sh checks that pip resolves this file plus the project to exactly these pins.
"""


class Problems:
    """Collects failures so one run reports all of them."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")

    def expect(self, condition: bool, where: str, message: str) -> None:
        if not condition:
            self.add(where, message)


def ident(doc: dict[str, Any]) -> str:
    return f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


# --- rendered manifests -------------------------------------------------------------------------


def pod_templates(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        yield doc["spec"]["template"]
    elif doc["kind"] == "CronJob":
        yield doc["spec"]["jobTemplate"]["spec"]["template"]


def check_schemas(docs: list[dict[str, Any]], versions: list[str], problems: Problems) -> None:
    import kubernetes_validate

    for doc in docs:
        if (doc.get("apiVersion"), doc.get("kind")) in CUSTOM_KINDS:
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = "/".join(str(p) for p in exc.path)
                problems.add(f"{ident(doc)} (Kubernetes {version})", f"{path}: {exc.message}")
            except kubernetes_validate.SchemaNotFoundError as exc:
                problems.add(ident(doc), exc.message)


def check_custom_resources(docs: list[dict[str, Any]], problems: Problems) -> None:
    deployments = {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"}
    services = [d for d in docs if d["kind"] == "Service"]
    for doc in docs:
        where, spec = ident(doc), doc.get("spec") or {}
        if doc["kind"] == "ScaledObject":
            problems.expect(
                spec.get("scaleTargetRef", {}).get("name") in deployments,
                where,
                "scaleTargetRef does not name a rendered Deployment",
            )
            low, high = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
            problems.expect(isinstance(low, int) and isinstance(high, int) and low <= high, where, "replicas")
            triggers = spec.get("triggers") or []
            problems.expect(bool(triggers), where, "no triggers")
            for trigger in triggers:
                metadata = trigger.get("metadata") or {}
                problems.expect(trigger.get("type") == "kafka", where, "trigger type is not kafka")
                for key in ("bootstrapServers", "consumerGroup", "lagThreshold"):
                    problems.expect(key in metadata, where, f"kafka trigger without {key}")
                # KEDA decodes trigger metadata as a map of strings: a bare number is rejected.
                for key, value in metadata.items():
                    problems.expect(isinstance(value, str), where, f"trigger metadata {key} is not a string")
                ref = trigger.get("authenticationRef")
                problems.expect(ref is None or bool(ref.get("name")), where, "authenticationRef without name")
        elif doc["kind"] == "ServiceMonitor":
            selector = spec.get("selector", {}).get("matchLabels", {})
            matched = [s for s in services if selects(selector, s["metadata"].get("labels", {}))]
            problems.expect(bool(matched), where, "selector matches no rendered Service")
            port_names = {p.get("name") for s in matched for p in s["spec"]["ports"]}
            for endpoint in spec.get("endpoints") or [{}]:
                problems.expect(endpoint.get("port") in port_names, where, "endpoint port is no Service port")
                problems.expect(endpoint.get("path") == "/metrics", where, "endpoint path is not /metrics")


def check_pod(where: str, template: dict[str, Any], problems: Problems) -> dict[str, dict[str, Any]]:
    """Security context, mounts and volumes of one pod template; returns the volumes by name."""
    spec = template["spec"]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    pod_security = spec.get("securityContext") or {}
    problems.expect(pod_security.get("runAsNonRoot") is True, where, "pod securityContext.runAsNonRoot")
    containers = spec.get("initContainers", []) + spec["containers"]
    for container in containers:
        cwhere = f"{where} container {container['name']}"
        security = container.get("securityContext") or {}
        problems.expect(security.get("allowPrivilegeEscalation") is False, cwhere, "allowPrivilegeEscalation")
        problems.expect(security.get("readOnlyRootFilesystem") is True, cwhere, "readOnlyRootFilesystem")
        problems.expect(security.get("privileged") in (None, False), cwhere, "privileged")
        problems.expect("ALL" in (security.get("capabilities") or {}).get("drop", []), cwhere, "drop ALL")
        problems.expect(
            container.get("resources", {}).get("limits") is not None, cwhere, "no resource limits"
        )
        for mount in container.get("volumeMounts", []):
            problems.expect(mount["name"] in volumes, cwhere, f"mount of undefined volume {mount['name']}")
        for env in container.get("env", []):
            problems.expect(
                "secretKeyRef" not in (env.get("valueFrom") or {}), cwhere, f"secret in env {env['name']}"
            )
    app = spec["containers"][0]
    tmp = [m for m in app.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
    problems.expect(
        len(tmp) == 1 and "emptyDir" in volumes.get(tmp[0]["name"], {}), where, "/tmp is not an emptyDir"
    )
    return volumes


def mounted(path: str, container: dict[str, Any]) -> bool:
    for mount in container.get("volumeMounts", []):
        base = mount["mountPath"].rstrip("/")
        if path == base or path.startswith(base + "/"):
            return True
    return False


def check_config(
    where: str, config_text: str, container: dict[str, Any], grace: int | None, problems: Problems
) -> None:
    """The rendered config.yaml: accepted by the worker's Settings, its files mounted, the grace period."""
    sys.path.insert(0, str(REPO))
    from stream_anon.config import ConfigError, load_settings

    config = yaml.safe_load(config_text)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(config_text, encoding="utf-8")
        try:
            settings = load_settings(path)
        except ConfigError as exc:
            problems.add(where, f"the worker refuses config.yaml: {exc}")
            return
    for key in ("schemas_dir", "keys_file", "tag_policy_file", "kafka_secrets_file"):
        if config.get(key):
            problems.expect(mounted(config[key], container), where, f"{key} {config[key]} is not mounted")
    ca = (config.get("kafka") or {}).get("ssl.ca.location")
    if ca:
        problems.expect(mounted(ca, container), where, f"kafka ssl.ca.location {ca} is not mounted")
    problems.expect(
        grace is not None and grace > settings.shutdown_timeout_s,
        where,
        f"terminationGracePeriodSeconds {grace} <= shutdown_timeout_s {settings.shutdown_timeout_s}",
    )
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    if ports:  # the worker's; the audit serves nothing
        problems.expect(ports.get("metrics") == settings.metrics_port, where, "metrics port != metrics_port")


def lint_schemas(where: str, files: dict[str, str], problems: Problems) -> None:
    """The schemas the chart ships compile with the worker's rule engine (`stream-anon lint`)."""
    if not files:
        return
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in files.items():
            (Path(tmp) / name).write_text(text, encoding="utf-8")
        done = subprocess.run(
            [str(Path(sys.executable).parent / "stream-anon"), "lint", tmp],
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        problems.add(where, f"stream-anon lint failed: {done.stdout.strip()} {done.stderr.strip()}")


def check_workloads(docs: list[dict[str, Any]], problems: Problems) -> None:
    config_maps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    secrets = {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"}
    for doc in docs:
        for template in pod_templates(doc):
            where = ident(doc)
            volumes = check_pod(where, template, problems)
            container = template["spec"]["containers"][0]
            for volume in volumes.values():
                if "configMap" in volume:
                    cm_name = volume["configMap"]["name"]
                    problems.expect(cm_name in config_maps, where, f"ConfigMap {cm_name} is not rendered")
                if "secret" in volume and volume["secret"]["secretName"] not in secrets:
                    print(f"  note: {where} mounts Secret {volume['secret']['secretName']}, created outside")
            config_volume = volumes.get("config", {}).get("configMap", {}).get("name")
            if config_volume in config_maps:
                grace = template["spec"].get("terminationGracePeriodSeconds")
                if doc["kind"] == "CronJob":
                    grace = 45 if grace is None else grace  # the audit has no shutdown bound of its own
                text = config_maps[config_volume]["data"]["config.yaml"]
                check_config(where, text, container, grace, problems)
            else:
                problems.add(where, "no config ConfigMap mounted")
            if doc["kind"] == "Deployment":
                check_worker(doc, template, problems)


def check_worker(doc: dict[str, Any], template: dict[str, Any], problems: Problems) -> None:
    where = ident(doc)
    container = template["spec"]["containers"][0]
    problems.expect(
        container.get("args", [])[:1] == ["run"], where, "the worker container does not run `stream-anon run`"
    )
    for probe, path in WORKER_PROBES.items():
        http = (container.get(probe) or {}).get("httpGet", {})
        problems.expect(http.get("path") == path, where, f"{probe} is not an HTTP GET of {path}")
        problems.expect(http.get("port") == "metrics", where, f"{probe} is not on the metrics port")
    problems.expect(
        any(p.get("name") == "metrics" for p in container.get("ports", [])), where, "no port named metrics"
    )
    env = {e["name"]: e for e in container.get("env", [])}
    problems.expect(
        "$(POD_NAME)" in env.get("STREAM_ANON_TRANSACTIONAL_ID", {}).get("value", ""),
        where,
        "transactional_id is not set from the pod name",
    )
    annotations = template["metadata"].get("annotations", {})
    problems.expect("checksum/config" in annotations, where, "no checksum/config annotation")
    affinity = template["spec"].get("affinity", {})
    problems.expect("podAntiAffinity" in affinity, where, "no pod anti-affinity")


def check_selectors(docs: list[dict[str, Any]], problems: Problems) -> None:
    worker_labels = [
        t["metadata"]["labels"] for d in docs if d["kind"] == "Deployment" for t in pod_templates(d)
    ]
    all_labels = [t["metadata"]["labels"] for d in docs for t in pod_templates(d)]
    for doc in docs:
        where, spec = ident(doc), doc.get("spec") or {}
        if doc["kind"] == "Service":
            problems.expect(
                any(selects(spec["selector"], labels) for labels in worker_labels), where, "selects no worker"
            )
        elif doc["kind"] == "PodDisruptionBudget":
            selector = spec["selector"]["matchLabels"]
            problems.expect(any(selects(selector, lab) for lab in worker_labels), where, "selects no worker")
        elif doc["kind"] == "NetworkPolicy":
            selector = spec["podSelector"]["matchLabels"]
            problems.expect(
                all(selects(selector, labels) for labels in all_labels), where, "misses a pod of the chart"
            )


def validate_manifests(path: Path, versions: list[str], expected: list[str]) -> list[str]:
    problems = Problems()
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    for doc in docs:
        name = (doc.get("metadata") or {}).get("name", "")
        problems.expect(bool(NAME.match(name)) and len(name) <= 63, ident(doc), "invalid or missing name")
    kinds = sorted(d["kind"] for d in docs)
    for kind in expected:
        problems.expect(kind in kinds, str(path.name), f"no {kind} rendered")
    check_schemas(docs, versions, problems)
    check_custom_resources(docs, problems)
    check_workloads(docs, problems)
    check_selectors(docs, problems)
    for doc in docs:
        if (
            doc["kind"] == "ConfigMap"
            and doc["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "schemas"
        ):
            lint_schemas(ident(doc), doc.get("data") or {}, problems)
    custom = sorted(ident(d) for d in docs if (d.get("apiVersion"), d.get("kind")) in CUSTOM_KINDS)
    structural = ", ".join(custom) or "no CRD"
    print(
        f"  {path.name}: {len(docs)} manifests ({', '.join(kinds)}); Kubernetes {', '.join(versions)} "
        f"schemas (strict) for {len(docs) - len(custom)}; structural checks for {structural}"
    )
    return problems.items


# --- compose ------------------------------------------------------------------------------------


def compose_schema() -> dict[str, Any]:
    from importlib.resources import files

    resource = files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    return json.loads(resource.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def depends(service: dict[str, Any]) -> dict[str, str]:
    value = service.get("depends_on") or {}
    if isinstance(value, list):
        return dict.fromkeys(value, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in value.items()}


def validate_compose(path: Path) -> list[str]:
    import jsonschema

    problems = Problems()
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    for error in validator.iter_errors(document):
        problems.add(f"{path.name} {'/'.join(str(p) for p in error.path)}", error.message)
    problems.items += check_compose_wiring(document, path.parent)
    print(
        f"  {path.name}: compose-spec schema, {len(document.get('services') or {})} services "
        f"({', '.join(document.get('services') or {})}), depends_on targets, conditions and cycles, "
        "pinned images, build context, worker config vs Settings"
    )
    return problems.items


def check_compose_wiring(document: dict[str, Any], base: Path) -> list[str]:
    """What the schema cannot see: references between services, pinned images, the worker's config."""
    problems = Problems()
    services: dict[str, Any] = document.get("services") or {}
    volumes, configs = document.get("volumes") or {}, document.get("configs") or {}
    for name, service in services.items():
        where = f"service {name}"
        image, build = service.get("image"), service.get("build")
        problems.expect(bool(image or build), where, "neither image nor build")
        if image and not build:
            tag = image.rsplit("/", 1)[-1]
            problems.expect(":" in tag and not tag.endswith(":latest"), where, f"image {image} is not pinned")
        if build:
            context = base / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            problems.expect((context / dockerfile).is_file(), where, f"no {dockerfile} in {context}")
        for target, condition in depends(service).items():
            problems.expect(target in services, where, f"depends on undefined service {target}")
            other = services.get(target) or {}
            if condition == "service_healthy":
                problems.expect("healthcheck" in other, where, f"waits for {target} healthy: no healthcheck")
            if condition == "service_completed_successfully":
                problems.expect(
                    other.get("restart", "no") == "no", where, f"waits for {target} to finish: it restarts"
                )
        for mount in service.get("volumes") or []:
            source = mount.split(":", 1)[0] if isinstance(mount, str) else mount.get("source")
            if source and not source.startswith((".", "/")):
                problems.expect(source in volumes, where, f"named volume {source} is not declared")
        for config in service.get("configs") or []:
            source = config if isinstance(config, str) else config.get("source")
            problems.expect(source in configs, where, f"config {source} is not declared")
    # The dependency graph must be acyclic, or `up` never starts anything.
    state: dict[str, int] = {}

    def visit(name: str) -> bool:
        if state.get(name) == 1:
            return False
        if state.get(name) == 2:
            return True
        state[name] = 1
        ok = all(visit(t) for t in depends(services.get(name) or {}) if t in services)
        state[name] = 2
        return ok

    problems.expect(
        all(visit(n) for n in services), "depends_on", "the services depend on each other in a cycle"
    )
    # The worker's configuration, inline in the file, must be one the worker accepts.
    for name, config in configs.items():
        if name.endswith("config") and "content" in config:
            sys.path.insert(0, str(REPO))
            from stream_anon.config import ConfigError, load_settings

            with tempfile.TemporaryDirectory() as tmp:
                file = Path(tmp) / "config.yaml"
                file.write_text(config["content"], encoding="utf-8")
                try:
                    load_settings(file)
                except ConfigError as exc:
                    problems.add(f"config {name}", f"the worker refuses it: {exc}")
    return problems.items


# --- the image's lock ---------------------------------------------------------------------------


def runtime_closure() -> dict[str, str]:
    """Every distribution the project's runtime dependencies pull in, with the installed version."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    pending = [Requirement(r) for r in pyproject["project"]["dependencies"]]
    found: dict[str, tuple[str, set[str]]] = {}
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        known = found.get(name)
        if known is not None and set(requirement.extras) <= known[1]:
            continue
        extras = set(requirement.extras) | (known[1] if known else set())
        distribution = importlib.metadata.distribution(name)
        found[name] = (distribution.version, extras)
        for text in distribution.requires or []:
            child = Requirement(text)
            environments = [{"extra": e} for e in extras] or [{"extra": ""}]
            if child.marker is None or any(child.marker.evaluate(env) for env in environments):
                pending.append(child)
    return {name: LOCK_OVERRIDES.get(name, version) for name, (version, _) in sorted(found.items())}


def read_lock(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def check_lock(path: Path) -> list[str]:
    pins = read_lock(path)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
        command += ["--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp"]
        command += ["--abi", "cp311", "--target", str(Path(tmp) / "target"), "--report", str(report)]
        for platform in IMAGE_PLATFORMS:
            command += ["--platform", platform]
        done = subprocess.run([*command, "--requirement", str(path)], capture_output=True, text=True)
        if done.returncode != 0:
            return [f"{path.name}: pip cannot install it for the image: {done.stderr.strip()[-2000:]}"]
        resolved = {
            item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"]
            for item in json.loads(report.read_text(encoding="utf-8"))["install"]
        }
    normalized = {k.replace("_", "-"): v for k, v in pins.items()}
    problems = [
        f"{path.name}: pip adds {n}=={v}: not pinned" for n, v in resolved.items() if n not in normalized
    ]
    problems += [
        f"{path.name}: {n} resolved to {resolved[n]}, pinned {v}"
        for n, v in normalized.items()
        if n in resolved and resolved[n] != v
    ]
    print(f"  {path.name}: {len(resolved)} pinned wheels resolve for cp311 manylinux x86_64, nothing added")
    return problems


# --- entry point --------------------------------------------------------------------------------


def report(problems: Iterable[str]) -> int:
    items = list(problems)
    for item in items:
        print(f"  FAIL {item}")
    return 1 if items else 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    manifests = commands.add_parser("manifests")
    manifests.add_argument("file", type=Path)
    manifests.add_argument("--kube-version", action="append", required=True)
    manifests.add_argument("--expect", nargs="*", default=[])
    compose = commands.add_parser("compose")
    compose.add_argument("file", type=Path)
    commands.add_parser("lock")
    lock_check = commands.add_parser("lock-check")
    lock_check.add_argument("file", type=Path)
    args = parser.parse_args()
    if args.command == "manifests":
        return report(validate_manifests(args.file, args.kube_version, args.expect))
    if args.command == "compose":
        return report(validate_compose(args.file))
    if args.command == "lock-check":
        return report(check_lock(args.file))
    print(LOCK_HEADER, end="")
    for name, version in runtime_closure().items():
        print(f"{name}=={version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
