"""``POST /v1/webhooks/label-studio``: take a saved annotation into the store as soon as it is saved.

The payload is treated as a *notification*, not as data: the handler re-reads the task from
Label Studio (with our token) and stores what Label Studio holds, through the same code as
``wmstudio queue pull``. A forged call can therefore at most trigger a re-read of real data, and a
webhook that is lost, or that arrives while Label Studio cannot be reached back, loses nothing:
the next ``wmstudio queue pull`` (or loop run) takes the annotation in.

The route is protected by the API key like the other routes when keys are configured (Label
Studio sends it as a webhook header; ``wmstudio queue webhook`` sets that up).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Body, Depends, Request

from api.errors import ERROR_RESPONSE_SCHEMA
from api.security import require_api_key

log = logging.getLogger(__name__)
router = APIRouter(tags=["label studio"])

ANNOTATION_ACTIONS = {"ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED", "ANNOTATIONS_DELETED"}


def _task_ids(payload: dict[str, Any]) -> list[int]:
    ids: list[int] = []
    task = payload.get("task")
    if isinstance(task, dict) and task.get("id") is not None:
        ids.append(int(task["id"]))
    for key in ("annotation", "annotations"):
        value = payload.get(key)
        for annotation in value if isinstance(value, list) else [value]:
            if isinstance(annotation, dict) and annotation.get("task") is not None:
                task_id = annotation["task"]
                ids.append(int(task_id["id"] if isinstance(task_id, dict) else task_id))
    return sorted(set(ids))


@router.post(
    "/v1/webhooks/label-studio",
    dependencies=[Depends(require_api_key)],
    responses={status: ERROR_RESPONSE_SCHEMA for status in (400, 401, 422)},
    tags=["labelling"],
)
def label_studio_webhook(request: Request, payload: dict[str, Any] = Body(...)) -> dict[str, Any]:
    """Pull the tasks an annotation event names; always 200 so Label Studio does not disable the hook."""
    from curation.labelstudio import LabelStudioConfigError, LabelStudioSync, LabelStudioUnavailable, tasks_deleted
    from wmstudio.store.session import transaction

    action = str(payload.get("action", ""))
    if action == "TASKS_DELETED":
        ids = [int(t["id"]) for t in payload.get("tasks") or [] if isinstance(t, dict) and "id" in t]
        with transaction() as session:
            outcome = tasks_deleted(session, ids)
        return {"action": action, "status": outcome, "tasks": ids}
    if action not in ANNOTATION_ACTIONS:
        return {"action": action, "status": "ignored"}
    ids = _task_ids(payload)
    if not ids:
        return {"action": action, "status": "ignored", "detail": "no task id in the payload"}
    settings = getattr(request.app.state, "settings", None)
    try:
        sync = LabelStudioSync.from_settings(settings)
        outcomes = {str(task_id): sync.pull_task(transaction, task_id) for task_id in ids}
    except (LabelStudioUnavailable, LabelStudioConfigError) as exc:
        log.warning("webhook %s deferred to the next pull: %s", action, exc)
        return {"action": action, "status": "deferred", "detail": str(exc), "tasks": ids}
    return {"action": action, "status": "stored", "tasks": outcomes}
