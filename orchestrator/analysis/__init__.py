"""What ``orchestrator plan`` and ``graph`` print: canvas decomposition, plain-Celery canvas, diagrams, the report.

Computed when asked; the engine never needs any of it.
"""
