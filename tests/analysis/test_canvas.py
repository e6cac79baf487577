"""DAG -> canvas: series-parallel graphs become exact chains, groups and chords; other graphs get runtime
joins and no false wait. Properties on random DAGs up to 200 steps: the canvas enforces exactly the
DAG's transitive closure, holds every step once, and is pure canvas when the DAG is series-parallel."""

from __future__ import annotations

from hypothesis import given, settings

from orchestrator.analysis.canvas import (
    Canvas,
    Chain,
    Group,
    Prime,
    Task,
    children,
    decompose,
    precedence,
    render,
    runtime_joins,
    steps_of,
    walk,
)
from orchestrator.definition.graph import Dag
from tests.strategies import dags, series_parallel_dags

PROPERTIES = settings(max_examples=150, deadline=None)


def graph(spec: str) -> Dag:
    """``"a>b a>c d"``: edges ``a -> b`` (b needs a), ``a -> c`` and a lone step ``d``."""
    nodes: dict[str, None] = {}
    edges: list[tuple[str, str]] = []
    for token in spec.split():
        names = token.split(">")
        nodes.update(dict.fromkeys(names))
        edges.extend(zip(names, names[1:], strict=False))
    return Dag.from_edges(nodes, edges)


def tasks(*steps: str) -> tuple[Task, ...]:
    return tuple(Task(s) for s in steps)


def check_shape(tree: Canvas) -> None:
    """The decomposition's normal form: no chain in a chain, no group in a group, no one-item
    composite, and joins blocks of linear runs with forward edges (a prime block has >= 4)."""
    for node in walk(tree):
        if isinstance(node, Chain):
            assert len(node.items) >= 2
            assert not any(isinstance(item, Chain) for item in node.items)
        elif isinstance(node, Group):
            assert len(node.items) >= 2
            assert not any(isinstance(item, Group) for item in node.items)
        elif isinstance(node, Prime):
            assert len(node.nodes) >= 4
            for run in node.nodes:
                assert isinstance(run, Task) or all(isinstance(t, Task) for t in children(run))
            assert list(node.edges) == sorted(set(node.edges))
            assert all(0 <= i < j < len(node.nodes) for i, j in node.edges)


# --- examples -----------------------------------------------------------------------------------


def test_the_smallest_non_series_parallel_dag_gets_a_runtime_join_and_no_false_wait() -> None:
    dag = graph("a>c a>d b>d")
    tree = decompose(dag)
    assert tree == Prime(tasks("a", "b", "c", "d"), ((0, 2), (0, 3), (1, 3)))
    assert runtime_joins(tree) == {"c": ("a",), "d": ("a", "b")}
    assert ("b", "c") not in precedence(tree)  # group(a, b) -> c would make c wait for b
    assert precedence(tree) == dag.closure()
    assert render(tree) == "joins(a, b, c, d; a->c, a->d, b->d)"


def test_diamond_is_a_chord_in_a_chain() -> None:
    tree = decompose(graph("a>b a>c b>d c>d"))
    assert tree == Chain((Task("a"), Group(tasks("b", "c")), Task("d")))
    assert render(tree) == "chain(a, chord(group(b, c), d))"
    assert runtime_joins(tree) == {}


def test_pure_chain() -> None:
    tree = decompose(graph("a>b>c>d"))
    assert tree == Chain(tasks("a", "b", "c", "d"))
    assert render(tree) == "chain(a, b, c, d)"


def test_pure_group() -> None:
    tree = decompose(graph("a b c"))
    assert tree == Group(tasks("a", "b", "c"))
    assert render(tree) == "group(a, b, c)"


def test_one_step_and_no_steps() -> None:
    assert decompose(graph("a")) == Task("a")
    assert render(Task("a")) == "a"
    assert decompose(Dag({})) == Group(())
    assert list(steps_of(Group(()))) == []


def test_disconnected_parts_are_a_group_in_definition_order() -> None:
    tree = decompose(graph("x>y a>b>c lone"))
    assert tree == Group((Chain(tasks("x", "y")), Chain(tasks("a", "b", "c")), Task("lone")))
    assert render(tree) == "group(chain(x, y), chain(a, b, c), lone)"


def test_transitive_edge_adds_nothing() -> None:
    dag = graph("a>b>c a>c")
    tree = decompose(dag)
    assert tree == Chain(tasks("a", "b", "c"))
    assert precedence(tree) == dag.closure() == {("a", "b"), ("a", "c"), ("b", "c")}


def test_fan_out_and_fan_in_is_one_chord() -> None:
    tree = decompose(graph("src>w1>sink src>w2>sink src>w3>sink"))
    assert render(tree) == "chain(src, chord(group(w1, w2, w3), sink))"
    assert render(tree, frozenset({"w2"})) == "chain(src, chord(group(w1, for_each(w2), w3), sink))"


def test_groups_in_series_and_a_chord_followed_by_a_step() -> None:
    # a, b both before c, d: complete bipartite -> two groups in a chain.
    assert render(decompose(graph("a>c a>d b>c b>d"))) == "chain(group(a, b), group(c, d))"
    assert render(decompose(graph("a>c b>c c>d"))) == "chain(chord(group(a, b), c), d)"


