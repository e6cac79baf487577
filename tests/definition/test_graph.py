"""The step graph: topological order, cycles with their path, ancestry (sets and bitsets), closure,
levels and the critical path; checked on hand-made graphs and, by property, on random DAGs."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.definition.graph import Dag
from tests.strategies import dags

PROPERTIES = settings(max_examples=150, deadline=None)


def reachability(dag: Dag) -> frozenset[tuple[str, str]]:
    """The closure the slow, obvious way: a search upward from every node."""
    pairs: set[tuple[str, str]] = set()
    for node in dag.needs:
        todo, seen = list(dag.needs[node]), set()
        while todo:
            up = todo.pop()
            if up not in seen:
                seen.add(up)
                todo.extend(dag.needs[up])
        pairs.update((up, node) for up in seen)
    return frozenset(pairs)


def chain(n: int) -> Dag:
    return Dag({f"s{i}": (f"s{i - 1}",) if i else () for i in range(n)})


DIAMOND = Dag({"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c")})


# --- order --------------------------------------------------------------------------------------


def test_order_is_topological_and_follows_definition_order_among_ready_steps() -> None:
    dag = Dag({"late": ("x",), "x": (), "y": (), "z": ("y", "x")})
    assert dag.order == ("x", "y", "late", "z")


def test_order_counts_a_need_listed_twice_once() -> None:
    assert Dag({"a": (), "b": ("a", "a")}).order == ("a", "b")


def test_order_of_a_cyclic_graph_raises() -> None:
    with pytest.raises(ValueError, match="cycle"):
        _ = Dag({"a": ("b",), "b": ("a",)}).order


def test_from_edges_builds_needs() -> None:
    dag = Dag.from_edges("abc", [("a", "b"), ("b", "c"), ("a", "c")])
    assert dag.needs == {"a": (), "b": ("a",), "c": ("b", "a")}
    assert dag.dependents == {"a": ("b", "c"), "b": ("c",), "c": ()}


# --- cycles -------------------------------------------------------------------------------------


def test_acyclic_graph_has_no_cycles() -> None:
    assert DIAMOND.cycles() == []


def test_cycle_is_a_closed_path_from_the_step_defined_first() -> None:
    # x needs z, y needs x, z needs y: x -> y -> z -> x along "is needed by".
    dag = Dag({"start": (), "x": ("z", "start"), "y": ("x",), "z": ("y",), "end": ("z",)})
    assert dag.cycles() == [["x", "y", "z", "x"]]


def test_self_need_is_a_cycle_of_one() -> None:
    assert Dag({"a": (), "b": ("a", "b")}).cycles() == [["b", "b"]]


def test_each_cyclic_component_is_named_once() -> None:
    dag = Dag({"a": ("b",), "b": ("a",), "c": (), "d": ("e", "c"), "e": ("d",)})
    assert sorted(dag.cycles()) == [["a", "b", "a"], ["d", "e", "d"]]


def test_cycle_path_only_uses_real_edges() -> None:
    # Two cycles sharing a node form one component; the path returned must follow needs.
    dag = Dag({"a": ("c", "e"), "b": ("a",), "c": ("b",), "d": ("a",), "e": ("d",)})
    [cycle] = dag.cycles()
    assert cycle[0] == cycle[-1] == "a"
    assert len(set(cycle[:-1])) == len(cycle) - 1
    for before, after in zip(cycle, cycle[1:], strict=False):
        assert before in dag.needs[after]


def test_a_10000_step_cycle_is_named_without_recursion() -> None:
    n = 10_000
    dag = Dag({f"s{i}": (f"s{(i - 1) % n}",) for i in range(n)})
    [cycle] = dag.cycles()
    assert cycle == [f"s{i}" for i in range(n)] + ["s0"]


@PROPERTIES
@given(dags(min_nodes=0))
def test_random_dags_have_no_cycles(dag: Dag) -> None:
    assert dag.cycles() == []


@PROPERTIES
@given(dags(max_nodes=60), st.randoms(use_true_random=False))
def test_closing_a_path_makes_a_cycle_through_it(dag: Dag, rnd: random.Random) -> None:
    pairs = sorted(dag.closure())
    if not pairs:
        return
    before, after = rnd.choice(pairs)
    cyclic = Dag({**dag.needs, before: (*dag.needs[before], after)})
    cycles = cyclic.cycles()
    assert len(cycles) == 1
    assert {before, after} <= set(cycles[0])
    with pytest.raises(ValueError):
        _ = cyclic.order


# --- ancestry -----------------------------------------------------------------------------------


def test_ancestors_of_the_diamond() -> None:
    assert DIAMOND.ancestors == {
        "a": frozenset(),
        "b": {"a"},
        "c": {"a"},
        "d": {"a", "b", "c"},
    }


def test_is_ancestor_and_masks() -> None:
    assert DIAMOND.is_ancestor("a", "d")
    assert DIAMOND.is_ancestor("b", "d")
    assert not DIAMOND.is_ancestor("d", "a")
    assert not DIAMOND.is_ancestor("b", "c")
    assert not DIAMOND.is_ancestor("a", "a")
    assert DIAMOND.ancestor_mask("d") == DIAMOND.mask("abc")
    assert DIAMOND.ancestor_mask("b") & DIAMOND.mask(["c", "a"])
    assert not DIAMOND.ancestor_mask("b") & DIAMOND.mask(["c", "d"])
    with pytest.raises(KeyError):
        DIAMOND.is_ancestor("nope", "a")


def test_is_ancestor_on_a_10000_step_chain_does_not_materialise_the_closure() -> None:
    dag = chain(10_000)
    assert dag.is_ancestor("s0", "s9999")
    assert not dag.is_ancestor("s9999", "s0")
    assert "ancestors" not in vars(dag)  # the set-based cache was not built on the way


def test_transitive_edges_do_not_change_the_closure() -> None:
    plain = Dag({"a": (), "b": ("a",), "c": ("b",)})
    shortcut = Dag({"a": (), "b": ("a",), "c": ("b", "a")})
    assert plain.closure() == shortcut.closure() == {("a", "b"), ("a", "c"), ("b", "c")}


@PROPERTIES
@given(dags(min_nodes=0))
def test_closure_is_reachability(dag: Dag) -> None:
    closure = dag.closure()
    assert closure == reachability(dag)
    assert closure == {(a, n) for n, ancestors in dag.ancestors.items() for a in ancestors}


@PROPERTIES
@given(dags(max_nodes=80))
def test_is_ancestor_agrees_with_the_closure(dag: Dag) -> None:
    closure = dag.closure()
    for before in dag.needs:
        for after in dag.needs:
            assert dag.is_ancestor(before, after) == ((before, after) in closure)


@PROPERTIES
@given(dags(min_nodes=0))
def test_order_is_a_topological_order(dag: Dag) -> None:
    order = dag.order
    assert sorted(order) == sorted(dag.needs)
    position = {n: i for i, n in enumerate(order)}
    assert dag.position == position
    for node, needs in dag.needs.items():
        assert all(position[p] < position[node] for p in needs)


# --- levels and the critical path ---------------------------------------------------------------


def test_levels_of_the_diamond() -> None:
    assert DIAMOND.levels == {"a": 0, "b": 1, "c": 1, "d": 2}


def test_longest_path_follows_the_heaviest_branch() -> None:
    path, total = DIAMOND.longest_path({"a": 1.0, "b": 5.0, "c": 2.0, "d": 1.0})
    assert path == ["a", "b", "d"]
    assert total == 7.0


def test_longest_path_of_an_empty_graph() -> None:
    assert Dag({}).longest_path({}) == ([], 0.0)


@PROPERTIES
@given(dags(min_nodes=0))
def test_levels_are_the_longest_chain_of_needs_above(dag: Dag) -> None:
    levels = dag.levels
    for node, needs in dag.needs.items():
        assert levels[node] == (1 + max(levels[p] for p in needs) if needs else 0)
    if dag.needs:
        path, total = dag.longest_path(dict.fromkeys(dag.needs, 1.0))
        assert total == len(path) == 1 + max(levels.values())
        assert all(before in dag.needs[after] for before, after in zip(path, path[1:], strict=False))
