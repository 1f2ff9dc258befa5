"""``toolrun worker``: a Celery worker that runs jobs of the shared store, and ``toolrun db``.

The worker runs in this process: Celery's ``threads`` pool takes deliveries (``concurrency``
at once, prefetching one more each), and every call runs through the same
:class:`~toolrun.execution.runner.ToolRunner` as the embedded executor, so Python tools run in
a pool of ``workers`` worker processes with their time limits. Start as many as you like, on
any machine that reaches the database, the broker and the events Redis.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid

from toolrun.config import Settings
from toolrun.errors import InvalidDefinition


def run_worker(settings: Settings, *, hostname: str | None = None, log_level: str = "info") -> int:
    """Serve deliveries until SIGTERM/SIGINT (warm shutdown: running jobs finish); returns the
    exit status."""
    if settings.executor != "celery" or settings.broker_url is None:
        raise InvalidDefinition(
            "toolrun worker runs jobs of the Celery executor: set TOOLRUN_EXECUTOR=celery and "
            "TOOLRUN_BROKER_URL (and TOOLRUN_DATABASE_URL to the store the API uses)"
        )
    from toolrun.cli.serve import protect_process_secrets
    from toolrun.execution.celery_app import make_celery_app
    from toolrun.execution.celery_worker import JobWorker

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    node = hostname or f"toolrun-{os.getpid()}@{socket.gethostname()}"
    concurrency = settings.concurrency or max(8, settings.workers * 4)
    protect_process_secrets()  # before any worker process starts
    worker = JobWorker(settings, owner=f"{node}/{uuid.uuid4().hex[:8]}")
    worker.start()
    try:
        app = make_celery_app(settings, worker)
        celery_worker = app.Worker(
            hostname=node,
            pool_cls="threads",
            concurrency=concurrency,
            queues=[settings.celery_queue],
            loglevel=log_level.upper(),
            without_mingle=True,
            without_gossip=True,
            quiet=True,
        )
        celery_worker.start()
        return int(celery_worker.exitcode or 0)
    finally:
        worker.close()


def db_upgrade(settings: Settings) -> str | None:
    """Migrate the store to the newest schema; returns the revision it is at."""
    from toolrun.storage.engine import current_revision, make_engine, upgrade

    engine = make_engine(settings.resolved_database_url, pool_size=1)
    try:
        upgrade(engine)
        return current_revision(engine)
    finally:
        engine.dispose()
