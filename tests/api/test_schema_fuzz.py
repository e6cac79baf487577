"""schemathesis against the live server's ``/openapi.json``: whatever it sends, no answer is a 5xx.

Every operation of the schema gets valid and invalid requests (schemathesis's positive and
negative modes), all with an admin token, so they reach the routes' own validation instead of
stopping at the 401. Examples are bounded so the whole module stays well under 90 s.
(schemathesis's own pytest loader, ``from_fixture``, does not run on pytest 9, so the strategies
are driven here with hypothesis's ``@given``.)
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.internal.conjecture import utils as conjecture_utils
from hypothesis_jsonschema import _from_schema as from_schema
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from config import Settings
from orchestrator.api.app import create_api
from tests.api.conftest import ApiServer

pytestmark = pytest.mark.integration
EXAMPLES = 30


class _Many(conjecture_utils.many):
    """hypothesis's ``many`` with the ``more()`` loop of its older releases, which hypothesis-jsonschema 0.23.1
    (the newest, pulled in by schemathesis) still calls; hypothesis 6.170 made ``many`` a context manager."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.__enter__()
        self._steps = iter(self)

    def more(self) -> bool:
        if next(self._steps, False) is None:
            return True
        self.__exit__(None)
        return False


@pytest.fixture(autouse=True)
def _jsonschema_on_this_hypothesis(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give hypothesis-jsonschema (only it) the ``many`` it was written for, for the length of a test."""
    if not hasattr(conjecture_utils.many, "more"):
        monkeypatch.setattr(from_schema, "cu", SimpleNamespace(many=_Many))


def operations() -> Iterator[tuple[str, str]]:
    """Every (method, path) of the schema, read from the app itself (the live server serves the same)."""
    for path, methods in create_api(Settings(_env_file=None)).openapi()["paths"].items():
        for method in methods:
            yield method.upper(), path


@pytest.fixture(scope="module")
def live_schema(api: ApiServer) -> schemathesis.BaseSchema:
    api.workflow()  # one workflow at least, so the workflow routes list something
    loaded = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    loaded.config.update(base_url=api.url)
    return loaded


@pytest.mark.parametrize(("method", "path"), sorted(operations()))
def test_no_request_gets_a_server_error(
    api: ApiServer, live_schema: schemathesis.BaseSchema, method: str, path: str
) -> None:
    operation = live_schema[path][method]
    headers = {"Authorization": f"Bearer {api.tokens['admin']}"}
    modes = st.one_of(operation.as_strategy(mode) for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE))

    @given(case=modes)
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case: schemathesis.Case) -> None:
        response = case.call(headers={**(case.headers or {}), **headers}, timeout=30)
        case.validate_response(response, checks=[not_a_server_error])

    check()
