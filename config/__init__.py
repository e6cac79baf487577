"""Configuration: one pydantic-settings object, environment prefix ``ORCH_``."""

from config.settings import (
    ApiSettings,
    LogSettings,
    SentrySettings,
    Settings,
    StepDefaults,
    WorkerSettings,
    get_settings,
)

__all__ = [
    "ApiSettings",
    "LogSettings",
    "SentrySettings",
    "Settings",
    "StepDefaults",
    "WorkerSettings",
    "get_settings",
]
