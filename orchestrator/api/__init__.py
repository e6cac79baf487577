"""The HTTP API (FastAPI): submit, read, cancel and retry runs; workflows; signed webhooks; health.

``orchestrator api`` serves :func:`orchestrator.api.app.create_api` with uvicorn; the OpenAPI
schema is at ``/openapi.json`` and ``docs/api.md`` is generated from it. The request and response
models (``schemas``) import no web framework: the Python client uses them too.
"""
