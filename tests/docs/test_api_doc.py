"""``docs/api.md`` says what the API does: its routes section is the OpenAPI schema's, and the tables match the code."""

from __future__ import annotations

import re

from orchestrator.api.problems import STATUS
from tests.docs.api_reference import BEGIN, END, PAGE, openapi, updated


def test_the_routes_section_is_current() -> None:
    page = PAGE.read_text(encoding="utf-8")
    assert BEGIN in page and END in page
    assert updated(page, openapi()) == page, "run `make docs` and commit docs/api.md"


def test_every_route_is_documented() -> None:
    page = PAGE.read_text(encoding="utf-8")
    for path, methods in openapi()["paths"].items():
        for method in methods:
            assert f"### `{method.upper()} {path}`" in page


def test_the_error_table_is_the_status_table() -> None:
    page = PAGE.read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `(\w+)` \| (\d{3}) \|", page, re.M))
    assert {name: int(code) for name, code in rows.items() if name in {c.__name__ for c in STATUS}} == {
        cls.__name__: code for cls, code in STATUS.items()
    }
