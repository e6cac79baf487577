"""What is taken out of every Sentry event before it leaves: secrets, URL passwords, params and outputs.

:class:`Scrubber` is the ``before_send`` / ``before_send_transaction`` hook of
:func:`orchestrator.observability.sentry.init_sentry`. It walks the whole event (message,
exception values, stack frames, breadcrumbs, extra, contexts, tags, request data) at any depth and

- replaces the value of every key that contains a deny-listed word (``ORCH_SENTRY__SCRUB_KEYS``,
  any case) with ``[Filtered]``;
- drops runs' params and steps' outputs (keys ``params``, ``output``, ``outputs``, ``inputs``)
  unless ``ORCH_SENTRY__SEND_DATA`` is on;
- replaces every secret value of the settings (API tokens, webhook secrets, Flower's basic auth,
  the DSN, URL passwords) wherever it occurs inside a string;
- replaces the password of any ``scheme://user:password@host`` URL in any string.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr

from config import Settings

FILTERED = "[Filtered]"
DATA_KEYS = frozenset({"params", "output", "outputs", "inputs"})
"""Keys whose values are a run's params or a step's outputs: dropped unless ``send_data``."""
MIN_SECRET_LENGTH = 3
"""Shorter secret values are not searched for inside strings (they would match everywhere)."""
URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^\s:/@]*):(?P<password>[^\s@/]+)@", re.IGNORECASE)


class Scrubber:
    """A ``before_send`` hook: returns the event with secrets, passwords and (by default) data taken out.

    Args:
        deny: Words; the value of a key containing one (any case) is scrubbed.
        secrets: Values scrubbed wherever they occur in a string.
        send_data: Keep params and outputs (``ORCH_SENTRY__SEND_DATA``).
    """

    def __init__(self, deny: Iterable[str], secrets: Iterable[str], *, send_data: bool = False) -> None:
        self.deny = tuple(word.lower() for word in deny if word)
        # Longest first: a secret that contains another is replaced whole.
        self.secrets = sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
        self.send_data = send_data

    @classmethod
    def of(cls, settings: Settings) -> Scrubber:
        """The scrubber for these settings: their deny list, every secret they hold, their ``send_data``."""
        return cls(settings.sentry.scrub_keys, secret_values(settings), send_data=settings.sentry.send_data)

    def __call__(self, event: dict[str, Any], hint: Mapping[str, Any] | None = None) -> dict[str, Any]:
        scrubbed = self.value(event)
        assert isinstance(scrubbed, dict)
        return scrubbed

    def denied(self, key: str) -> bool:
        """Whether the value under ``key`` is scrubbed whatever it is."""
        lowered = key.lower()
        return any(word in lowered for word in self.deny)

    def denied_values(self, data: Any) -> list[str]:
        """The values under deny-listed keys in ``data`` (a run's params), at any depth, as strings."""
        found: list[str] = []
        if isinstance(data, Mapping):
            for key, item in data.items():
                if self.denied(str(key)) and isinstance(item, str | int | float) and not isinstance(item, bool):
                    found.append(str(item))
                else:
                    found.extend(self.denied_values(item))
        elif isinstance(data, list | tuple):
            for item in data:
                found.extend(self.denied_values(item))
        return found

    def value(self, value: Any) -> Any:
        """``value`` scrubbed, at any depth (a new object; the input is not changed)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return self._mapping(value)
        if isinstance(value, list | tuple):
            return [self.value(item) for item in value]
        return value

    def text(self, text: str) -> str:
        """``text`` with URL passwords and secret values replaced by ``[Filtered]``."""
        text = URL_PASSWORD.sub(lambda m: f"{m['head']}:{FILTERED}@", text)
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, FILTERED)
        return text

    def _mapping(self, mapping: Mapping[Any, Any]) -> dict[Any, Any]:
        scrubbed: dict[Any, Any] = {}
        for key, item in mapping.items():
            name = str(key)
            data = not self.send_data and name.lower() in DATA_KEYS
            if data or (self.denied(name) and item not in (None, "", FILTERED)):
                scrubbed[key] = FILTERED
            else:
                scrubbed[key] = self.value(item)
        return scrubbed


def secret_values(settings: Settings) -> list[str]:
    """Every secret the settings hold: each ``SecretStr`` (at any depth), both halves of
    ``user:password`` ones, and the passwords of the broker, store and result backend URLs."""
    found: list[str] = []
    for secret in _secrets(settings):
        value = secret.get_secret_value()
        found.append(value)
        _, sep, password = value.partition(":")
        if sep and "//" not in value:  # Flower's user:password: the password alone too
            found.append(password)
        found.extend(_url_passwords(value))
    for url in (settings.broker_url, settings.store_url, settings.result_backend):
        if url:
            found.extend(_url_passwords(url))
    return [value for value in found if value]


def _secrets(value: Any) -> Iterator[SecretStr]:
    if isinstance(value, SecretStr):
        yield value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _secrets(getattr(value, name))
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _secrets(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _secrets(item)


def _url_passwords(url: str) -> list[str]:
    try:
        password = urlsplit(url).password
    except ValueError:
        return []
    return [password] if password else []
