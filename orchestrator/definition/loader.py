"""Loading a workflow: a file or text to a validated, frozen :class:`~orchestrator.definition.models.Workflow`.

:mod:`~orchestrator.definition.document` turns the text into located plain data; here each part is
validated into models, and :mod:`~orchestrator.definition.checks` runs the checks across fields, so a
user sees every problem of a file at once.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from orchestrator.definition.checks import check_workflow
from orchestrator.definition.document import parse_document
from orchestrator.definition.models import Param, Step, Workflow
from orchestrator.definition.params import type_name
from orchestrator.definition.problems import translate_validation_error
from orchestrator.definition.source import Path_, SourceMap
from orchestrator.errors import InvalidWorkflow, Problem

PYTHON_SOURCE = "<python>"


def load_text(text: str, file: str = "<string>", *, tasks: Collection[str] | None = None) -> Workflow:
    """Load and fully validate a workflow from YAML or JSON text.

    Args:
        text: The document.
        file: The name used in problem locations.
        tasks: Registered task names; when given, unknown ``task:`` names are problems.

    Raises:
        InvalidWorkflow: with every problem found, located as ``FILE:LINE:COL``.
    """
    data, source, problems = parse_document(text, file)
    return build_workflow(data, source, tasks=tasks, problems=problems)


def load_file(path: str | Path, *, tasks: Collection[str] | None = None) -> Workflow:
    """Load and fully validate a workflow file (``.yaml``, ``.yml`` or ``.json``).

    Raises:
        InvalidWorkflow: the file cannot be read or has problems; every problem is listed.
    """
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise InvalidWorkflow([Problem(name, 0, 0, f"cannot read file: {exc.strerror or exc}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = f"not UTF-8 text (byte {exc.start}); save the file as UTF-8"
        raise InvalidWorkflow([Problem(name, 0, 0, message)]) from None
    return load_text(text, name, tasks=tasks)


def build_workflow(
    data: Any,
    source: SourceMap | None = None,
    *,
    tasks: Collection[str] | None = None,
    problems: list[Problem] | None = None,
) -> Workflow:
    """Validate plain data (from a file or from code) into a :class:`Workflow`.

    Structure errors of one step do not hide problems elsewhere: steps and params are checked
    one by one, and the cross-field checks run on every part that parsed, including steps that
    parse once their broken fields are left out.

    Raises:
        InvalidWorkflow: with every problem found.
    """
    source = source or SourceMap(PYTHON_SOURCE)
    if not isinstance(data, dict):
        kind = type_name(data)
        kind = kind if kind == "null" else ("an " if kind[0] in "aeiou" else "a ") + kind
        message = f"a workflow must be a mapping with `workflow:` and `steps:`, not {kind}"
        raise InvalidWorkflow([source.problem((), message)])
    problems = list(problems or [])
    raw_steps, raw_params = data.get("steps"), data.get("params")
    steps = _validate_each(Step, raw_steps, ("steps",), source, problems)
    params = _validate_each(Param, raw_params, ("params",), source, problems)
    rest = dict(data)
    if isinstance(raw_steps, dict):
        # A placeholder when every step failed: their own problems are already listed.
        rest["steps"] = steps if steps or not raw_steps else {"_": Step(task="_")}
    if isinstance(raw_params, dict):
        rest["params"] = params
    workflow: Workflow | None = None
    try:
        workflow = Workflow.model_validate(rest)
    except ValidationError as exc:
        problems.extend(translate_validation_error(exc, source))
    # Cross-field checks run even when the top level did not parse, on the parts that did.
    checked = workflow or _partial_workflow(rest, steps, params)
    if steps:
        problems.extend(
            check_workflow(
                checked,
                source,
                tasks=tasks,
                step_names=set(raw_steps) if isinstance(raw_steps, dict) else set(steps),
                param_names=set(raw_params) if isinstance(raw_params, dict) else set(params),
            )
        )
    if problems or workflow is None:
        raise InvalidWorkflow(problems)
    return workflow


def _partial_workflow(fields: dict[str, Any], steps: dict[str, Any], params: dict[str, Any]) -> Workflow:
    """A workflow of the fields that are valid on their own, to run the cross-field checks on."""
    valid: dict[str, Any] = {"workflow": "invalid", "steps": steps, "params": params}
    for key, value in fields.items():
        info = Workflow.model_fields.get(key)
        if info is None or info.annotation is None or key in valid:
            continue
        try:
            valid[key] = TypeAdapter(info.annotation).validate_python(value)
        except ValidationError:
            continue
    return Workflow.model_construct(**valid)


def _validate_each(
    model: type[Step] | type[Param],
    raw: Any,
    where: Path_,
    source: SourceMap,
    problems: list[Problem],
) -> dict[str, Any]:
    """Validate each entry of ``steps`` or ``params`` on its own; broken steps are salvaged."""
    if not isinstance(raw, dict):
        return {}
    valid: dict[str, Any] = {}
    for name, item in raw.items():
        try:
            valid[name] = model.model_validate(item)
        except ValidationError as exc:
            problems.extend(translate_validation_error(exc, source, prefix=(*where, name)))
            if model is Step and (step := _salvage_step(item, exc)) is not None:
                valid[name] = step
    return valid


# Without these a step's references would be judged wrongly (``${item}`` outside for_each, a
# reference to a step that is not upstream), so a step missing one of them is not salvaged.
_ESSENTIAL_STEP_FIELDS = ("task", "needs", "for_each")


def _salvage_step(item: Any, exc: ValidationError) -> Step | None:
    """The step without its broken fields, so that its needs and references are still checked.

    The result is only used for the cross-field checks: the workflow is refused anyway.
    """
    broken = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
    if not isinstance(item, dict) or any(_may_be_essential(field) for field in broken):
        return None
    try:
        return Step.model_validate({key: value for key, value in item.items() if key not in broken})
    except ValidationError:
        return None


def _may_be_essential(field: str) -> bool:
    # An unknown field such as `need:` is probably a misspelt essential field.
    return bool(difflib.get_close_matches(field, _ESSENTIAL_STEP_FIELDS, n=1, cutoff=0.6))
