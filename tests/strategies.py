"""Hypothesis strategies shared by the test suites: random DAGs of every shape."""

from __future__ import annotations

import random

from hypothesis import strategies as st

from orchestrator.definition.graph import Dag


@st.composite
def dags(draw: st.DrawFn, max_nodes: int = 200, min_nodes: int = 1) -> Dag:
    """Random DAGs: edges only from a lower to a higher index of a random permutation.

    Density from none to dense; edges from anywhere below a step, or only from the few just below
    it (long paths, many non-series-parallel blocks). Steps are defined in a shuffled order.
    """
    n = draw(st.integers(min_nodes, max_nodes))
    degree = draw(st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 6.0, 20.0]))
    window = draw(st.sampled_from([None, 2, 5]))
    # A seeded generator, not a draw per possible edge (too slow at 200 steps); a byte-string
    # seed because with an integer one hypothesis drew the smallest size far too often.
    rnd = random.Random(draw(st.binary(min_size=8, max_size=8)))
    names = [f"s{k}" for k in rnd.sample(range(n), n)]
    needs: dict[str, tuple[str, ...]] = {}
    for j, name in enumerate(names):
        below = range(j) if window is None else range(max(0, j - window), j)
        p = min(1.0, degree / len(below)) if below else 0.0
        needs[name] = tuple(names[i] for i in below if rnd.random() < p)
    defined = list(needs)
    rnd.shuffle(defined)
    return Dag({name: needs[name] for name in defined})


@st.composite
def series_parallel_dags(draw: st.DrawFn, max_nodes: int = 200) -> Dag:
    """Series-parallel DAGs built by random series and parallel composition.

    ``random`` composes two random parts at a time (shallow, bushy); ``nested`` always composes
    the part built so far with one more step (nesting as deep as the DAG is large). A series
    composition A;B makes every sink of A a need of every source of B. Shortcut edges (a need
    on a step already upstream) are added afterwards: they change no precedence, so the DAG stays
    series-parallel.
    """
    n = draw(st.integers(1, max_nodes))
    series = draw(st.sampled_from([0.2, 0.5, 0.8]))
    nested = draw(st.booleans())
    shortcuts = draw(st.sampled_from([0, 0, 3, 30]))
    rnd = random.Random(draw(st.binary(min_size=8, max_size=8)))
    names = [f"s{k}" for k in rnd.sample(range(n), n)]
    needs: dict[str, set[str]] = {name: set() for name in names}
    parts = [([name], [name], [name]) for name in names]  # (steps, sources, sinks)
    while len(parts) > 1:
        if nested:
            a, b = parts.pop(), parts.pop()
        else:
            a = parts.pop(rnd.randrange(len(parts)))
            b = parts.pop(rnd.randrange(len(parts)))
        if rnd.random() < series:
            for source in b[1]:
                needs[source].update(a[2])
            parts.append((a[0] + b[0], a[1], b[2]))
        else:
            parts.append((a[0] + b[0], a[1] + b[1], a[2] + b[2]))
    ancestors = Dag({k: tuple(v) for k, v in needs.items()}).ancestors
    for _ in range(shortcuts):
        step = rnd.choice(names)
        if ancestors[step]:
            needs[step].add(rnd.choice(sorted(ancestors[step])))
    defined = list(needs)
    rnd.shuffle(defined)
    return Dag({name: tuple(rnd.sample(sorted(needs[name]), len(needs[name]))) for name in defined})
