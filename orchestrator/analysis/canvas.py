"""The DAG as Celery canvas: chains, groups, chords, and runtime joins where canvas cannot say it.

A series-parallel DAG maps exactly onto canvas: ``chain`` is series composition (everything in
one element precedes everything in the next; a group followed by a step is a chord), ``group`` is
parallel composition. Other DAGs contain "prime" blocks (the smallest: a->c, a->d, b->d): forcing
them into groups adds false waits (c would wait for b), so such a block is kept as a :class:`Prime`
node whose edges are joined at run time by a counter per step.

:func:`decompose` works top-down on convex sets of steps: split into connected components
(``group``), else split in series (``chain``), else the set is :class:`Prime` (``joins(...)``). It never
materialises the transitive closure: a series split is found by comparing each step's number of
ancestors with the length of a prefix of the topological order, and those counts are derived once
from ancestor bitsets. Each level of nesting costs time linear in its steps and needs, so the
total is O((steps + needs) * nesting depth): a 10,000-step DAG of any ordinary shape decomposes in
a fraction of a second (``bench/compile.py``), while one nested thousands of levels deep takes
seconds.

Every function here walks the tree with an explicit stack: a valid DAG nested thousands of levels
deep must not hit Python's recursion limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from orchestrator.definition.graph import Dag


@dataclass(frozen=True)
class Task:
    """One step."""

    step: str


@dataclass(frozen=True)
class Chain:
    """Series composition: each element starts when the previous one has ended."""

    items: tuple[Canvas, ...]


@dataclass(frozen=True)
class Group:
    """Parallel composition: elements run independently."""

    items: tuple[Canvas, ...]


@dataclass(frozen=True)
class Prime:
    """A block that is not series-parallel, joined at run time.

    Attributes:
        nodes: Linear runs of steps (a :class:`Task` or a :class:`Chain` of tasks).
        edges: ``(i, j)`` with ``i < j``: the last step of ``nodes[i]`` is a need of the first
            step of ``nodes[j]``.
    """

    nodes: tuple[Canvas, ...]
    edges: tuple[tuple[int, int], ...]


Canvas = Task | Chain | Group | Prime


def children(node: Canvas) -> tuple[Canvas, ...]:
    """The direct sub-canvases of a node (none for a :class:`Task`)."""
    if isinstance(node, Task):
        return ()
    return node.nodes if isinstance(node, Prime) else node.items


def walk(node: Canvas) -> Iterator[Canvas]:
    """Every node of a canvas, parents before children, children in order."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(children(current)))


def steps_of(node: Canvas) -> Iterator[str]:
    """Every step in a canvas, in order."""
    return (n.step for n in walk(node) if isinstance(n, Task))


def decompose(dag: Dag) -> Canvas:
    """Decompose an acyclic graph into canvas with runtime joins only where needed.

    Args:
        dag: The step graph; needs listed twice count once.

    Returns:
        ``Group(())`` for an empty graph, else a canvas holding every step exactly once whose
        :func:`precedence` is the graph's transitive closure.

    Raises:
        ValueError: the graph has a cycle.
    """
    return _Decomposer(dag).run()


# A job: a convex set of step indexes in topological order, its ancestor-count offset, and what
# is already known about it: nothing, _CONNECTED (a component) or _UNSPLIT (a series element).
_Job = tuple[list[int], int, int]
_UNKNOWN, _CONNECTED, _UNSPLIT = 0, 1, 2
# A job's result: a finished canvas, or ("group" | "chain", ids of the child jobs).
_Pending = Canvas | tuple[str, list[int]]


