"""Label Studio sync (label-studio-sdk 2.x): push queue items as tasks, pull human answers back.

Design choices, and why:

* **Idempotent by construction.** Every task carries ``wm_image_id`` (the store's image id) in its
  data. Push first lists the project's tasks and adopts any task that already exists for an image
  (a crash between "task created" and "store updated" therefore never duplicates work), and pull
  replaces an image's Label Studio labels only when the answer changed. Running either twice
  changes nothing.
* **Nothing lost when Label Studio is down or slow.** Every SDK call is wrapped: connection errors,
  time-outs (``label_studio_timeout``) and 5xx answers become :class:`LabelStudioUnavailable` with
  a message saying what to do. The store is updated per item only after Label Studio accepted
  the item, so a failed push leaves items ``pending`` and a failed pull leaves them ``sent``; the
  next run picks them up.
* **Conflicts.** Two annotators who disagree on the image-level answer (brand vs. brand, or a
  brand vs. "no watermark") are not silently resolved: the item stays ``sent`` and its reason
  says ``conflict`` so a reviewer settles it in Label Studio; the next pull takes the settled
  answer. When they agree, the most recently updated annotation provides the boxes. Labels from
  other people (a curation reviewer, an import) are never overwritten: Label Studio labels have
  author ``label-studio:<annotator>`` and only those are replaced.
* **Deleted tasks.** A ``sent`` item whose task has disappeared goes back to ``pending`` and is
  pushed again; labels already pulled from a deleted task are kept (a person made them).
* **Coordinates.** Label Studio stores rectangles in percent of the image; they are converted to
  original pixels with the store's width and height (rotated boxes become their axis-aligned
  bounding box) and clipped to the image.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from curation.queue import LS_AUTHOR_PREFIX, image_file, pending_items
from wmstudio.brands import BRANDS, normalise_brand
from wmstudio.data.paths import UnsafeReference, labelstudio_image
from wmstudio.store.models import Image, Label, QueueItem
from wmstudio.store.models import Prediction as PredictionRow
from wmstudio.store.session import lock_for_writing

log = logging.getLogger(__name__)

BOX_CONTROL = "watermark"
CHOICE_CONTROL = "verdict"
NO_WATERMARK = "no watermark"
IMAGE_FIELD = "image"
ID_FIELD = "wm_image_id"
T = TypeVar("T")


def label_config(brands: tuple[str, ...] = BRANDS) -> str:
    """RectangleLabels for each brand plus a "no watermark" choice, so "clean" is an explicit answer."""
    labels = "\n".join(f'    <Label value="{brand}"/>' for brand in brands)
    return f"""<View>
  <Image name="{IMAGE_FIELD}" value="${IMAGE_FIELD}" zoom="true"/>
  <RectangleLabels name="{BOX_CONTROL}" toName="{IMAGE_FIELD}">
{labels}
  </RectangleLabels>
  <Choices name="{CHOICE_CONTROL}" toName="{IMAGE_FIELD}" choice="single" showInline="true">
    <Choice value="{NO_WATERMARK}"/>
  </Choices>
