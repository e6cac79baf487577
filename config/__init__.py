"""Configuration: one pydantic-settings object, environment prefix ``ORCH_``."""

from config.settings import (
    ApiSettings,
    ApiToken,
    FlowerSettings,
    HistorySettings,
    InvalidSettings,
    LogSettings,
    MetricsSettings,
    Scope,
    SentrySettings,
    Settings,
    StepDefaults,
    UiSettings,
    WorkerSettings,
    get_settings,
)
from config.urls import REDIS_SCHEMES, same_redis, url_scheme

__all__ = [
    "REDIS_SCHEMES",
    "ApiSettings",
    "ApiToken",
    "FlowerSettings",
    "HistorySettings",
    "LogSettings",
    "MetricsSettings",
    "Scope",
    "SentrySettings",
    "InvalidSettings",
    "Settings",
    "StepDefaults",
    "UiSettings",
    "WorkerSettings",
    "get_settings",
    "same_redis",
    "url_scheme",
]
