"""Benchmarks of the orchestrator against plain Celery (and celery-director), run by ``make bench``.

Each module is a script (``python3 -m bench.throughput``) that starts its own Redis server and
real ``celery worker`` processes, measures our system and the baseline side by side in one run,
prints a table of ratios and writes JSON to ``bench/results/``. ``python3 -m bench`` runs them all.
"""
