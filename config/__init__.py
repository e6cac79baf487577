"""Configuration: one pydantic-settings object, environment prefix ``ORCH_``."""

from config.settings import (
    REDIS_SCHEMES,
    Settings,
    StepDefaults,
    WorkerSettings,
    get_settings,
    url_scheme,
)

__all__ = [
    "REDIS_SCHEMES",
    "Settings",
    "StepDefaults",
    "WorkerSettings",
    "get_settings",
    "url_scheme",
]