class _Decomposer:
    """Top-down decomposition over integer step indexes (positions in ``dag.order``)."""

    def __init__(self, dag: Dag) -> None:
        self.order = dag.order
        position = dag.position
        self.preds: list[list[int]] = [[position[p] for p in dict.fromkeys(dag.needs[n])] for n in self.order]
        self.succs: list[list[int]] = [[] for _ in self.order]
        for m, ps in enumerate(self.preds):
            for p in ps:
                self.succs[p].append(m)
        # How many steps each step transitively waits for. Within a convex set handled by a job,
        # a step's ancestors inside the set number ``ancestors[m] - offset`` (see ``_series``).
        self.ancestors = [mask.bit_count() for mask in dag.ancestor_masks]
        # Scratch arrays shared by all jobs (one job runs at a time): ``stamp[m] == job`` marks
        # membership in the current job; ``scratch`` holds a per-member counter or label.
        self.stamp = [-1] * len(self.order)
        self.scratch = [0] * len(self.order)

    def run(self) -> Canvas:
        if not self.order:
            return Group(())
        # Jobs are convex sets of steps, each listed in topological order. Children get larger
        # ids than their parent, so building results from the last id back finds them ready.
        jobs: list[_Job | None] = [(list(range(len(self.order))), 0, _UNKNOWN)]
        results: list[_Pending | None] = [None]
        stack = [0]
        while stack:
            job = stack.pop()
            entry = jobs[job]
            assert entry is not None
            jobs[job] = None  # release the member list once split
            result = self._split(job, *entry)
            if isinstance(result, tuple):
                kind, parts = result
                ids = list(range(len(jobs), len(jobs) + len(parts)))
                jobs.extend(parts)
                results.extend([None] * len(parts))
                stack.extend(reversed(ids))  # depth first keeps the live member lists small
                results[job] = (kind, ids)
            else:
                results[job] = result
        built: list[Canvas | None] = [None] * len(results)
        for job in range(len(results) - 1, -1, -1):
            item = results[job]
            assert item is not None
            if isinstance(item, tuple):
                kind, ids = item
                items: list[Canvas] = []
                for i in ids:
                    child = built[i]
                    assert child is not None
                    items.append(child)
                    built[i] = None  # now owned by its parent
                built[job] = Group(tuple(items)) if kind == "group" else _chain(items)
            else:
                built[job] = item
        root = built[0]
        assert root is not None
        return root

    def _split(self, job: int, members: list[int], offset: int, known: int) -> Canvas | tuple[str, list[_Job]]:
        """One level: a task, a group of components, a chain of series elements, or a prime block.

        A component is connected, and a series element has no series split of its own (its
        parent was split at every point there is), so each level runs one of the two searches.
        """
        if len(members) == 1:
            return Task(self.order[members[0]])
        for m in members:
            self.stamp[m] = job
        if known != _CONNECTED:
            components = self._components(job, members)
            if len(components) > 1:
                # A step's ancestors in the set are all in its own component: same offset.
                return "group", [(c, offset, _CONNECTED) for c in components]
        if known != _UNSPLIT:
            elements = self._series(job, members, offset)
            if len(elements) > 1:
                parts: list[_Job] = []
                for element in elements:
                    parts.append((element, offset, _UNSPLIT))
                    # Every earlier element is upstream of every later step.
                    offset += len(element)
                return "chain", parts
        return self._prime(job, members)

    def _components(self, job: int, members: list[int]) -> list[list[int]]:
        """Weakly connected components, each in topological order, ordered by their first step."""
        label, stamp, preds, succs = self.scratch, self.stamp, self.preds, self.succs
        for m in members:
            label[m] = -1
        count = 0
        for m in members:
            if label[m] >= 0:
                continue
            label[m] = count
            todo = [m]
            while todo:
                x = todo.pop()
                for y in preds[x]:
                    if stamp[y] == job and label[y] < 0:
                        label[y] = count
                        todo.append(y)
                for y in succs[x]:
                    if stamp[y] == job and label[y] < 0:
                        label[y] = count
                        todo.append(y)
            count += 1
        if count == 1:
            return [members]
        out: list[list[int]] = [[] for _ in range(count)]
        for m in members:
            out[label[m]].append(m)
        return out

    def _series(self, job: int, members: list[int], offset: int) -> list[list[int]]:
        """Split at every prefix P of the order such that all of P precedes all the rest.

        The steps not in P whose needs in the set are all in P (the frontier) have all their
        ancestors in the set inside P; so all of P precedes the rest exactly when every frontier
        step has ``len(P)`` ancestors in the set. A histogram of the frontier's ancestor counts
        makes that test O(1) per prefix.
        """
        pending, stamp, succs, ancestors = self.scratch, self.stamp, self.succs, self.ancestors
        for m in members:
            pending[m] = 0
        for m in members:
            for d in succs[m]:
                if stamp[d] == job:
                    pending[d] += 1
        # frontier[c]: how many frontier steps have c ancestors (c - offset of them in the set).
        frontier: dict[int, int] = {}
        size = 0
        for m in members:
            if pending[m] == 0:
                key = ancestors[m]
                frontier[key] = frontier.get(key, 0) + 1
                size += 1
        elements: list[list[int]] = []
        current: list[int] = []
        target = offset  # ancestors a frontier step has when it waits for all of P
        last = members[-1]
        for m in members:
            current.append(m)
            target += 1
            frontier[ancestors[m]] -= 1
            size -= 1
            for d in succs[m]:
                if stamp[d] == job:
                    pending[d] -= 1
                    if pending[d] == 0:
                        key = ancestors[d]
                        frontier[key] = frontier.get(key, 0) + 1
                        size += 1
            if m != last and frontier.get(target, 0) == size:
                elements.append(current)
                current = []
        elements.append(current)
        return elements

    def _prime(self, job: int, members: list[int]) -> Prime:
        """A block with no series or parallel split: contract linear runs, join the rest at run time."""
        stamp, order = self.stamp, self.order
        head = self.scratch  # member -> index of its run
        runs: list[list[int]] = []
        edges: set[tuple[int, int]] = set()
        for m in members:  # topological order: a run's head is seen first
            inner = [p for p in self.preds[m] if stamp[p] == job]
            if len(inner) == 1 and sum(1 for d in self.succs[inner[0]] if stamp[d] == job) == 1:
                head[m] = head[inner[0]]
                runs[head[m]].append(m)
                continue
            head[m] = len(runs)
            runs.append([m])
            # A cross-run edge leaves the last step of a run (a step with one successor would
            # have absorbed it) and enters the first step of a later run.
            edges.update((head[p], head[m]) for p in inner)
        nodes = tuple(Task(order[r[0]]) if len(r) == 1 else Chain(tuple(Task(order[m]) for m in r)) for r in runs)
        return Prime(nodes, tuple(sorted(edges)))


