"""The durable run history (PostgreSQL, optional): the exporter, the reads across both stores, the schema.

:class:`Exporter` moves finished runs from the hot store's archive queue to the history;
:class:`RunCatalog` reads a run from the hot store first and from the history after retention
removed it. The PostgreSQL side (:mod:`orchestrator.history.postgres`: models, migrations, reader,
writer) is imported only when ``ORCH_HISTORY_URL`` is set.
"""

from orchestrator.history.catalog import RunCatalog
from orchestrator.history.exporter import Background, Batch, Exporter

__all__ = ["Background", "Batch", "Exporter", "RunCatalog"]
