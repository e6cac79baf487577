"""What the deployment files are checked against: setting names, entry points, step time limits, queues."""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from pydantic import BaseModel

from config import Settings
from orchestrator.definition.loader import load_file
from orchestrator.plan.compiler import compile_workflow
from orchestrator.plan.policy import base_policy

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = Path(__file__).parent / "schemas"
EXAMPLES = ROOT / "examples"
DURATION = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")
UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def setting_names(model: type[BaseModel] = Settings, prefix: str = "ORCH_") -> Iterator[str]:
    """Every environment variable :class:`config.Settings` reads, nested groups included."""
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from setting_names(annotation, f"{prefix}{name.upper()}__")
        else:
            yield f"{prefix}{name.upper()}"


KNOWN_VARIABLES = {*setting_names(), "ORCH_SECRETS_DIR"}


def cli_commands() -> set[str]:
    """The ``orchestrator`` subcommands of the typer app."""
    from orchestrator.cli.main import app

    group = typer.main.get_command(app)
    return set(group.commands)  # type: ignore[attr-defined]


def celery_app_imports(path: str) -> bool:
    """Whether ``celery -A path`` finds an app (``module`` or ``module:attribute``)."""
    module, _, attribute = path.partition(":")
    loaded = importlib.import_module(module)
    return hasattr(loaded, attribute or "app")


def check_command(command: list[str]) -> None:
    """Raise AssertionError unless ``command`` starts one of our entry points."""
    program, *args = command
    if program == "orchestrator":
        assert args and args[0] in cli_commands(), f"{command}: no such orchestrator command"
    elif program == "celery":
        assert args[:1] == ["-A"] and celery_app_imports(args[1]), f"{command}: the app does not import"
    elif program == "python":
        assert args[:1] == ["-c"], command
        compile(args[1], "<healthcheck>", "exec")
    else:
        raise AssertionError(f"{command}: not one of our entry points")


def seconds(value: Any) -> float:
    """A Compose/Kubernetes duration (``4h5m``, ``90s``) or a number of seconds."""
    if isinstance(value, int | float):
        return float(value)
    parts = DURATION.findall(str(value))
    assert parts and "".join(n + u for n, u in parts) == str(value), f"not a duration: {value!r}"
    return sum(float(n) * UNITS[u] for n, u in parts)


def hard_limits(workflows_dir: Path = EXAMPLES) -> dict[str, float]:
    """queue -> the longest hard time limit of any step sent to it (the settings' default included)."""
    settings = Settings()
    default_hard = base_policy_limit(settings)
    limits: dict[str, float] = {settings.defaults.queue: default_hard}
    for path in sorted(workflows_dir.glob("*.y*ml")) + sorted(workflows_dir.glob("*.json")):
        plan = compile_workflow(load_file(path), base_policy(settings.defaults))
        for step in plan.steps.values():
            hard = step.policy.time_limits()[1] or 0.0
            limits[step.policy.queue] = max(limits.get(step.policy.queue, 0.0), hard)
    return limits


def base_policy_limit(settings: Settings) -> float:
    from orchestrator.plan.policy import ResolvedPolicy

    return ResolvedPolicy(timeout=settings.defaults.timeout).time_limits()[1] or 0.0


def queue_lists(queue: str, prefix: str = "orch") -> list[str]:
    """The Redis lists kombu keeps for one queue: the plain list, then one per priority step."""
    from kombu.transport.redis import Channel

    from orchestrator.store.keys import Keys

    base = Keys(prefix).queue(queue)
    return [base if priority == 0 else f"{base}{Channel.sep}{priority}" for priority in Channel.priority_steps]


def api_routes() -> set[str]:
    """Paths of the HTTP API's health and metrics routes."""
    from orchestrator.api.health import router

    return {str(getattr(route, "path", "")) for route in router.routes}


def flower_routes() -> set[str]:
    """Paths Flower serves (``/healthcheck`` and ``/metrics`` without basic auth)."""
    from flower.urls import handlers

    return {h.regex.pattern.rstrip("$") if hasattr(h, "regex") else str(h[0]) for h in handlers}
