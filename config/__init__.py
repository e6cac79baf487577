"""Configuration: one pydantic-settings object, environment prefix ``ORCH_``."""

from config.settings import (
    ApiSettings,
    ApiToken,
    FlowerSettings,
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
from config.urls import REDIS_SCHEMES, url_scheme

__all__ = [
    "REDIS_SCHEMES",
    "ApiSettings",
    "ApiToken",
    "FlowerSettings",
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
    "url_scheme",
]
