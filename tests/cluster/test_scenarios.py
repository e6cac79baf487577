"""The integration scenarios with the run store on a real Redis Cluster: real ``celery worker``
processes, the broker on the machine's Redis. Each is the scenario of ``tests/integration`` (or
``tests/reliability``) itself, run against the cluster's ``orchestra`` of ``conftest.py``."""

from __future__ import annotations

import pytest

from tests.integration import test_execution
from tests.integration.conftest import Orchestra
from tests.reliability import test_worker_death

pytestmark = pytest.mark.integration


def test_a_dag_runs_in_order_without_false_waits(orchestra: Orchestra) -> None:
    test_execution.test_non_series_parallel_dag_has_no_false_waits(orchestra)


def test_for_each_over_500_items_fans_out_and_in(orchestra: Orchestra) -> None:
    test_execution.test_for_each_over_500_items_fans_in_in_order(orchestra)


def test_transient_errors_retry_and_permanent_ones_fail(orchestra: Orchestra) -> None:
    test_execution.test_transient_errors_retry_with_backoff_and_permanent_ones_fail_at_once(orchestra)


def test_a_cancelled_run_is_retried(orchestra: Orchestra) -> None:
    test_execution.test_cancel_then_retry(orchestra)


def test_a_worker_node_killed_mid_step_loses_nothing(orchestra: Orchestra) -> None:
    test_worker_death.test_worker_node_killed_mid_step_is_recovered_by_another_worker(orchestra)
