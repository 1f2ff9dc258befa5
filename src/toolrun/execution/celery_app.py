"""The Celery app, built from :class:`~toolrun.config.Settings`, and its one task.

API processes use the app only to send ``toolrun.run_job(job_id)`` (task id = job id); a
``toolrun worker`` process also runs it, through its :class:`JobWorker`. The message carries
the job id only: arguments stay in the store (they may hold secrets), and JSON is the only
serializer accepted (pickle never is).

Delivery (see docs/scale-out.md): messages are acknowledged *after* the task has dealt with
the job (``acks_late``; ``reject_on_worker_lost`` gives them back when a prefork child dies,
though ``toolrun worker`` runs tasks in threads), so a job whose worker dies is delivered
again:

- **RabbitMQ** redelivers a dead worker's unacknowledged messages as soon as its connection
  drops.
- **Redis** has no connections to watch: a message taken but not acknowledged becomes
  visible again ``broker_visibility_timeout_s`` after it was taken (every worker sweeps for
  such messages). A job still running then is not run twice: its worker's lease is alive, so
  the second delivery only comes back later, until the job has ended or its worker has died.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from toolrun.config import Settings
from toolrun.errors import InfrastructureError

if TYPE_CHECKING:
    from celery import Celery

    from toolrun.execution.celery_worker import JobWorker

log = logging.getLogger(__name__)
TASK_NAME = "toolrun.run_job"


def _import_celery() -> Any:
    try:
        import celery
    except ImportError:  # pragma: no cover - depends on the installation
        raise InfrastructureError(
            "TOOLRUN_EXECUTOR=celery needs Celery: pip install 'toolrun[celery]'"
        ) from None
    return celery


def transport_options(settings: Settings) -> dict[str, Any]:
    """Broker options: for Redis the visibility timeout and how often workers look for
    messages past it (kombu's default is about every 100 s)."""
    broker = settings.broker_url or ""
    if not broker.startswith(("redis", "rediss", "unix")):
        return {}
    timeout = settings.broker_visibility_timeout_s
    return {
        "visibility_timeout": timeout,
        "unacked_restore_interval": max(1, min(10, int(timeout / 4))),
        "unacked_restore_throttle": 1,
        "socket_timeout": 30,
        "socket_connect_timeout": 5,
        "socket_keepalive": True,
        "health_check_interval": 10,
    }


def make_celery_app(settings: Settings, worker: JobWorker | None = None) -> Celery:
    """The app; ``worker`` is what runs the task (None in API processes, which only send)."""
    celery = _import_celery()
    app = celery.Celery("toolrun", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        event_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_ignore_result=True,  # results live in the job store
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_default_queue=settings.celery_queue,
        broker_transport_options=transport_options(settings),
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker waits out a broker restart
        broker_channel_error_retry=True,
        # A lost broker connection leaves running jobs running; their acks may be lost, so
        # the broker delivers them again, and the task finds them ended.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        task_publish_retry=True,
        task_publish_retry_policy={
            "max_retries": 6,
            "interval_start": 0.1,
            "interval_step": 0.5,
            "interval_max": 1.0,
        },
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )
    if worker is not None:
        survive_lost_redis()
    _register_task(app, settings, worker)
    return app


def survive_lost_redis() -> None:
    """Keep a worker alive when its Redis broker goes away (celery 5.7 with kombu 5.7).

    After a lost connection the consumer detaches the transport from the old channel, and
    two things still use that channel: closing it (to give back its unacknowledged messages)
    and the late acknowledgement of a job that finishes after the reconnect. Both need a
    client, which the detached channel builds from ``transport.client``, now None: the
    ``AttributeError`` ends the worker ("Unrecoverable error"). Raised as the connection
    error it is, kombu and celery handle it (the close is skipped, the ack logged), and the
    messages stay in Redis's unacked set, to come back after the visibility timeout; the
    task then finds its job ended and does nothing.
    """
    try:
        import redis
        from kombu.transport import redis as kombu_redis
    except ImportError:  # pragma: no cover - the redis extra is not installed
        return
    original: Callable[..., Any] = kombu_redis.Channel._connparams
    if getattr(original, "_toolrun_guarded", False):
        return

    def connparams(self: Any, asynchronous: bool = False) -> Any:
        transport = getattr(self, "connection", None)
        if transport is None or transport.client is None:
            raise redis.exceptions.ConnectionError("this broker channel's connection is closed")
        return original(self, asynchronous)

    connparams._toolrun_guarded = True  # type: ignore[attr-defined]
    setattr(kombu_redis.Channel, "_connparams", connparams)  # noqa: B010


def _register_task(app: Celery, settings: Settings, worker: JobWorker | None) -> None:
    from celery.exceptions import Reject

    from toolrun.execution.celery_worker import Deferred, Outcome

    busy_retry_s = max(0.5, settings.job_lease_s / 2)

    @app.task(name=TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True)  # type: ignore[untyped-decorator]
    def run_job(task: Any, job_id: str) -> str:
        if worker is None:  # a process that only sends was asked to run: give it back
            raise Reject("not a toolrun worker", requeue=True)
        outcome = worker.handle(job_id)
        if isinstance(outcome, Deferred):  # waiting for its next attempt or its tool's limits
            _send_again(task, outcome.countdown_s)
        if outcome is Outcome.BUSY:  # ask again once the running worker's lease could lapse
            _send_again(task, busy_retry_s)
        if outcome is Outcome.LATER:
            raise Reject("store or Redis unreachable", requeue=True)
        return str(outcome.value) if isinstance(outcome, Outcome) else "deferred"


def _send_again(task: Any, countdown_s: float) -> NoReturn:
    """Acknowledge this delivery and send the task again for ``countdown_s`` from now (the
    countdown is kept by the worker that takes the message, not by the broker)."""
    from celery.exceptions import Reject, Retry

    try:
        raise task.retry(countdown=countdown_s, max_retries=None)
    except Retry:
        raise
    except Exception as exc:  # the retry could not be sent: let the broker keep it
        raise Reject(f"retry not sent: {exc}", requeue=True) from None


def send_job(app: Celery, settings: Settings, job_id: str) -> None:
    """Queue the task of ``job_id`` (blocking: call it from a thread)."""
    app.send_task(TASK_NAME, args=[job_id], task_id=job_id, queue=settings.celery_queue)