</View>"""


class LabelStudioUnavailable(RuntimeError):
    """Label Studio could not be reached, was too slow, or refused the token. Nothing was lost."""


class LabelStudioConfigError(RuntimeError):
    """Something in our own set-up is wrong (no token, photo outside the document root)."""


@dataclass
class PushReport:
    project_id: int
    created: int = 0
    adopted: int = 0  # tasks that already existed for the image (idempotence after a crash)
    already_sent: int = 0
    outstanding: int = 0  # tasks already open in Label Studio before this push
    task_ids: list[int] = field(default_factory=list)


@dataclass
class PullReport:
    project_id: int
    labelled: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    conflicts: list[dict] = field(default_factory=list)
    requeued_deleted: int = 0
    unknown_tasks: int = 0
    refused: list[dict] = field(default_factory=list)  # tasks whose image is not ours to trust


@dataclass(frozen=True)
class Answer:
    """One annotation turned into store terms."""

    brand: str | None
    boxes: tuple[tuple[str, tuple[float, float, float, float]], ...]
    author: str
    time: datetime
    annotation_id: int

    def rows(self) -> set[tuple[str | None, tuple[float, float, float, float] | None]]:
        return {(self.brand, None), *((b, box) for b, box in self.boxes)}


# --- pure conversions ------------------------------------------------------------------------


def percent_to_pixels(value: dict, width: int, height: int) -> tuple[float, float, float, float]:
    """Label Studio rectangle (percent, rotation in degrees about the top-left corner) → pixel box."""
    x, y = float(value["x"]) / 100 * width, float(value["y"]) / 100 * height
    w, h = float(value["width"]) / 100 * width, float(value["height"]) / 100 * height
    angle = math.radians(float(value.get("rotation") or 0.0))
    corners = [(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)]
    xs = [x + cx * math.cos(angle) - cy * math.sin(angle) for cx, cy in corners]
    ys = [y + cx * math.sin(angle) + cy * math.cos(angle) for cx, cy in corners]
    x0, y0 = max(0.0, min(xs)), max(0.0, min(ys))
    x1, y1 = min(float(width), max(xs)), min(float(height), max(ys))
    return (round(x0, 2), round(y0, 2), round(x1, 2), round(y1, 2))


def pixels_to_percent(box: tuple[float, float, float, float], width: int, height: int) -> dict:
    x0, y0, x1, y1 = box
    return {
        "x": x0 / width * 100,
        "y": y0 / height * 100,
        "width": (x1 - x0) / width * 100,
        "height": (y1 - y0) / height * 100,
        "rotation": 0,
    }


def prediction_result(rows: list[PredictionRow], width: int, height: int) -> list[dict]:
    """Pre-annotation regions for a task: the model's boxes with their scores."""
    result = []
    for index, row in enumerate(r for r in rows if r.box is not None):
        result.append(
            {
                "id": f"pred{index}",
                "from_name": BOX_CONTROL,
                "to_name": IMAGE_FIELD,
                "type": "rectanglelabels",
                "original_width": width,
                "original_height": height,
                "image_rotation": 0,
                "score": round(row.score, 4),
                "value": {**pixels_to_percent(row.box, width, height), "rectanglelabels": [row.brand]},
            }
        )
    return result


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.now(UTC)


def parse_annotation(annotation: dict, width: int, height: int, users: dict[int, str]) -> Answer:
    """Boxes in pixels, the image-level brand (first box's brand; None for "no watermark" or no box)."""
    boxes = []
    for region in annotation.get("result") or []:
        if region.get("type") != "rectanglelabels":
            continue
        value = region.get("value") or {}
        names = value.get("rectanglelabels") or []
        brand = normalise_brand(names[0]) if names else None
        if brand is None:
            continue
        box = percent_to_pixels(value, width, height)
        if box[2] > box[0] and box[3] > box[1]:
            boxes.append((brand, box))
    boxes.sort(key=lambda b: (b[1][0], b[1][1]))
    completed_by = annotation.get("completed_by")
    if isinstance(completed_by, dict):
        author = completed_by.get("email") or str(completed_by.get("id", ""))
    else:
        author = users.get(completed_by, str(completed_by or "unknown"))
    return Answer(
        brand=boxes[0][0] if boxes else None,
        boxes=tuple(boxes),
        author=LS_AUTHOR_PREFIX + author,
        time=_parse_time(annotation.get("updated_at") or annotation.get("created_at")),
        annotation_id=int(annotation.get("id") or 0),
    )


def _as_dict(obj: Any) -> dict:
    if isinstance(obj, dict):
        return obj
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    return dict(obj)


# --- the client --------------------------------------------------------------------------------


