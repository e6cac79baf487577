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


@pytest.mark.parametrize(("text", "seconds"), [("7d", 604800.0), ("12h", 43200.0), ("90m", 5400.0), ("3600", 3600.0)])
def test_retention_settings_are_durations(monkeypatch: pytest.MonkeyPatch, text: str, seconds: float) -> None:
    for name in ("ORCH_RUN_RETENTION", "ORCH_SUBMISSION_TTL", "ORCH_IDEMPOTENCY_TTL"):
        monkeypatch.setenv(name, text)
    settings = Settings()
    assert (settings.run_retention, settings.submission_ttl, settings.idempotency_ttl) == (seconds,) * 3


def test_retention_defaults_to_a_week_as_the_engine_and_store_assume() -> None:
    from orchestrator.engine.ports import RUN_RETENTION
    from orchestrator.store.runs import SUBMISSION_TTL

    settings = Settings()
    assert settings.run_retention == RUN_RETENTION == 7 * 86400
    assert settings.submission_ttl == SUBMISSION_TTL
    assert settings.idempotency_ttl == 7 * 86400


def test_a_retention_that_is_no_duration_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from config import InvalidSettings, get_settings

    monkeypatch.setenv("ORCH_RUN_RETENTION", "a week")
    monkeypatch.setenv("ORCH_SUBMISSION_TTL", "0")
    get_settings.cache_clear()
    try:
        with pytest.raises(InvalidSettings) as info:
            get_settings()
    finally:
        get_settings.cache_clear()
    assert info.value.problems == (
        "ORCH_RUN_RETENTION: not a duration; write e.g. 30s, 12h, 7d or a number of seconds",
        "ORCH_SUBMISSION_TTL: Input should be greater than or equal to 1",
    )


def test_a_cluster_store_takes_its_nodes_and_needs_a_broker_of_its_own() -> None:
    settings = Settings(broker_url="redis://broker:6379/0", store_url="redis+cluster://a:7000,b:7001, c")
    assert settings.store_clustered and settings.store_shards == 16
    from config.urls import cluster_nodes

    assert cluster_nodes(str(settings.store_url)) == [("a", 7000), ("b", 7001), ("c", 6379)]
    with pytest.raises(ValidationError, match="Celery cannot use as its broker: set ORCH_BROKER_URL"):
        Settings(store_url="redis+cluster://a:7000")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"broker_url": "redis+cluster://a:7000"}, "a Redis Cluster, which Celery cannot use"),
        ({"store_url": "redis+cluster://a:7000,b:port"}, "port that is not a number"),
        ({"store_url": "redis+cluster://a:7000/3"}, "only database 0"),
        ({"store_url": "redis+cluster://"}, "names no host"),
        ({"store_shards": 0}, "greater than or equal to 1"),
    ],
)
def test_a_wrong_cluster_setting_is_refused_with_what_is_wrong(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**{"broker_url": "redis://broker:6379/0", **values})
