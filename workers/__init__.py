"""The thin Celery layer: the app factory, the step task and its request, the consumer, sweeper and leases.

``celery -A workers.app worker`` runs it. It wires the engine (``orchestrator.engine``) to Celery:
the step task calls :class:`~orchestrator.engine.runner.StepRunner`, user tasks are called in process.
"""