class LabelStudioSync:
    """One Label Studio project used as the labelling queue's front end."""

    def __init__(
        self,
        url: str,
        token: str,
        project_title: str,
        document_root: Path,
        timeout: float = 15.0,
        max_retries: int = 1,
    ) -> None:
        if not token:
            raise LabelStudioConfigError(
                "no Label Studio token: set WMSTUDIO_LABEL_STUDIO_TOKEN (Account & Settings → Access Token)"
            )
        self.url = url.rstrip("/")
        self.token = token
        self.project_title = project_title
        self.document_root = Path(document_root).resolve()
        self.timeout = timeout
        self.max_retries = max_retries
        self._client = None
        self._project_id: int | None = None
        self._users: dict[int, str] | None = None
        self._storages: set[Path] = set()

    @classmethod
    def from_settings(cls, settings: Any | None = None) -> LabelStudioSync:
        from wmstudio.settings import get_settings

        settings = settings or get_settings()
        return cls(
            settings.label_studio_url,
            settings.label_studio_token,
            settings.label_studio_project,
            settings.resolved_label_studio_document_root,
            settings.label_studio_timeout,
        )

    @property
    def client(self):  # label_studio_sdk.LabelStudio, imported lazily (the CLI must start fast)
        if self._client is None:
            from label_studio_sdk import LabelStudio

            self._client = LabelStudio(
                base_url=self.url, api_key=self.token, timeout=self.timeout, max_retries=self.max_retries
            )
        return self._client

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one SDK call; transport failures, 5xx and auth errors become LabelStudioUnavailable."""
        from label_studio_sdk.core.api_error import ApiError

        try:
            return fn()
        except httpx.TimeoutException as exc:
            raise LabelStudioUnavailable(
                f"Label Studio at {self.url} did not answer {what} within {self.timeout:.0f}s; "
                "nothing was lost, run the command again later"
            ) from exc
        except httpx.TransportError as exc:
            raise LabelStudioUnavailable(
                f"cannot reach Label Studio at {self.url} ({what}: {exc}); is it running? "
                "Nothing was lost, run the command again later"
            ) from exc
        except ApiError as exc:
            status = exc.status_code or 0
            if status in (401, 403):
                raise LabelStudioUnavailable(
                    f"Label Studio refused the token ({what}: HTTP {status}); check WMSTUDIO_LABEL_STUDIO_TOKEN"
                ) from exc
            if status >= 500 or status == 0:
                raise LabelStudioUnavailable(f"Label Studio failed {what} (HTTP {status}); try again later") from exc
            raise

    def check(self) -> None:
        """Raise LabelStudioUnavailable unless the server answers with this token."""
        self.call("the connection check", lambda: self.client.users.whoami())

    # --- project ---------------------------------------------------------------------------

    def ensure_project(self) -> int:
        """Reuse the project with our title (created with the labelling config the first time)."""
        if self._project_id is not None:
            return self._project_id
        found = self.call("listing projects", lambda: list(self.client.projects.list(title=self.project_title)))
        found = [p for p in found if p.title == self.project_title]
        if found:
            project_id = min(p.id for p in found)
        else:
            project = self.call(
                "creating the project",
                lambda: self.client.projects.create(
                    title=self.project_title,
                    label_config=label_config(),
                    description="Watermark Studio uncertainty queue: photos the model is least sure about.",
                    show_collab_predictions=True,
                ),
            )
            project_id = project.id
            log.info("created Label Studio project %r (id %d)", self.project_title, project_id)
        self._project_id = int(project_id)
        return self._project_id

    def ensure_storage(self, folder: Path) -> None:
        """Label Studio serves ``/data/local-files/`` only under a local storage of the project.

        One storage per dataset folder (Label Studio refuses the document root itself); it is never
        synced: tasks reference the photos directly.
        """
        folder = Path(folder).resolve()
        if folder in self._storages:
            return
        project_id = self.ensure_project()
        storages = self.call(
            "listing storages", lambda: list(self.client.import_storage.local.list(project=project_id))
        )
        if not any(Path(s.path or "").resolve() == folder for s in storages):
            self.call(
                "adding local-files storage",
                lambda: self.client.import_storage.local.create(
                    project=project_id,
                    path=str(folder),
                    title=f"Watermark Studio photos: {folder.name}",
                    use_blob_urls=False,
                    description="Photos referenced by the queue's tasks; never synced.",
                ),
            )
        self._storages.add(folder)

    def ensure_webhook(self, url: str, headers: dict[str, str] | None = None) -> int:
        """Register (once) a webhook that calls the API whenever an annotation is saved or deleted."""
        project_id = self.ensure_project()
        hooks = self.call("listing webhooks", lambda: list(self.client.webhooks.list(project=str(project_id))))
        for hook in hooks:
            if hook.url == url:
                if (hook.headers or {}) != (headers or {}):  # e.g. a new secret, or an old X-API-Key header
                    update = partial(self.client.webhooks.update, id=hook.id, headers=headers or {})
                    self.call("updating the webhook", update)
                return hook.id
        actions = ["ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED", "TASKS_DELETED"]
        hook = self.call(
            "creating the webhook",
            lambda: self.client.webhooks.create(
                url=url,
                project=project_id,
                actions=actions,
                send_payload=True,
                send_for_all_actions=False,
                headers=headers or {},
                is_active=True,
            ),
        )
        return hook.id

    # --- tasks -----------------------------------------------------------------------------

    def iter_tasks(self, project_id: int) -> Iterator[dict]:
        pager = self.call("listing tasks", lambda: self.client.tasks.list(project=project_id, page_size=100))
        iterator = iter(pager)
        while True:
            try:
                task = self.call("listing tasks", lambda: next(iterator))
            except StopIteration:
                return
            yield _as_dict(task)

    def get_task(self, task_id: int) -> dict | None:
        from label_studio_sdk.core.api_error import ApiError

        try:
            return _as_dict(self.call("reading a task", lambda: self.client.tasks.get(id=str(task_id))))
        except ApiError as exc:
            if exc.status_code == 404:
                return None
            raise

    def users(self) -> dict[int, str]:
        if self._users is None:
            listed = self.call("listing users", lambda: list(self.client.users.list()))
            self._users = {u.id: (u.email or u.username or str(u.id)) for u in listed}
        return self._users

    def image_url(self, image: Image) -> str:
        path = image_file(image).resolve()
        try:
            relative = path.relative_to(self.document_root)
            Path(image.dataset.root).resolve().relative_to(self.document_root)
            if Path(image.dataset.root).resolve() == self.document_root:
                raise ValueError("dataset folder is the document root")
        except ValueError as exc:
            raise LabelStudioConfigError(
                f"{path} is not inside a dataset folder under Label Studio's document root {self.document_root}; set "
                "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT (server) and WMSTUDIO_LABEL_STUDIO_DOCUMENT_ROOT (here) "
                "to a folder that holds the datasets"
            ) from exc
        return f"/data/local-files/?d={relative.as_posix()}"

    def task_payload(self, session: Session, item: QueueItem) -> dict:
        image = item.image
        self.ensure_storage(Path(image.dataset.root))
        rows = list(
            session.scalars(
                select(PredictionRow).where(
                    PredictionRow.image_id == image.id, PredictionRow.model_version == (item.model_version or "")
                )
            )
        )
        payload: dict = {
            "data": {
                IMAGE_FIELD: self.image_url(image),
                ID_FIELD: image.id,
                "sha256": image.sha256,
                "dataset": image.dataset.name,
                "queue_score": round(item.score, 4),
                "queue_reason": item.reason,
            }
        }
        if rows:
            payload["predictions"] = [
                {
                    "model_version": item.model_version or "unknown",
                    "score": round(max(r.score for r in rows), 4),
                    "result": prediction_result(rows, image.width, image.height),
                }
            ]
        return payload

    # --- push ------------------------------------------------------------------------------

    def push(self, transaction: Callable[[], Any], k: int) -> PushReport:
        """Top Label Studio up to ``k`` open tasks with the best pending items (with pre-annotations).

        ``k`` counts tasks already sent and not yet answered, so pushing twice sends nothing new,
        and pushing after a pull refills exactly what the annotators finished.

        ``transaction`` is the store's ``transaction`` context factory: each item is committed on
        its own right after Label Studio accepted it, so an outage half-way keeps what was done.
        """
        project_id = self.ensure_project()
        report = PushReport(project_id)
        existing = {
            int(task["data"][ID_FIELD]): int(task["id"])
            for task in self.iter_tasks(project_id)
            if isinstance(task.get("data"), dict) and task["data"].get(ID_FIELD) is not None
        }
        with transaction() as session:
            report.outstanding = session.scalar(
                select(func.count()).select_from(QueueItem).where(QueueItem.status == "sent")
            )
            ids = [item.id for item in pending_items(session, max(0, k - report.outstanding))]
        for item_id in ids:
            with transaction() as session:
                lock_for_writing(session)
                item = session.get(QueueItem, item_id)
                if item is None or item.status != "pending":
                    report.already_sent += 1
                    continue
                task_id = existing.get(item.image_id)
                if task_id is not None:
                    report.adopted += 1
                else:
                    payload = self.task_payload(session, item)
                    response = self.call(
                        "importing a task",
                        lambda payload=payload: self.client.projects.import_tasks(
                            id=project_id, request=[payload], return_task_ids=True
                        ),
                    )
                    task_id = int(_as_dict(response)["task_ids"][0])
                    existing[item.image_id] = task_id
                    report.created += 1
                item.status, item.label_studio_task_id = "sent", task_id
                report.task_ids.append(task_id)
        return report

    # --- pull ------------------------------------------------------------------------------

    def pull(self, transaction: Callable[[], Any]) -> PullReport:
        """Take in every finished task of the project, and re-queue items whose task was deleted."""
        project_id = self.ensure_project()
        report = PullReport(project_id)
        tasks = list(self.iter_tasks(project_id))
        users = self.users() if any(t.get("annotations") for t in tasks) else {}
        for task in tasks:
            try:
                outcome = self.take_task(transaction, task, users)
            except UnsafeReference as exc:
                report.refused.append({"task": task.get("id"), "reason": exc.message})
                continue
            _count(report, outcome, task)
        alive = {int(t["id"]) for t in tasks}
        with transaction() as session:
            lock_for_writing(session)
            sent = session.scalars(select(QueueItem).where(QueueItem.status == "sent")).all()
            for item in sent:
                if item.label_studio_task_id is not None and item.label_studio_task_id not in alive:
                    mark_task_deleted(item)
                    report.requeued_deleted += 1
        return report

    def pull_task(self, transaction: Callable[[], Any], task_id: int) -> str:
        """Take in one task now (the webhook path); a deleted task re-queues its item.

        The task is read back from Label Studio, so only what Label Studio really holds is
        stored; a task of another project (ids are server-wide) is left alone as ``foreign``.
        """
        task = self.get_task(task_id)
        if task is not None and task.get("project") != self.ensure_project():
            log.warning("webhook named task %s of project %s, not ours: ignored", task_id, task.get("project"))
            return "foreign"
        if task is None:
            with transaction() as session:
                lock_for_writing(session)
                return tasks_deleted(session, [task_id])
        needs_users = any(not isinstance(a.get("completed_by"), dict) for a in task.get("annotations") or [])
        try:
            return self.take_task(transaction, task, self.users() if needs_users else {})
        except UnsafeReference as exc:
            log.warning("task %s refused: %s", task_id, exc.message)
            return "refused"

    def check_image(self, task: dict) -> None:
        """Raise UnsafeReference unless the task's image is a file under our document root or on this server.

        Tasks we push reference ``/data/local-files/?d=...``; a task pointing at another host,
        ``file://`` or a path outside the root was not made by us and is not taken in.
        """
        ref = (task.get("data") or {}).get(IMAGE_FIELD)
        if ref is not None:
            labelstudio_image(str(ref), self.document_root, self.url)

    def take_task(self, transaction: Callable[[], Any], task: dict, users: dict[int, str]) -> str:
        """Store one task's answer in its own write-locked transaction (see :func:`apply_task`)."""
        self.check_image(task)
        with transaction() as session:
            lock_for_writing(session)
            return apply_task(session, task, users)


