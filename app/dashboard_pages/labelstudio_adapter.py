"""A thin adapter over :mod:`curation.labelstudio` for the Queue page.

The page calls only :func:`push`, :func:`pull` and :func:`task_url`. ``LabelStudioSync.push``
sends the top-k pending items; the dashboard pushes the items a reviewer *selected*, so
:func:`push` walks those ids with the same building blocks (``ensure_project``, existing-task
adoption by image id, ``task_payload``, per-item commit) to keep the same idempotence. When the
integration or Label Studio is missing, :class:`QueueUnavailable` carries a message to show.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

from wmstudio.settings import Settings

LINK_TIMEOUT = 2.0  # seconds: a task link must not make the page hang when Label Studio is down


class QueueUnavailable(RuntimeError):
    """The push/pull cannot run; the message says why and what to do."""


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str
    details: object = None


def _module() -> ModuleType:
    try:
        from curation import labelstudio
    except ImportError as exc:
        raise QueueUnavailable(
            f"The Label Studio integration cannot be loaded ({exc}); the queue below is what the store holds."
        ) from None
    return labelstudio


def _sync(settings: Settings, timeout: float | None = None, retries: int = 1) -> Any:
    """A ``LabelStudioSync`` from the settings; configuration problems become messages."""
    module = _module()
    try:
        return module.LabelStudioSync(
            settings.label_studio_url,
            settings.label_studio_token,
            getattr(settings, "label_studio_project", "Watermark Studio"),
            settings.resolved_label_studio_document_root,
            timeout or getattr(settings, "label_studio_timeout", 15.0),
            max_retries=retries,
        )
    except module.LabelStudioConfigError as exc:
        raise QueueUnavailable(f"Label Studio is not configured: {exc}") from None


def _unavailable(exc: Exception) -> QueueUnavailable:
    return QueueUnavailable(f"Label Studio is not available: {exc}")


def push(queue_ids: list[int], settings: Settings) -> Outcome:
    """Send the selected queue items to Label Studio as pre-annotated tasks (idempotent)."""
    from wmstudio.store.models import QueueItem
    from wmstudio.store.session import transaction

    if not queue_ids:
        return Outcome(False, "Select at least one queue item to push.")
    module = _module()
    sync = _sync(settings)
    try:
        project_id = sync.ensure_project()
        existing = {
            int(task["data"][module.ID_FIELD]): int(task["id"])
            for task in sync.iter_tasks(project_id)
            if isinstance(task.get("data"), dict) and task["data"].get(module.ID_FIELD) is not None
        }
        created = adopted = skipped = 0
        for item_id in queue_ids:
            with transaction() as session:
                item = session.get(QueueItem, item_id)
                if item is None or item.status not in {"pending", "skipped"}:
                    skipped += 1
                    continue
                task_id = existing.get(item.image_id)
                if task_id is None:
                    payload = sync.task_payload(session, item)
                    response = sync.call(
                        "importing a task",
                        lambda payload=payload: sync.client.projects.import_tasks(
                            id=project_id, request=[payload], return_task_ids=True
                        ),
                    )
                    task_id = int(module._as_dict(response)["task_ids"][0])
                    existing[item.image_id] = task_id
                    created += 1
                else:
                    adopted += 1
                item.status, item.label_studio_task_id = "sent", task_id
    except (module.LabelStudioUnavailable, module.LabelStudioConfigError) as exc:
        raise _unavailable(exc) from None
    message = f"Pushed to Label Studio: {created} new task(s), {adopted} existing, {skipped} not pending"
    return Outcome(True, message, {"project_id": project_id})


def pull(settings: Settings) -> Outcome:
    """Take finished annotations from Label Studio into the store."""
    from wmstudio.store.session import transaction

    module = _module()
    sync = _sync(settings)
    try:
        report = sync.pull(transaction)
    except (module.LabelStudioUnavailable, module.LabelStudioConfigError) as exc:
        raise _unavailable(exc) from None
    message = (
        f"Pulled from Label Studio: {report.labelled} labelled, {report.updated} updated, "
        f"{report.unchanged} unchanged, {len(report.conflicts)} conflict(s), {report.requeued_deleted} re-queued"
    )
    return Outcome(True, message, report)


def project_id(settings: Settings) -> int | None:
    """The project's id for task links, or None when Label Studio cannot say quickly."""
    try:
        return int(_sync(settings, timeout=LINK_TIMEOUT, retries=0).ensure_project())
    except Exception:
        return None


def task_url(task_id: int, settings: Settings, project: int | None = None) -> str:
    """Where a reviewer opens a task: the project's data manager with the task open."""
    base = settings.label_studio_url.rstrip("/")
    if project is None:
        return f"{base}/projects/"
    return f"{base}/projects/{project}/data?task={task_id}"
