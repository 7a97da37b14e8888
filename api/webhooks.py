"""``POST /v1/webhooks/label-studio``: take a saved annotation into the store as soon as it is saved.

The payload is treated as a *notification*, not as data: the handler re-reads each task it names
from Label Studio (with our token), checks the task belongs to our project, and stores what Label
Studio holds, through the same code as ``wmstudio queue pull``. A forged call can therefore at most
trigger a re-read of real data, and a webhook that is lost, or that arrives while Label Studio
cannot be reached back, loses nothing: the next ``wmstudio queue pull`` (or loop run) takes the
annotation in. Deletions are re-read too, so a forged ``TASKS_DELETED`` cannot re-queue live work.

The gate in front (``api/guard.py``) checks the webhook's own shared secret (``X-Webhook-Secret``,
required whenever Label Studio is configured; ``wmstudio queue webhook`` registers it) and
throttles calls before the body is read; the body is capped at ``webhook_max_bytes`` and must
match :class:`WebhookPayload`, with at most ``webhook_max_tasks`` task ids.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field

from api.errors import ERROR_RESPONSE_SCHEMA, APIError
from api.guard import WEBHOOK_PATH, WEBHOOK_SECRET_HEADER
from wmstudio.settings import Settings

log = logging.getLogger(__name__)
router = APIRouter()

ANNOTATION_ACTIONS = {"ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED", "ANNOTATIONS_DELETED"}
DELETE_ACTIONS = {"TASKS_DELETED"}
LIST_CAP = 1000  # schema bound on any list; the configured webhook_max_tasks is checked after
TaskId = Annotated[int, Field(ge=1, le=2**63 - 1, strict=True, description="A Label Studio task id.")]
# Documents the header in OpenAPI when a secret is configured (api/main.py); api/guard.py checks it.
webhook_secret_header = APIKeyHeader(
    name=WEBHOOK_SECRET_HEADER,
    scheme_name="WebhookSecret",  # not "APIKeyHeader": that name is the API key's scheme
    auto_error=False,
    description="The shared secret set as WMSTUDIO_WEBHOOK_SECRET.",
)


class _Open(BaseModel):
    """Label Studio sends many more fields than we read; they are ignored, not refused."""

    model_config = ConfigDict(extra="ignore")


class TaskRef(_Open):
    id: TaskId


class AnnotationRef(_Open):
    task: TaskId | TaskRef | None = None

    @property
    def task_id(self) -> int | None:
        return self.task.id if isinstance(self.task, TaskRef) else self.task


class WebhookPayload(_Open):
    """The fields of a Label Studio webhook this service uses (task ids), typed and bounded."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "example": {"action": "ANNOTATION_CREATED", "task": {"id": 12}, "annotation": {"id": 40, "task": 12}}
        },
    )
    action: str = Field(min_length=1, max_length=64, pattern=r"^[A-Z_]+$", description="Label Studio's event name.")
    task: TaskRef | None = None
    annotation: AnnotationRef | Annotated[list[AnnotationRef], Field(max_length=LIST_CAP)] | None = None
    annotations: list[AnnotationRef] | None = Field(default=None, max_length=LIST_CAP)
    tasks: list[TaskRef] | None = Field(default=None, max_length=LIST_CAP)

    def task_ids(self) -> list[int]:
        """Every task id the event names, once each, sorted."""
        ids = [self.task.id] if self.task else []
        ids += [t.id for t in self.tasks or []]
        annotations = self.annotation if isinstance(self.annotation, list) else [self.annotation]
        for annotation in [*annotations, *(self.annotations or [])]:
            if annotation is not None and annotation.task_id is not None:
                ids.append(annotation.task_id)
        return sorted(set(ids))


class WebhookResponse(BaseModel):
    action: str
    status: Literal["ignored", "deferred", "stored"]
    detail: str | None = None
    tasks: dict[str, str] = Field(default_factory=dict, description="Task id -> what was done with it.")


@router.post(
    WEBHOOK_PATH,
    response_model=WebhookResponse,
    responses={status: ERROR_RESPONSE_SCHEMA for status in (400, 401, 403, 413, 422, 429)},
    tags=["labelling"],
)
def label_studio_webhook(request: Request, payload: WebhookPayload) -> dict[str, Any]:
    """Pull the tasks an annotation or deletion event names (re-read from Label Studio)."""
    settings: Settings = request.app.state.settings
    action = payload.action
    if action not in ANNOTATION_ACTIONS | DELETE_ACTIONS:
        return {"action": action, "status": "ignored"}
    ids = payload.task_ids()
    if len(ids) > settings.webhook_max_tasks:
        raise APIError(422, "too_many_tasks", f"at most {settings.webhook_max_tasks} task ids per call")
    if not ids:
        return {"action": action, "status": "ignored", "detail": "no task id in the payload"}
    return _pull(settings, action, ids)


def _pull(settings: Settings, action: str, ids: list[int]) -> dict[str, Any]:
    from curation.labelstudio import LabelStudioConfigError, LabelStudioSync, LabelStudioUnavailable
    from wmstudio.store.session import transaction

    deferred = {str(task_id): "deferred" for task_id in ids}
    if not settings.label_studio_configured:
        return {"action": action, "status": "deferred", "detail": "Label Studio is not configured", "tasks": deferred}
    try:
        sync = LabelStudioSync.from_settings(settings)
        outcomes = {str(task_id): sync.pull_task(transaction, task_id) for task_id in ids}
    except (LabelStudioUnavailable, LabelStudioConfigError) as exc:
        log.warning("webhook %s deferred to the next pull: %s", action, exc)
        return {"action": action, "status": "deferred", "detail": str(exc), "tasks": deferred}
    return {"action": action, "status": "stored", "tasks": outcomes}