def _count(report: PullReport, outcome: str, task: dict) -> None:
    if outcome == "labelled":
        report.labelled += 1
    elif outcome == "updated":
        report.updated += 1
    elif outcome == "skipped":
        report.skipped += 1
    elif outcome == "conflict":
        report.conflicts.append({"task": task.get("id"), "image": (task.get("data") or {}).get(ID_FIELD)})
    elif outcome == "unknown":
        report.unknown_tasks += 1
    else:
        report.unchanged += 1


def mark_task_deleted(item: QueueItem) -> None:
    item.status, item.label_studio_task_id = "pending", None
    item.reason = (item.reason + "; " if item.reason else "") + "task deleted in Label Studio, re-queued"


def tasks_deleted(session: Session, task_ids: list[int]) -> str:
    items = session.scalars(
        select(QueueItem).where(QueueItem.label_studio_task_id.in_(task_ids), QueueItem.status == "sent")
    ).all()
    for item in items:
        mark_task_deleted(item)
    return "requeued" if items else "unchanged"


def _find_item(session: Session, task: dict) -> QueueItem | None:
    item = session.scalar(
        select(QueueItem).where(QueueItem.label_studio_task_id == int(task["id"])).order_by(QueueItem.id.desc())
    )
    if item is None:
        image_id = (task.get("data") or {}).get(ID_FIELD)
        if image_id is not None:
            item = session.scalar(
                select(QueueItem).where(QueueItem.image_id == int(image_id)).order_by(QueueItem.id.desc())
            )
    return item


