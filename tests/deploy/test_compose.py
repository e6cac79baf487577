"""docker-compose.yml, Dockerfile and .env.example: valid, and consistent with the code they run.

No container engine runs in CI: the files are checked statically against the Compose
specification, the settings, the CLI and the routes.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

from config import Settings
from tests.deploy.deployment import (
    KNOWN_VARIABLES,
    ROOT,
    SCHEMAS,
    api_routes,
    check_command,
    flower_routes,
    hard_limits,
    seconds,
    setting_names,
)

COMPOSE = ROOT / "docker-compose.yml"
# https://github.com/compose-spec/compose-spec/blob/170098ba07d9f53c383a41bfd4c5166b0a4529a6/schema/compose-spec.json
COMPOSE_SCHEMA = SCHEMAS / "compose-spec.json"
HEALTH_ROUTES = {"api": "/readyz", "flower": "/healthcheck"}


def compose() -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe").load(COMPOSE.read_text())
    return data


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def argv(value: str | list[str]) -> list[str]:
    return shlex.split(value) if isinstance(value, str) else list(value)


def interpolated(value: str) -> str:
    """``${NAME:-default}`` as Compose resolves it with nothing set."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)


def test_the_file_follows_the_compose_specification() -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker()).validate(compose())


def test_the_whole_stack_is_there() -> None:
    assert {"redis", "api", "worker", "beat", "flower"} <= set(services())
    for name, service in services().items():
        assert service.get("restart") in ("unless-stopped", "always"), name
        assert "healthcheck" in service, name


@pytest.mark.parametrize("name", ["api", "worker", "beat", "flower"])
def test_each_command_is_one_of_our_entry_points(name: str) -> None:
    service = services()[name]
    check_command(argv(service["command"]))
    test = argv(service["healthcheck"]["test"])
    kind, rest = test[0], test[1:]
    if kind == "CMD-SHELL":
        rest = shlex.split(rest[0].split("|")[0].split(">")[0])
    check_command([part.replace("$$", "$") for part in rest])


@pytest.mark.parametrize("name", ["api", "worker", "beat", "flower"])
def test_every_orch_variable_is_a_setting_and_the_settings_load(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {key: interpolated(str(value)) for key, value in services()[name]["environment"].items()}
    unknown = {key for key in env if key.startswith("ORCH_")} - KNOWN_VARIABLES
    assert not unknown, f"{name}: not settings: {sorted(unknown)}"
    for key in list(os.environ):
        if key.startswith("ORCH_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.key_prefix == "orch"
    assert settings.broker_url and f"redis://{name}:" in settings.broker_url  # its own Redis user


@pytest.mark.parametrize("name", sorted(HEALTH_ROUTES))
def test_healthchecks_hit_the_port_the_service_listens_on(name: str) -> None:
    service = services()[name]
    command = argv(service["command"])
    port = command[command.index("--port") + 1]
    check = " ".join(argv(service["healthcheck"]["test"]))
    assert f"http://127.0.0.1:{port}{HEALTH_ROUTES[name]}" in check
    published = [str(p).rsplit(":", 1)[-1] for p in service["ports"]]
    assert published == [port]
    assert {"0.0.0.0", "--address=0.0.0.0"} & set(command), f"{name} listens on loopback only inside its container"


def test_the_routes_the_healthchecks_use_exist() -> None:
    assert HEALTH_ROUTES["api"] in api_routes()
    assert HEALTH_ROUTES["flower"] in flower_routes()


def test_flowers_unauthenticated_endpoints_stay_on_loopback() -> None:
    # Flower serves /metrics and /healthcheck without basic auth.
    for port in services()["flower"]["ports"]:
        assert str(port).startswith("127.0.0.1:"), port


def test_the_worker_outlives_its_longest_step_on_sigterm() -> None:
    worker = services()["worker"]
    env = {key: interpolated(str(value)) for key, value in worker["environment"].items()}
    grace = seconds(worker["stop_grace_period"])
    longest = max(hard_limits().values())
    assert grace > longest >= Settings(_env_file=None).defaults.timeout  # type: ignore[call-arg]
    assert worker.get("stop_signal", "SIGTERM") == "SIGTERM"  # Celery's warm shutdown
    assert float(env["ORCH_WORKER__VISIBILITY_TIMEOUT"]) > longest
    assert env.get("ORCH_WORKER__PREFETCH_MULTIPLIER", "1") == "1"
    assert "deploy" not in worker or "replicas" not in worker["deploy"]  # `--scale worker=N` decides


def test_exactly_one_beat() -> None:
    assert services()["beat"]["deploy"]["replicas"] == 1


def test_redis_keeps_an_append_only_file_and_loads_the_acl_file() -> None:
    redis = services()["redis"]
    command = argv(redis["command"])
    assert command[command.index("--appendonly") + 1] == "yes"
    acl = command[command.index("--aclfile") + 1]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in redis["volumes"]}
    assert Path(ROOT, mounts[acl]).resolve() == ROOT / "deploy" / "redis" / "users.acl"
    assert mounts[command[command.index("--dir") + 1]] in compose()["volumes"]  # a named volume
    assert "ports" not in redis  # reachable on the internal network only


def test_each_component_uses_its_own_user_from_the_acl_file() -> None:
    users = {line.split()[1]: line for line in (ROOT / "deploy/redis/users.acl").read_text().splitlines() if line}
    for name in ("api", "worker", "beat", "flower"):
        env = services()[name]["environment"]
        for key in ("ORCH_BROKER_URL", "ORCH_STORE_URL"):
            url = interpolated(env[key])
            user, password = re.match(r"redis://([^:]+):([^@]+)@", url).groups()  # type: ignore[union-attr]
            assert user == name and f">{password} " in users[user], (name, key)


def test_env_example_documents_every_setting() -> None:
    text = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*(ORCH_[A-Z0-9_]+)=", text, flags=re.MULTILINE))
    missing = sorted(set(setting_names()) - documented)
    assert not missing, f".env.example lacks {missing}"
    assert not sorted(documented - KNOWN_VARIABLES), "documents settings that do not exist"


def test_the_dockerfile_installs_the_lock_as_a_non_root_user_without_secrets() -> None:
    text = (ROOT / "Dockerfile").read_text()
    instructions = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert any("uv sync --frozen" in line for line in instructions)
    assert any(line.startswith("COPY") and "uv.lock" in line for line in instructions)
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    baked = [line for line in instructions if re.match(r"(ENV|ARG)\b", line)]
    secret = re.compile(r"(PASSWORD|SECRET|TOKEN|DSN|BASIC_AUTH|API_KEY|redis://[^ ]*@)", re.IGNORECASE)
    assert not [line for line in baked if secret.search(line)]
    assert not re.search(r"COPY[^\n]*\.env\b", text)
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ".env" in ignored and ".git" in ignored and ".venv" in ignored
