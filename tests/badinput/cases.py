"""The corpus: bad workflow files, bad command lines and bad submissions, each with its exact error.

A file case lists every line ``orchestrator validate`` prints for it, ``{file}`` standing for the
path the test writes it to; a line ending in ``...`` is a prefix (for messages that quote a
huge input, or hints whose wording is not the point). Each message was read and judged before it
was written down: a changed message is a changed contract, so update the line on purpose.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.definition.document import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES

# The unsupported-tag message, and the head of a file whose steps are valid.
TAG = "a workflow holds plain data only: strings, numbers, booleans, null, lists and mappings"
HEAD = "workflow: w\nsteps:\n"
DURATION = "write e.g. 500ms, 30s, 5m, 2h or a number of seconds"
OPERAND = "an operand is a ${reference}, a number, a quoted string, true, false, null, [...] or (...)"
TOO_MANY = f"the document expands to more than {MAX_NODES} values, counting each use of an alias (*name)..."
NAME_HINT = "a name is letters, digits, '_' and '-', starting with a letter or '_'"


@dataclass(frozen=True)
class FileCase:
    """A workflow file that must be refused with exactly ``expected``.

    Attributes:
        id: The test id.
        text: The file's content, or a function making it (for huge files).
        expected: Every printed line, in order; ``{file}`` is the file's path.
        suffix: ``.yaml`` or ``.json``.
        commands: Which commands to run it through (slow cases go through ``run`` only).
    """

    id: str
    text: str | bytes | Callable[[], str]
    expected: tuple[str, ...]
    suffix: str = ".yaml"
    commands: tuple[str, ...] = ("validate", "run")

    def content(self) -> str | bytes:
        return self.text() if callable(self.text) else self.text


def _alias_bomb() -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 12)]
    return "\n".join([*lines, "workflow: laughs", "steps: {a: {task: demo.echo, args: {all: *a11}}}", ""])


def _unknown_needs(count: int) -> str:
    steps = "".join(f"  s{i}: {{task: demo.echo, needs: [t{i}]}}\n" for i in range(count))
    return HEAD + steps


FILE_CASES: list[FileCase] = [
    # --- broken YAML and JSON -------------------------------------------------------------------
    FileCase(
        "yaml-unclosed-flow-mapping",
        "workflow: w\nsteps: {a: {task: demo.echo}\n",
        (
            "{file}:3:1: invalid YAML: expected ',' or '}', but got the end of the file "
            "(in the {...} that starts at line 2, column 8)",
        ),
    ),
    FileCase(
        "yaml-unclosed-quote",
        'workflow: "w\nsteps: {a: {task: demo.echo}}\n',
        (
            "{file}:3:1: invalid YAML: found unexpected end of stream "
            "(in the quoted string that starts at line 1, column 11)",
        ),
    ),
    FileCase(
        "yaml-bad-indentation",
        "workflow: w\nsteps:\n  a:\n    task: demo.echo\n   needs: []\n",
        (
            "{file}:5:4: invalid YAML: expected the end of the indented block, but found an indented mapping "
            "(in the indented mapping that starts at line 3, column 3)",
        ),
    ),
    FileCase(
        "yaml-colon-in-plain-value",
        "workflow: w: x\nsteps: {a: {task: demo.echo}}\n",
        ("{file}:1:12: invalid YAML: mapping values are not allowed here",),
    ),
    FileCase(
        "yaml-two-documents",
        "workflow: w\nsteps: {a: {task: demo.echo}}\n---\nworkflow: v\n",
        ("{file}:3:1: invalid YAML: but found another document",),
    ),
    FileCase(
        "yaml-undefined-alias",
        "workflow: *name\nsteps: {a: {task: demo.echo}}\n",
        ("{file}:1:11: invalid YAML: found undefined alias 'name'",),
    ),
    FileCase(
        "yaml-unknown-version-directive",
        "%YAML 9.9\n---\nworkflow: w\nsteps: {a: {task: demo.echo}}\n",
        ("{file}:1:1: invalid YAML: found incompatible YAML document (version 1.* is required)",),
    ),
    FileCase(
        "json-unclosed-object",
        '{"workflow": "w", "steps": {"a": {"task": "demo.echo"}}',
        (
            "{file}:1:56: invalid JSON: expected ',' or '}', but got the end of the file "
            "(in the {...} that starts at line 1, column 1)",
        ),
        suffix=".json",
    ),
    FileCase(
        "json-comment",
        '{"workflow": "w", // the id\n "steps": {"a": {"task": "demo.echo"}}}',
        ("{file}:2:9: invalid JSON: expected ',' or '}', but got ':' (in the {...} that starts at line 1, column 1)",),
        suffix=".json",
    ),
    FileCase(
        "nul-byte",
        "workflow: w\x00\nsteps: {a: {task: demo.echo}}\n",
        ("{file}:1:12: YAML text cannot hold the unprintable character U+0000; remove it",),
    ),
    FileCase(
        "escape-character",
        "workflow: w\nsteps: {a: {task: demo.echo, args: {x: \x1b[31mred}}}\n",
        ("{file}:2:40: YAML text cannot hold the unprintable character U+001B; remove it",),
    ),
    FileCase(
        "noncharacter-u-fffe",
        "workflow: w\nsteps: {a: {task: demo.echo, description: \ufffe}}\n",
        ("{file}:2:43: YAML text cannot hold the unprintable character U+FFFE; remove it",),
    ),
    FileCase(
        "binary-file",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        ("{file}: not UTF-8 text (byte 0); save the file as UTF-8",),
    ),
    FileCase("empty-file", "", ("{file}:1:1: the file is empty; a workflow needs `workflow:` and `steps:`",)),
    FileCase(
        "json-top-level-array",
        "[]",
        ("{file}:1:1: a workflow must be a mapping with `workflow:` and `steps:`, not an array",),
        suffix=".json",
    ),
    FileCase(
        "top-level-string",
        "run everything please\n",
        ("{file}:1:1: a workflow must be a mapping with `workflow:` and `steps:`, not a string",),
    ),
    # --- wrong types ------------------------------------------------------------------------------
    FileCase(
        "steps-null",
        "workflow: w\nsteps:\n",
        ("{file}:3:1: steps: expected a mapping of step names to steps, got null",),
    ),
    FileCase(
        "step-is-a-string",
        HEAD + "  a: demo.echo\n",
        ("{file}:3:6: steps.a: expected a mapping with at least `task:`, got string 'demo.echo'",),
    ),
    FileCase(
        "needs-is-a-mapping",
        HEAD + "  a: {task: demo.echo}\n  b: {task: demo.echo, needs: {a: true}}\n",
        ("{file}:4:31: steps.b.needs: expected a list of step names, got object",),
    ),
    FileCase(
        "args-is-a-list",
        HEAD + "  a: {task: demo.echo, args: [1, 2]}\n",
        ("{file}:3:30: steps.a.args: expected a mapping of argument names to values, got array",),
    ),
    FileCase(
        "when-is-a-number",
        HEAD + "  a: {task: demo.echo, when: 1}\n",
        ("{file}:3:30: steps.a.when: expected a string, got integer",),
    ),
    FileCase(
        "retry-on-is-a-string",
        HEAD + "  a: {task: demo.echo, retry: {on: ConnectionError}}\n",
        (
            "{file}:3:36: steps.a.retry.on: expected a list of error type names such as "
            "[ConnectionError, TimeoutError], got string 'ConnectionError'; write it as a list: [\"ConnectionError\"]",
        ),
    ),
    FileCase(
        "timeout-is-a-list",
        HEAD + "  a: {task: demo.echo, timeout: [5m]}\n",
        (f"{{file}}:3:33: steps.a.timeout: ['5m'] is not a duration; {DURATION}",),
    ),
    FileCase(
        "timeout-in-words",
        HEAD + "  a: {task: demo.echo, timeout: five minutes}\n",
        (f"{{file}}:3:33: steps.a.timeout: 'five minutes' is not a duration; {DURATION}",),
    ),
    FileCase(
        "version-negative",
        "workflow: w\nversion: -1\nsteps: {a: {task: demo.echo}}\n",
        ("{file}:2:10: version: must be at least 0, got -1",),
    ),
    FileCase(
        "version-boolean",
        "workflow: w\nversion: true\nsteps: {a: {task: demo.echo}}\n",
        ("{file}:2:10: version: expected an integer, got boolean",),
    ),
    FileCase(
        "max-attempts-boolean",
        HEAD + "  a: {task: demo.echo, retry: {max_attempts: true}}\n",
        ("{file}:3:46: steps.a.retry.max_attempts: expected an integer, got boolean",),
    ),
    FileCase(
        "param-enum-not-a-list",
        "workflow: w\nparams: {mode: {type: string, enum: fast}}\nsteps: {a: {task: demo.echo}}\n",
        ("{file}:2:37: params.mode.enum: expected a list, got string 'fast'; write it as a list: [\"fast\"]",),
    ),
    FileCase(
        "hook-is-a-string",
        "workflow: w\non_failure: demo.echo\nsteps: {a: {task: demo.echo}}\n",
        ("{file}:2:13: on_failure: expected a mapping, got string 'demo.echo'",),
    ),
    FileCase(
        "schedule-is-a-mapping",
        "workflow: w\nschedule: {cron: '0 1 * * *'}\nsteps: {a: {task: demo.echo}}\n",
        ("{file}:2:11: schedule: expected a list of entries such as {cron: '0 1 * * *'}, got object",),
    ),
    FileCase(
        "timeout-zero",
        "workflow: w\ndefaults: {timeout: 0}\nsteps: {a: {task: demo.echo, soft_timeout: 0s}}\n",
        (
            "{file}:2:21: defaults.timeout: 0s is not a time limit; give a positive duration such as 30s, "
            "or leave it out to inherit one",
            "{file}:3:44: steps.a.soft_timeout: 0s is not a time limit; give a positive duration such as 30s, "
            "or leave it out to inherit one",
        ),
    ),
    FileCase(
        "schedule-every-zero",
        "workflow: w\nschedule: [{every: 0}]\nsteps: {a: {task: demo.echo}}\n",
        ("{file}:2:20: schedule[0]: every 0s is more often than a schedule may tick; the shortest interval is 1s",),
    ),
    FileCase(
        "param-minimum-above-maximum",
        "workflow: w\nparams: {n: {type: integer, minimum: 10, maximum: 1}}\nsteps: {a: {task: demo.echo}}\n",
        ("{file}:2:51: param 'n': maximum 1 is less than minimum 10, so no value is allowed; swap them",),
    ),
    FileCase(
        "for-each-over-a-string-param",
        "workflow: w\nparams: {ids: {type: string}}\n"
        "steps: {a: {task: demo.echo, for_each: '${params.ids}', args: {id: '${item}'}}}\n",
        (
            "{file}:3:40: step 'a': for_each over ${params.ids}, a string param; for_each needs a list: "
            "declare the param with type: array",
        ),
    ),
    # --- huge and deeply nested -----------------------------------------------------------------
    FileCase(
        "larger-than-2-mib",
        lambda: HEAD + "  a: {task: demo.echo}\n" + "# padding\n" * (MAX_FILE_BYTES // 10),
        (f"{{file}}:1:1: file is larger than {MAX_FILE_BYTES // 1024} KiB",),
    ),
    FileCase(
        "nested-flow-lists-100000-deep",
        lambda: HEAD + "  a: {task: demo.echo, args: {x: " + "[" * 100_000 + "]" * 100_000 + "}}\n",
        (f"{{file}}:1:1: the document nests deeper than {MAX_DEPTH} levels",),
    ),
    FileCase(
        "nested-block-mappings-300-deep",
        lambda: HEAD + "".join(" " * (i + 2) + f"k{i}:\n" for i in range(300)),
        (f"{{file}}:66:66: the document nests deeper than {MAX_DEPTH} levels",),
    ),
    FileCase(
        "more-values-than-the-limit",
        # 2 MiB of values: refused once the limit is crossed, not after composing a million nodes (a minute).
        lambda: HEAD + "  a: {task: demo.echo, args: {x: [" + "1," * (MAX_FILE_BYTES // 2 - 100) + "1]}}\n",
        (f"{{file}}:3:{2 * MAX_NODES + 23}: {TOO_MANY}",),
        commands=("run",),
    ),
    FileCase(
        "a-2-mib-name",
        lambda: "workflow: " + "w" * (MAX_FILE_BYTES - 100) + "\nsteps: {a: {task: demo.echo}}\n",
        ("{file}:1:11: workflow: string should have at most 200 characters, got string 'wwwwwwwwwwwwwww...",),
    ),
    FileCase(
        "a-reference-as-long-as-the-file",
        lambda: HEAD + "  a: {task: demo.echo, args: {x: '${" + "x" * 1_000_000 + "'}}\n",
        ("{file}:3:34: step 'a': unclosed '${' at character 1 of '${xxxxxxxxxx...",),
    ),
    FileCase(
        "a-reference-to-a-10000-character-param",
        HEAD + "  a: {task: demo.echo, args: {x: '${params." + "p" * 10_000 + "}'}}\n",
        ("{file}:3:34: step 'a': ${params." + "p" * 67 + "...} names no declared param; declare it under params",),
    ),
    FileCase(
        "needs-a-1000-character-string",
        HEAD + "  a: {task: demo.echo, needs: '" + "n" * 1000 + "'}\n",
        ("{file}:3:31: steps.a.needs: expected a list of step names, got string '" + "n" * 76 + "...",),
    ),
    FileCase(
        "3000-steps-needing-unknown-steps",
        lambda: _unknown_needs(3000),
        tuple(
            f"{{file}}:{i + 3}:{32 + len(str(i))}: step 's{i}' needs 't{i}', which is not a step..."
            for i in range(3000)
        ),
        commands=("validate",),
    ),
    # --- YAML anchors and tags ------------------------------------------------------------------
    FileCase(
        "alias-bomb",
        _alias_bomb,
        (f"{{file}}:1:50: {TOO_MANY}",),
    ),
    FileCase(
        "alias-of-itself",
        "loop: &loop [*loop]\nworkflow: w\nsteps: {a: {task: demo.echo}}\n",
        (f"{{file}}:1:7: the document nests deeper than {MAX_DEPTH} levels",),
    ),
    FileCase(
        "merge-of-itself",
        "base: &base {<<: *base}\nworkflow: w\nsteps: {a: {task: demo.echo}}\n",
        (f"{{file}}:1:7: the document nests deeper than {MAX_DEPTH} levels",),
    ),
    FileCase(
        "python-object-apply-tag",
        "workflow: !!python/object/apply:os.system ['touch /tmp/owned']\nsteps: {a: {task: demo.echo}}\n",
        (
            f"{{file}}:1:11: unsupported YAML tag '!!python/object/apply:os.system'; {TAG}",
            "{file}:1:11: workflow: expected a string, got null",
        ),
    ),
    FileCase(
        "python-name-tag-behind-an-alias",
        "x: &x !!python/name:os.system ''\nworkflow: w\nsteps: {a: {task: demo.echo, args: {f: *x}}}\n",
        (
            "{file}:1:1: workflow: unknown field 'x'",
            f"{{file}}:1:4: unsupported YAML tag '!!python/name:os.system'; {TAG}",
        ),
    ),
    FileCase(
        "set-tag",
        "workflow: w\nsteps: !!set {a}\n",
        (
            "{file}:2:8: steps: expected a mapping of step names to steps, got null",
            f"{{file}}:2:8: unsupported YAML tag '!!set'; {TAG}",
        ),
    ),
    FileCase(
        "custom-tag",
        HEAD + "  a: {task: !Sub 'demo.${Env}'}\n",
        (
            "{file}:3:13: steps.a.task: expected a Celery task name such as 'content.fetch', got null",
            f"{{file}}:3:13: unsupported YAML tag '!Sub'; {TAG}",
        ),
    ),
    # --- unicode names --------------------------------------------------------------------------
    FileCase(
        "step-name-right-to-left-override",
        HEAD + '  "safe\u202eexe": {task: demo.echo}\n',
        (
            f"{{file}}:3:3: steps: name 'safe\\u202eexe' is not valid; {NAME_HINT} "
            "(it contains U+202E RIGHT-TO-LEFT OVERRIDE)",
        ),
    ),
    FileCase(
        "step-name-emoji",
        HEAD + "  \U0001f680: {task: demo.echo}\n",
        (f"{{file}}:3:3: steps: name '\U0001f680' is not valid; {NAME_HINT} (it contains U+1F680 ROCKET)",),
    ),
    FileCase(
        "workflow-id-cyrillic-o",
        "workflow: w\u043erk\nsteps: {a: {task: demo.echo}}\n",
        (
            "{file}:1:11: workflow: 'w\u043erk' is not valid; a workflow id is lowercase letters, digits, '.', '_' "
            "and '-', starting with a letter or digit (it contains U+043E CYRILLIC SMALL LETTER O)",
        ),
    ),
    FileCase(
        "param-name-with-diaeresis",
        "workflow: w\nparams: {l\u00efmit: {type: integer}}\nsteps: {a: {task: demo.echo}}\n",
        (
            f"{{file}}:2:10: params: name 'l\u00efmit' is not valid; {NAME_HINT} "
            "(it contains U+00EF LATIN SMALL LETTER I WITH DIAERESIS)",
        ),
    ),
    FileCase(
        "reference-with-zero-width-space",
        "workflow: w\nparams: {limit: {type: integer}}\n"
        "steps: {a: {task: demo.echo, args: {n: '${params.lim\u200bit}'}}}\n",
        ("{file}:3:40: step 'a': unexpected '\\u200bit' in ${params.lim\\u200bit}; use .field or [index] paths",),
    ),
    FileCase(
        "emoji-code-in-a-name",
        HEAD + "  a: {task: demo.echo, needs: [':fire:']}\n",
        (f"{{file}}:3:32: steps.a.needs[0]: ':fire:' is not valid; {NAME_HINT}",),
    ),
    FileCase(
        # rich read ":100:" in "FILE:100:5: ..." as an emoji code and printed a 💯 instead of the line number.
        "a-problem-on-line-100",
        "# comment\n" * 97 + "workflow: w\nsteps:\n  a: {task: demo.echo, needs: [b]}\n",
        ("{file}:100:32: step 'a' needs 'b', which is not a step",),
    ),
    # --- ${...} injection -----------------------------------------------------------------------
    FileCase(
        "reference-calls-python",
        HEAD + "  a: {task: demo.echo, args: {x: \"${__import__('os').system('id')}\"}}\n",
        (
            "{file}:3:34: step 'a': unexpected \"('os').system('id')\" in ${__import__('os').system('id')}; "
            "use .field or [index] paths",
        ),
    ),
    FileCase(
        "reference-nested",
        "workflow: w\nparams: {x: {type: string}}\nsteps: {a: {task: demo.echo, args: {x: '${${params.x}}'}}}\n",
        ("{file}:3:40: step 'a': empty or malformed reference ${${params.x}",),
    ),
    FileCase(
        "reference-format-spec",
        "workflow: w\nparams: {x: {type: string}}\nsteps: {a: {task: demo.echo, args: {x: '${params.x!r:>99}'}}}\n",
        ("{file}:3:40: step 'a': unexpected '!r:>99' in ${params.x!r:>99}; use .field or [index] paths",),
    ),
    FileCase(
        "reference-to-the-environment",
        HEAD + "  a: {task: demo.echo, args: {home: '${env.HOME}'}}\n",
        ("{file}:3:37: step 'a': unknown reference root 'env' in ${env.HOME}; use params, steps, item or run",),
    ),
    FileCase(
        "reference-negative-index",
        HEAD + "  a: {task: demo.fetch}\n  b: {task: demo.echo, needs: [a], args: {x: '${steps.a.output[-1]}'}}\n",
        ("{file}:4:46: step 'b': unexpected '[-1]' in ${steps.a.output[-1]}; use .field or [index] paths",),
    ),
    FileCase(
        "reference-unclosed",
        "workflow: w\nparams: {x: {type: string}}\nsteps: {a: {task: demo.echo, args: {x: 'id-${params.x'}}}\n",
        ("{file}:3:40: step 'a': unclosed '${' at character 4 of 'id-${params.x'",),
    ),
    FileCase(
        "reference-to-a-secret-run-field",
        HEAD + "  a: {task: demo.echo, idempotency_key: 'key-${run.token}'}\n",
        ("{file}:3:41: step 'a': ${run.token}: run references are id, date, workflow",),
    ),
    FileCase(
        "for-each-with-shell-text",
        "workflow: w\nparams: {ids: {type: array}}\n"
        "steps: {a: {task: demo.echo, for_each: '${params.ids}; rm -rf /'}}\n",
        (
            "{file}:3:40: step 'a': for_each must be one reference to a list, "
            "such as '${steps.NAME.output}' or '${params.NAME}'",
        ),
    ),
    # --- when injection -------------------------------------------------------------------------
    FileCase(
        "when-python-import",
        HEAD + "  a: {task: demo.echo, when: \"__import__('os').system('x')\"}\n",
        (
            "{file}:3:30: step 'a': when: unknown name '__import__' at column 1 of \"__import__('os').system('x')\"; "
            'write a reference as ${params.__import__} or a string as "__import__"',
        ),
    ),
    FileCase(
        "when-sql-after-semicolon",
        HEAD + "  a: {task: demo.echo, when: '1; drop table runs'}\n",
        (f"{{file}}:3:30: step 'a': when: unexpected ';' at column 2 of \"1; drop table runs\"; {OPERAND}",),
    ),
    FileCase(
        "when-lambda",
        HEAD + "  a: {task: demo.echo, when: 'lambda: True'}\n",
        (
            "{file}:3:30: step 'a': when: unknown name 'lambda' at column 1 of \"lambda: True\"; "
            'write a reference as ${params.lambda} or a string as "lambda"',
        ),
    ),
    FileCase(
        "when-attribute-of-a-reference",
        "workflow: w\nparams: {x: {type: string}}\nsteps: {a: {task: demo.echo, when: '${params.x}.__class__'}}\n",
        (f"{{file}}:3:36: step 'a': when: unexpected '.' at column 12 of \"${{params.x}}.__class__\"; {OPERAND}",),
    ),
    FileCase(
        "when-calls-a-reference",
        "workflow: w\nparams: {x: {type: string}}\nsteps: {a: {task: demo.echo, when: '${params.x}()'}}\n",
        (
            "{file}:3:36: step 'a': when: expected an operator or the end of the condition at column 12 of "
            '"${params.x}()"',
        ),
    ),
    FileCase(
        "when-shell-substitution",
        HEAD + "  a: {task: demo.echo, when: '$(rm -rf /) == 0'}\n",
        (f"{{file}}:3:30: step 'a': when: unexpected '$' at column 1 of \"$(rm -rf /) == 0\"; {OPERAND}",),
    ),
    FileCase(
        "when-f-string",
        HEAD + "  a: {task: demo.echo, when: \"f'{1}' == '1'\"}\n",
        (
            "{file}:3:30: step 'a': when: unknown name 'f' at column 1 of \"f'{1}' == '1'\"; "
            'write a reference as ${params.f} or a string as "f"',
        ),
    ),
    FileCase(
        "when-reference-calls-python",
        HEAD + "  a: {task: demo.echo, when: \"${__import__('os')} == 0\"}\n",
        (
            "{file}:3:30: step 'a': when: malformed reference ${__import__('os')} at column 1 of "
            "\"${__import__('os')} == 0\"; unexpected \"('os')\" in ${__import__('os')}; use .field or [index] paths",
        ),
    ),
    FileCase(
        "when-nested-200-deep",
        HEAD + "  a: {task: demo.echo, when: '" + "(" * 200 + "true" + ")" * 200 + "'}\n",
        ("{file}:3:30: step 'a': when: nesting deeper than 100 levels at column 101 of \"((((((...",),
    ),
]


@dataclass(frozen=True)
class CliCase:
    """A command line that must exit with ``code`` and print ``expected`` (a substring) on stderr.

    ``{typed}`` in ``args`` is the path of a valid workflow with a param of every type, ``{seeded}``
    the id of the run the store was seeded with.
    """

    id: str
    args: tuple[str, ...]
    code: int
    expected: str
    also: tuple[str, ...] = field(default_factory=tuple)


BAD_NUMBER = "param 'ratio' must be number, got"

CLI_CASES: list[CliCase] = [
    # -p syntax
    CliCase("p-without-equals", ("run", "{typed}", "-p", "name"), 2, "error: -p 'name' must be KEY=VALUE"),
    CliCase("p-without-key", ("run", "{typed}", "-p", "=feed"), 2, "error: -p '=feed' must be KEY=VALUE"),
    # wrong param types, each named, all at once
    CliCase(
        "integer-given-a-word",
        ("run", "{typed}", "-p", "name=x", "-p", "limit=ten"),
        2,
        "error: param 'limit' must be integer, got 'ten'",
    ),
    CliCase(
        "integer-given-a-fraction",
        ("run", "{typed}", "-p", "name=x", "-p", "limit=2.5"),
        2,
        "error: param 'limit' must be integer, got number 2.5",
    ),
    CliCase(
        "integer-below-minimum",
        ("run", "{typed}", "-p", "name=x", "-p", "limit=0"),
        2,
        "error: param 'limit' must be >= 1, got 0",
    ),
    CliCase(
        "integer-above-maximum",
        ("run", "{typed}", "-p", "name=x", "-p", "limit=101"),
        2,
        "error: param 'limit' must be <= 100, got 101",
    ),
    CliCase(
        "integer-with-5000-digits",
        ("run", "{typed}", "-p", "name=x", "-p", "limit=" + "9" * 5000),
        2,
        "error: param 'limit' must be integer, got '9999999999999999999999999999999999999...'",
    ),
    CliCase("number-nan", ("run", "{typed}", "-p", "name=x", "-p", "ratio=NaN"), 2, f"error: {BAD_NUMBER} 'NaN'"),
    CliCase(
        "number-infinity",
        ("run", "{typed}", "-p", "name=x", "-p", "ratio=-Infinity"),
        2,
        f"error: {BAD_NUMBER} '-Infinity'",
    ),
    CliCase(
        "boolean-given-yes",
        ("run", "{typed}", "-p", "name=x", "-p", "dry=yes"),
        2,
        "error: param 'dry' must be boolean, got 'yes'",
    ),
    CliCase(
        "boolean-given-1",
        ("run", "{typed}", "-p", "name=x", "-p", "dry=1"),
        2,
        "error: param 'dry' must be boolean, got integer 1",
    ),
    CliCase(
        "emoji-code-in-a-value",
        ("run", "{typed}", "-p", "name=x", "-p", "limit=:thumbs_up:"),
        2,
        "error: param 'limit' must be integer, got ':thumbs_up:'",
    ),
    CliCase(
        "markup-in-a-value",
        ("run", "{typed}", "-p", "name=x", "-p", "limit=[bold red]1[/]"),
        2,
        "error: param 'limit' must be integer, got '[bold red]1[/]'",
    ),
    CliCase(
        "array-json-does-not-parse",
        ("run", "{typed}", "-p", "name=x", "-p", "ids=[1,2"),
        2,
        "error: param 'ids' must be array, got '[1,2'",
    ),
    CliCase(
        "array-given-an-object",
        ("run", "{typed}", "-p", "name=x", "-p", 'ids={"a": 1}'),
        2,
        "error: param 'ids' must be array, got object {\"a\": 1}",
    ),
    CliCase(
        "array-nested-too-deep-to-decode",
        ("run", "{typed}", "-p", "name=x", "-p", "ids=" + "[" * 5000 + "]" * 5000),
        2,
        "error: param 'ids' must be array, got '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[...'",
    ),
    CliCase(
        "array-nested-65-deep",
        ("run", "{typed}", "-p", "name=x", "-p", "ids=" + "[" * 65 + "]" * 65),
        2,
        "error: param 'ids' must be JSON: lists and objects nest deeper than 64 levels",
    ),
    CliCase(
        "object-with-nan-inside",
        ("run", "{typed}", "-p", "name=x", "-p", 'opts={"r": NaN}'),
        2,
        "error: param 'opts' must be object, got '{\"r\": NaN}'",
    ),
    CliCase(
        "enum-value-not-allowed",
        ("run", "{typed}", "-p", "name=x", "-p", "mode=ludicrous"),
        2,
        'error: param \'mode\' must be one of ["fast", "slow"], got "ludicrous"',
    ),
    CliCase(
        "required-param-missing",
        (
            "run",
            "{typed}",
        ),
        2,
        "error: param 'name' is required (string)",
    ),
    CliCase(
        "unknown-param",
        ("run", "{typed}", "-p", "name=x", "-p", "nmae=y"),
        2,
        "error: unknown param 'nmae' (declared: dry, ids, limit, mode, name, opts, ratio)",
    ),
    CliCase(
        "every-bad-param-named-at-once",
        ("run", "{typed}", "-p", "limit=x", "-p", "dry=2", "-p", "zzz=1"),
        2,
        "error: param 'limit' must be integer, got 'x'",
        also=(
            "error: param 'dry' must be boolean, got integer 2",
            "error: unknown param 'zzz'",
            "error: param 'name' is required (string)",
        ),
    ),
    # run: target and options
    CliCase(
        "run-empty-target",
        ("run", ""),
        2,
        "error: give a workflow file, or the name of a workflow in ORCH_WORKFLOWS_DIR",
    ),
    CliCase(
        "run-unknown-name",
        ("run", "no-such-flow"),
        2,
        "error: no workflow 'no-such-flow': give a file path, or set ORCH_WORKFLOWS_DIR",
    ),
    CliCase(
        "run-missing-file", ("run", "missing.yaml"), 2, "missing.yaml: cannot read file: No such file or directory"
    ),
    CliCase(
        "run-negative-timeout",
        ("run", "{typed}", "-p", "name=x", "--wait", "--timeout", "-1"),
        2,
        "Invalid value for '--timeout': must be a number of seconds, 0 or more",
    ),
    CliCase(
        "run-nan-timeout",
        ("run", "{typed}", "-p", "name=x", "--wait", "--timeout", "nan"),
        2,
        "Invalid value for '--timeout': must be a number of seconds, 0 or more",
    ),
    CliCase("run-timeout-not-a-number", ("run", "{typed}", "--timeout", "soon"), 2, "Invalid value for '--timeout'"),
    # unknown run ids
    CliCase(
        "status-unknown-run",
        ("status", "0" * 32),
        1,
        f"error: no run with id '{'0' * 32}'; list runs with `orchestrator runs`",
    ),
    CliCase("status-watch-unknown-run", ("status", "nope", "--watch", "--json"), 1, "error: no run with id 'nope'"),
    CliCase("status-run-id-with-key-syntax", ("status", "x}:run:{*"), 1, "error: no run with id 'x}:run:{*'"),
    CliCase("cancel-unknown-run", ("cancel", "f" * 32), 1, f"error: no run with id '{'f' * 32}'"),
    CliCase("cancel-empty-run-id", ("cancel", ""), 1, "error: no run with id ''"),
    CliCase("retry-unknown-run", ("retry", "deadbeef"), 1, "error: no run with id 'deadbeef'"),
    CliCase("retry-a-pending-run", ("retry", "{seeded}"), 2, "is pending; cancel it first or wait for it to finish"),
    # listing and drawing
    CliCase(
        "runs-negative-limit",
        ("runs", "--limit", "-1"),
        2,
        "Invalid value for '--limit': Input should be greater than or equal to 1",
    ),
    CliCase("runs-zero-limit", ("runs", "--limit", "0"), 2, "Invalid value for '--limit'"),
    CliCase(
        "runs-huge-limit",
        ("runs", "--limit", "1000000"),
        2,
        "Invalid value for '--limit': Input should be less than or equal to 1000",
    ),
    CliCase("runs-unknown-status", ("runs", "--status", "exploded"), 2, "Invalid value for '--status'"),
    CliCase("graph-unknown-format", ("graph", "{typed}", "--format", "svg"), 2, "Invalid value for '--format'"),
    CliCase(
        "plan-missing-file", ("plan", "missing.json"), 2, "missing.json: cannot read file: No such file or directory"
    ),
    CliCase("validate-a-directory", ("validate", "."), 2, ".: cannot read file: Is a directory"),
    CliCase("unknown-command", ("explode",), 2, "No such command 'explode'"),
]


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def _circular() -> list[Any]:
    value: list[Any] = []
    value.append(value)
    return value


@dataclass(frozen=True)
class SubmitCase:
    """Params given to ``Coordinator.submit`` that must raise InvalidParams with exactly ``problems``."""

    id: str
    params: Any
    problems: tuple[str, ...]


SUBMIT_CASES: list[SubmitCase] = [
    SubmitCase("not-a-mapping", [("name", "x")], ("params must be an object of names to values, not array",)),
    SubmitCase("a-string-for-params", "name=x", ("params must be an object of names to values, not string",)),
    SubmitCase(
        "every-bad-param-named",
        {"name": 5, "limit": "10", "ratio": True, "dry": "false", "ids": {"a": 1}, "opts": [], "extra": 1},
        (
            "unknown param 'extra' (declared: dry, ids, limit, mode, name, opts, ratio)",
            "param 'name' must be string, got integer 5",
            "param 'limit' must be integer, got string \"10\"",
            "param 'ratio' must be number, got boolean true",
            "param 'dry' must be boolean, got string \"false\"",
            "param 'ids' must be array, got object {\"a\": 1}",
            "param 'opts' must be object, got array []",
        ),
    ),
    SubmitCase(
        "non-string-key",
        {"name": "x", 1: "one"},
        ("unknown param 1 (declared: dry, ids, limit, mode, name, opts, ratio)",),
    ),
    SubmitCase(
        "nan",
        {"name": "x", "ratio": float("nan")},
        ("param 'ratio' must be JSON: NaN is not a JSON number; give a finite number",),
    ),
    SubmitCase(
        "infinity-inside-an-array",
        {"name": "x", "ids": [1, float("inf")]},
        ("param 'ids' must be JSON: Infinity is not a JSON number; give a finite number",),
    ),
    SubmitCase(
        "a-set-inside-an-object",
        {"name": "x", "opts": {"tags": {"a", "b"}}},
        (
            "param 'opts' must be JSON: a value of type set is not JSON; "
            "use strings, numbers, booleans, null, lists and objects",
        ),
    ),
    SubmitCase(
        "an-object-instance",
        {"name": "x", "opts": {"when": object()}},
        (
            "param 'opts' must be JSON: a value of type object is not JSON; "
            "use strings, numbers, booleans, null, lists and objects",
        ),
    ),
    SubmitCase(
        "a-lone-surrogate-in-a-string",
        {"name": "caf\udce9"},
        (
            "param 'name' must be JSON: text \"caf\\udce9\" is not UTF-8 (it holds a lone surrogate, as a file name "
            "that is not UTF-8 does)",
        ),
    ),
    SubmitCase(
        "a-lone-surrogate-in-a-key",
        {"name": "x", "opts": {"k\udce9": 1}},
        (
            "param 'opts' must be JSON: object key \"k\\udce9\" is not UTF-8 (it holds a lone surrogate, as a file "
            "name that is not UTF-8 does)",
        ),
    ),
    SubmitCase(
        "bytes-for-a-string",
        {"name": b"x"},
        ("param 'name' must be string, got bytes \"b'x'\"",),
    ),
    SubmitCase(
        "integer-keys-in-an-object",
        {"name": "x", "opts": {1: "one"}},
        ("param 'opts' must be JSON: object keys are strings, not integer 1",),
    ),
    SubmitCase(
        "a-zero-key-in-an-object",
        {"name": "x", "opts": {"a": {0: "zero"}}},
        ("param 'opts' must be JSON: object keys are strings, not integer 0",),
    ),
    SubmitCase(
        "a-tuple-for-an-array-is-fine-but-not-its-nan",
        {"name": "x", "ids": (1, float("nan"))},
        ("param 'ids' must be JSON: NaN is not a JSON number; give a finite number",),
    ),
    SubmitCase(
        "an-integer-json-cannot-read-back",
        {"name": "x", "limit": 10**5000},
        ("param 'limit' must be JSON: an integer of more than 4000 digits",),
    ),
    SubmitCase(
        "an-array-300-deep",
        {"name": "x", "ids": _nested(300)},
        ("param 'ids' must be JSON: lists and objects nest deeper than 64 levels",),
    ),
    SubmitCase(
        "a-circular-array",
        {"name": "x", "ids": _circular()},
        ("param 'ids' must be JSON: lists and objects nest deeper than 64 levels",),
    ),
]
