"""Settings: environment parsing, secrets and start-up consistency checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from config import Settings


def test_environment_with_prefix_and_nested_delimiter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_BROKER_URL", "redis://localhost:6379/1")
    monkeypatch.setenv("ORCH_TASK_MODULES", "app.tasks, app.more ,")
    monkeypatch.setenv("ORCH_FLOWER_BASIC_AUTH", "ops:abc")
    monkeypatch.setenv("ORCH_WORKER__PREFETCH_MULTIPLIER", "4")
    settings = Settings()
    assert settings.task_modules == ["app.tasks", "app.more"]
    assert settings.worker.prefetch_multiplier == 4
    assert settings.flower_basic_auth is not None and settings.flower_basic_auth.get_secret_value() == "ops:abc"
    assert "abc" not in repr(settings) and "abc" not in str(settings.model_dump())
    assert settings.resolved_store_url == "redis://localhost:6379/1"
    assert not settings.embedded


def test_secrets_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ORCH_FLOWER_BASIC_AUTH").write_text("ops:s3cr3t")
    settings = Settings(_secrets_dir=tmp_path)  # type: ignore[call-arg]
    assert settings.flower_basic_auth is not None
    assert settings.flower_basic_auth.get_secret_value() == "ops:s3cr3t"


def test_visibility_timeout_shorter_than_step_timeout_is_refused_with_the_numbers() -> None:
    with pytest.raises(ValidationError) as info:
        Settings(worker={"visibility_timeout": 600}, defaults={"timeout": 900})
    assert "ORCH_WORKER__VISIBILITY_TIMEOUT (600s)" in str(info.value)
    assert "ORCH_DEFAULTS__TIMEOUT (900s)" in str(info.value)


def test_amqp_broker_needs_a_redis_store() -> None:
    with pytest.raises(ValidationError, match="ORCH_STORE_URL"):
        Settings(broker_url="amqp://guest:guest@localhost//")
    assert Settings(broker_url="amqp://x", store_url="redis://localhost").resolved_store_url == "redis://localhost"