def test_branches_that_are_chains() -> None:
    tree = decompose(graph("a>b1>b2>d a>c1>d"))
    assert render(tree) == "chain(a, chord(group(chain(b1, b2), c1), d))"


def test_linear_runs_in_a_prime_block_are_chains_joined_at_their_ends() -> None:
    # The N shape with a and d stretched into runs: a1>a2 and d1>d2.
    dag = graph("a1>a2>c a2>d1>d2 b>d1")
    tree = decompose(dag)
    assert tree == Prime(
        (Chain(tasks("a1", "a2")), Task("b"), Task("c"), Chain(tasks("d1", "d2"))),
        ((0, 2), (0, 3), (1, 3)),
    )
    assert runtime_joins(tree) == {"c": ("a2",), "d1": ("a2", "b")}
    assert render(tree) == "joins(chain(a1, a2), b, c, chain(d1, d2); a2->c, a2->d1, b->d1)"
    assert precedence(tree) == dag.closure()


def test_prime_block_inside_a_chain() -> None:
    dag = graph("start>a start>b a>c a>d b>d c>end d>end")
    tree = decompose(dag)
    assert tree == Chain((Task("start"), Prime(tasks("a", "b", "c", "d"), ((0, 2), (0, 3), (1, 3))), Task("end")))
    assert render(tree) == "chain(start, joins(a, b, c, d; a->c, a->d, b->d), end)"
    assert precedence(tree) == dag.closure()


def nested(depth: int) -> Dag:
    """G(k) = x(k) ; (G(k-1) || y(k)) ; z(k): series and parallel nested ``depth`` deep."""
    needs: dict[str, tuple[str, ...]] = {"g0": ()}
    source = sink = "g0"
    for k in range(1, depth + 1):
        needs[f"x{k}"] = ()
        needs[source] = (f"x{k}", *needs[source])
        needs[f"y{k}"] = (f"x{k}",)
        needs[f"z{k}"] = (sink, f"y{k}")
        source, sink = f"x{k}", f"z{k}"
    return Dag(needs)


def test_deep_nesting_does_not_hit_the_recursion_limit() -> None:
    dag = nested(400)  # 1,201 steps, 800 levels of chain/group; recursion failed from ~300
    tree = decompose(dag)
    text = render(tree)
    assert sorted(steps_of(tree)) == sorted(dag.needs)
    assert not any(isinstance(node, Prime) for node in walk(tree))
    assert text.startswith("chain(x400, chord(group(chain(x399, ")
    assert runtime_joins(tree) == {}


def test_a_10000_step_chain_decomposes_into_one_chain() -> None:
    # How long it takes is measured in bench/compile.py, not asserted here.
    dag = Dag({f"s{i}": (f"s{i - 1}",) if i else () for i in range(10_000)})
    tree = decompose(dag)
    assert isinstance(tree, Chain) and len(tree.items) == 10_000


# --- properties ---------------------------------------------------------------------------------


@PROPERTIES
@given(dags())
def test_canvas_precedence_is_the_transitive_closure(dag: Dag) -> None:
    tree = decompose(dag)
    assert precedence(tree) == dag.closure()


@PROPERTIES
@given(dags())
def test_every_step_appears_exactly_once(dag: Dag) -> None:
    tree = decompose(dag)
    assert sorted(steps_of(tree)) == sorted(dag.needs)
    check_shape(tree)


@PROPERTIES
@given(dags())
def test_runtime_joins_wait_only_for_direct_needs(dag: Dag) -> None:
    tree = decompose(dag)
    joins = runtime_joins(tree)
    for step, waits in joins.items():
        assert len(set(waits)) == len(waits)
        assert set(waits) <= set(dag.needs[step])
    # Exactly the first steps of runs with an incoming edge are joined at run time.
    heads = {next(steps_of(block.nodes[j])) for block in walk(tree) if isinstance(block, Prime) for _, j in block.edges}
    assert set(joins) == heads


@PROPERTIES
@given(series_parallel_dags())
def test_series_parallel_dags_map_exactly_onto_canvas(dag: Dag) -> None:
    tree = decompose(dag)
    assert not any(isinstance(node, Prime) for node in walk(tree))
    assert runtime_joins(tree) == {}
    assert "joins(" not in render(tree)
    assert precedence(tree) == dag.closure()
    assert sorted(steps_of(tree)) == sorted(dag.needs)
    check_shape(tree)


@PROPERTIES
@given(dags(max_nodes=60))
def test_definition_order_changes_no_wait(dag: Dag) -> None:
    # Reversing the definition order may reorder groups but never changes what waits for what.
    reversed_dag = Dag(dict(list(dag.needs.items())[::-1]))
    assert precedence(decompose(reversed_dag)) == precedence(decompose(dag))
    assert set(runtime_joins(decompose(reversed_dag))) == set(runtime_joins(decompose(dag)))