def apply_task(session: Session, task: dict, users: dict[int, str]) -> str:
    """Store a task's human answer as labels; returns labelled|updated|unchanged|skipped|conflict|pending|unknown."""
    item = _find_item(session, task)
    if item is None:
        return "unknown"
    image = item.image
    annotations = [_as_dict(a) for a in task.get("annotations") or []]
    finished = [a for a in annotations if not a.get("was_cancelled")]
    if not finished:
        if annotations:  # every annotator skipped it
            changed = item.status != "skipped"
            item.status, item.label_studio_task_id = "skipped", int(task["id"])
            return "skipped" if changed else "unchanged"
        if item.status == "labelled":  # annotations were deleted in Label Studio: withdraw their labels
            _replace_labels(session, image, None)
            item.status = "sent"
            return "updated"
        return "pending"
    answers = [parse_annotation(a, image.width, image.height, users) for a in finished]
    if len({a.brand for a in answers}) > 1:
        note = "conflict: annotators disagree (" + ", ".join(f"{a.author}={a.brand or 'none'}" for a in answers) + ")"
        if note not in item.reason:
            item.reason = f"{item.reason}; {note}" if item.reason else note
        item.label_studio_task_id = int(task["id"])
        if item.status == "labelled":
            _replace_labels(session, image, None)
        item.status = "sent"
        log.warning("task %s: %s", task["id"], note)
        return "conflict"
    latest = max(answers, key=lambda a: (a.time, a.annotation_id))
    was_labelled = item.status == "labelled"
    changed = _replace_labels(session, image, latest)
    item.status, item.label_studio_task_id = "labelled", int(task["id"])
    if not changed and was_labelled:
        return "unchanged"
    return "updated" if was_labelled else "labelled"


def _replace_labels(session: Session, image: Image, answer: Answer | None) -> bool:
    """Make the image's Label Studio labels equal ``answer`` (None removes them); True when something changed."""
    current = session.scalars(
        select(Label).where(
            Label.image_id == image.id, Label.source == "human", Label.author.like(f"{LS_AUTHOR_PREFIX}%")
        )
    ).all()
    wanted = answer.rows() if answer else set()
    have = {(label.brand, label.box) for label in current}
    same_author = answer is None or all(label.author == answer.author for label in current)
    if have == wanted and len(current) == len(wanted) and same_author:
        return False
    session.execute(delete(Label).where(Label.id.in_([label.id for label in current])))
    for brand, box in sorted(wanted, key=lambda k: (k[1] is not None, k[0] or "", k[1] or ())):
        x0, y0, x1, y1 = box if box is not None else (None, None, None, None)
        session.add(
            Label(
                image_id=image.id,
                brand=brand,
                x0=x0,
                y0=y0,
                x1=x1,
                y1=y1,
                source="human",
                author=answer.author,
                created=answer.time,
            )
        )
    session.flush()
    return True
