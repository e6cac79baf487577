"""Configuration: one pydantic-settings object, environment prefix ``ORCH_``."""

from config.settings import (
    InvalidSettings,
    Settings,
    StepDefaults,
    WorkerSettings,
    get_settings,
)
from config.urls import REDIS_SCHEMES, url_scheme

__all__ = [
    "REDIS_SCHEMES",
    "InvalidSettings",
    "Settings",
    "StepDefaults",
    "WorkerSettings",
    "get_settings",
    "url_scheme",
]