def _chain(items: Iterable[Canvas]) -> Canvas:
    """Series composition of ``items``, flattening nested chains."""
    flat: list[Canvas] = []
    for item in items:
        flat.extend(item.items if isinstance(item, Chain) else (item,))
    return flat[0] if len(flat) == 1 else Chain(tuple(flat))


def _first(node: Canvas) -> str:
    while not isinstance(node, Task):
        node = children(node)[0]
    return node.step


def _last(node: Canvas) -> str:
    while not isinstance(node, Task):
        node = children(node)[-1]
    return node.step


def precedence(node: Canvas) -> frozenset[tuple[str, str]]:
    """The (before, after) pairs a canvas enforces, transitively closed within it.

    For checking a decomposition against :meth:`Dag.closure`: it lists every ordered pair, so it
    is quadratic in the number of steps.
    """
    pairs: set[tuple[str, str]] = set()
    for sub in walk(node):
        if isinstance(sub, Task | Group):
            continue
        items = children(sub)
        members = [list(steps_of(item)) for item in items]
        if isinstance(sub, Chain):
            links = [(i, j) for i in range(len(items)) for j in range(i + 1, len(items))]
        else:
            links = _closure(len(items), sub.edges)
        for i, j in links:
            pairs.update((a, b) for a in members[i] for b in members[j])
    return frozenset(pairs)


def _closure(count: int, edges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Transitive closure of edges that point forward (i < j), as a backward sweep over bitsets."""
    out: dict[int, list[int]] = {}
    for i, j in edges:
        out.setdefault(i, []).append(j)
    reach = [0] * count
    for i in range(count - 1, -1, -1):
        for j in out.get(i, ()):
            reach[i] |= (1 << j) | reach[j]
    return [(i, j) for i in range(count) for j in range(count) if reach[i] >> j & 1]


def runtime_joins(node: Canvas) -> Mapping[str, tuple[str, ...]]:
    """Steps joined at run time (inside :class:`Prime` blocks) -> the steps they wait for there."""
    found: dict[str, list[str]] = {}
    for block in walk(node):
        if not isinstance(block, Prime):
            continue
        firsts = [_first(n) for n in block.nodes]
        lasts = [_last(n) for n in block.nodes]
        for i, j in block.edges:
            found.setdefault(firsts[j], []).append(lasts[i])
    return {k: tuple(v) for k, v in found.items()}


def render(node: Canvas, fan_out: frozenset[str] = frozenset()) -> str:
    """Celery-like notation: ``chain(a, chord(group(b, c), d))``; runtime joins as ``joins(...)``.

    Args:
        node: The canvas.
        fan_out: Steps shown as ``for_each(step)``.
    """
    out: list[str] = []
    stack: list[Canvas | str] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, Task):
            out.append(f"for_each({item.step})" if item.step in fan_out else item.step)
        else:
            stack.extend(reversed(_tokens(item)))
    return "".join(out)


def _tokens(node: Chain | Group | Prime) -> list[Canvas | str]:
    """One level of :func:`render`: literal text and the sub-canvases to render in its place."""
    if isinstance(node, Group):
        return ["group(", *_commas(node.items), ")"]
    if isinstance(node, Prime):
        firsts = [_first(n) for n in node.nodes]
        lasts = [_last(n) for n in node.nodes]
        edges = ", ".join(f"{lasts[i]}->{firsts[j]}" for i, j in node.edges)
        return ["joins(", *_commas(node.nodes), "; " + edges + ")"]
    # In a chain, a group followed by a step is a chord: the step is its callback.
    parts: list[list[Canvas | str]] = []
    chord_open = False
    for item in node.items:
        if chord_open and isinstance(item, Task):
            parts[-1] = ["chord(", *parts[-1], ", ", item, ")"]
            chord_open = False
        else:
            parts.append([item])
            chord_open = isinstance(item, Group)
    if len(parts) == 1:
        return parts[0]
    tokens: list[Canvas | str] = ["chain("]
    for k, part in enumerate(parts):
        if k:
            tokens.append(", ")
        tokens.extend(part)
    tokens.append(")")
    return tokens


def _commas(items: Sequence[Canvas]) -> list[Canvas | str]:
    tokens: list[Canvas | str] = []
    for k, item in enumerate(items):
        if k:
            tokens.append(", ")
        tokens.append(item)
    return tokens
