"""A real exporter process that stops dead at a chosen point of its first batch, for the kill tests.

``python -m tests.history.exporter_process POINT MARKER``, with the environment's settings:
``before-commit`` pauses inside the batch's transaction, its rows inserted, just before COMMIT;
``after-commit`` pauses after the commit, before the batch leaves the queue. It writes MARKER
when it gets there and then sleeps until the test SIGKILLs it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event

from orchestrator.services import services


def main(point: str, marker: Path) -> None:
    with services() as svc:
        assert svc.history is not None

        def pause(*_: Any) -> None:
            marker.write_text(point)
            time.sleep(600)

        if point == "before-commit":
            event.listen(svc.history.engine, "commit", pause)
        elif point == "after-commit":
            svc.store.archive.done = pause  # type: ignore[method-assign]
        else:
            raise SystemExit(f"unknown point {point!r}")
        svc.exporter().drain()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
