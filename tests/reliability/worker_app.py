"""The worker app of the reliability tests: ``workers.app`` plus kombu transport options from the environment.

The product maps its settings to kombu's in one place (``workers.celery_config``), which does not
expose how often kombu's Redis transport looks for unacknowledged messages to restore. That scan
runs every ``unacked_restore_interval`` x ``unacked_restore_throttle`` seconds (10 x 10 by
default), so with a 3 s visibility timeout the redelivery the visibility tests need would come
after the test ended. ``ORCH_TEST_BROKER_TRANSPORT`` (a JSON object) is merged into the app's
``broker_transport_options``; everything else is the production app, bootsteps and all.
"""

from __future__ import annotations

import json
import os

from workers.app import app

app.conf.broker_transport_options = {
    **app.conf.broker_transport_options,
    **json.loads(os.environ.get("ORCH_TEST_BROKER_TRANSPORT") or "{}"),
}

__all__ = ["app"]
