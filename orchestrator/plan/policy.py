"""Execution policy per step: layered lookup, retry backoff and time limits.

Lookup is layered like dramatiq's options: the project's settings (``ORCH_DEFAULTS__*``), then the
workflow's ``defaults``, then the step itself; the first layer that sets a field wins, field by
field (a step that sets only ``retry.max_attempts`` keeps the workflow's ``delay``). The values a
step gets when nobody says anything are written once, in :class:`config.StepDefaults`.
"""

from __future__ import annotations

from collections.abc import Sequence

from config import StepDefaults
from orchestrator.definition.models import Backoff, Model, Policy, RetrySpec, queue_problem
from orchestrator.errors import ConfigurationError

HARD_LIMIT_GRACE = 10.0
"""Seconds between the soft time limit (raised inside the task) and the hard kill of its process."""

_DEFAULTS = StepDefaults()


class RetryPolicy(Model):
    """A fully resolved retry policy."""

    max_attempts: int = _DEFAULTS.max_attempts
    backoff: Backoff = Backoff(_DEFAULTS.backoff)
    delay: float = _DEFAULTS.delay
    max_delay: float = _DEFAULTS.max_delay
    jitter: bool = _DEFAULTS.jitter
    on: tuple[str, ...] = tuple(_DEFAULTS.retry_on)

    def delay_for(self, failed_attempt: int, rand: float = 1.0) -> float:
        """Seconds to wait before the attempt after ``failed_attempt`` (1-based).

        Exponential backoff doubles ``delay`` per attempt (``delay * 2**(n-1)``), capped at
        ``max_delay``. With jitter, the wait is drawn uniformly from ``[0, capped]`` ("full
        jitter", which spreads a thundering herd best); ``rand`` is that draw in ``[0, 1]``.
        """
        base = self.delay if self.backoff is Backoff.FIXED else self.delay * 2.0 ** (failed_attempt - 1)
        capped = min(base, self.max_delay)
        return capped * rand if self.jitter else capped

    def retries(self, error_types: Sequence[str]) -> bool:
        """Whether an error whose class (or any base class) is named in ``error_types`` is retryable.

        Args:
            error_types: The error's class names along its MRO, qualified and plain
                (``["requests.ConnectionError", "ConnectionError", "OSError", ...]``).
        """
        return any(name in self.on for name in error_types)


class ResolvedPolicy(Model):
    """Everything a worker needs to run one step: queue, limits and retries."""

    queue: str = _DEFAULTS.queue
    timeout: float | None = _DEFAULTS.timeout
    soft_timeout: float | None = _DEFAULTS.soft_timeout
    retry: RetryPolicy = RetryPolicy()

    def time_limits(self) -> tuple[float | None, float | None]:
        """``(soft, hard)`` time limits of one attempt, in seconds.

        ``timeout`` is the soft limit (raised inside the task, handled as a ``TimeoutError``);
        the hard kill follows :data:`HARD_LIMIT_GRACE` later. An explicit ``soft_timeout`` moves
        the soft limit earlier and keeps ``timeout`` as the hard one.
        """
        if self.soft_timeout is not None:
            return self.soft_timeout, self.timeout
        if self.timeout is None:
            return None, None
        return self.timeout, self.timeout + HARD_LIMIT_GRACE

    @property
    def limit(self) -> float | None:
        """The limit a timed-out attempt exceeded first (for its error message)."""
        return self.time_limits()[0]


def resolve(layers: Sequence[Policy | None]) -> ResolvedPolicy:
    """Merge policies, lowest precedence first, into one :class:`ResolvedPolicy`."""
    fields: dict[str, object] = {}
    retry: dict[str, object] = {}
    for layer in layers:
        if layer is None:
            continue
        fields.update(layer.model_dump(exclude_none=True, exclude={"retry"}))
        if layer.retry is not None:
            retry.update(_set_fields(layer.retry))
    return ResolvedPolicy.model_validate({**fields, "retry": RetryPolicy.model_validate(retry)})


def _set_fields(spec: RetrySpec) -> dict[str, object]:
    return {k: getattr(spec, k) for k in spec.model_fields_set if getattr(spec, k) is not None}


def base_policy(defaults: StepDefaults | None = None) -> Policy:
    """The settings layer (``ORCH_DEFAULTS__*``) as a :class:`Policy`; by default the built-in defaults.

    Raises:
        ConfigurationError: ``ORCH_DEFAULTS__QUEUE`` names a queue the broker's keys collide with.
    """
    defaults = defaults or _DEFAULTS
    if (problem := queue_problem(defaults.queue)) is not None:
        raise ConfigurationError(f"ORCH_DEFAULTS__QUEUE: {problem}")
    return Policy(
        queue=defaults.queue,
        timeout=defaults.timeout,
        soft_timeout=defaults.soft_timeout,
        retry=RetrySpec(
            max_attempts=defaults.max_attempts,
            backoff=Backoff(defaults.backoff),
            delay=defaults.delay,
            max_delay=defaults.max_delay,
            jitter=defaults.jitter,
            on=tuple(defaults.retry_on),
        ),
    )
