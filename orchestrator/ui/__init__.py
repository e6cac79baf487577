"""The web UI under ``/ui`` of ``orchestrator api``: runs, a run's DAG and timeline, workflows.

:data:`router` holds the pages (:mod:`~orchestrator.ui.routes`) and the JSON they poll
(:mod:`~orchestrator.ui.feeds`); ``create_api`` includes it. The scripts and styles are files of
``static/``: no CDN, no build step. Sessions are the API's tokens, signed into a cookie.
"""

from fastapi import APIRouter

from orchestrator.ui import feeds, routes
from orchestrator.ui.routes import takes_form

router = APIRouter()
router.include_router(routes.router)
router.include_router(feeds.router)

__all__ = ["router", "takes_form"]
