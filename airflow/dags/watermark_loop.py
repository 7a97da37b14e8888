"""The scheduled retraining loop as an Airflow DAG.

ingest -> curate -> train -> evaluate -> promote -> score_pool -> push_label_studio

Every task is a ``wmstudio`` command, the same one a person would type, so a failed task is
re-run by hand with the command shown in its log. Where they run depends on
``WMSTUDIO_AIRFLOW_MODE``:

* ``local`` (default; docker compose ``airflow`` profile): BashOperator, in the Airflow
  container, which has the training image's ``wmstudio`` on its PATH;
* ``k8s`` (production): KubernetesPodOperator, one pod per task from the training image, with
  the ConfigMap/Secret of ``k8s/base`` as environment and the registry, state and data volumes
  (``wmstudio-models``, ``wmstudio-state``, ``wmstudio-data``) mounted as in the Jobs there.

The challenger is the newest registered version; ``promote`` applies the loop's
champion/challenger gate (``wmstudio.gate.gate``, thresholds ``WMSTUDIO_GATE_*``) and promotes
only when it passes, so a scheduled run can never ship a worse model. The API hot-reloads a
promotion. ``max_active_runs=1``: two runs must never train into one registry at once.
"""

from __future__ import annotations

import itertools
import os
from datetime import datetime, timedelta

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # pragma: no cover - Airflow 2
    from airflow import DAG

MODE = os.environ.get("WMSTUDIO_AIRFLOW_MODE", "local")
SCHEDULE = os.environ.get("WMSTUDIO_LOOP_SCHEDULE", "0 2 * * *")
IMAGE = os.environ.get("WMSTUDIO_TRAIN_IMAGE", "ghcr.io/example-org/watermark-studio-train:latest")
NAMESPACE = os.environ.get("WMSTUDIO_K8S_NAMESPACE", "wmstudio")
TRAIN_GPUS = os.environ.get("WMSTUDIO_TRAIN_GPUS", "0")

# The newest registered version (v1 < v2 < v10), i.e. the challenger ``train`` just registered.
CHALLENGER = '$(ls -1 "$WMSTUDIO_REGISTRY_DIR" | grep -E "^v[0-9]+$" | sort -V | tail -n 1)'

# The gate runs through the package's own functions, the ones ``wmstudio models promote`` calls
# (re-measure the champion on the challenger's validation data when it differs, then the gate),
# not a second implementation; a refused challenger is tagged "rejected" in MLflow instead of
# failing the run.
PROMOTE_IF_BETTER = """python - <<'PY'
from training.release import champion_on_challenger_data
from wmstudio.gate import GateConfig, GateFailed, gated_promote
from wmstudio.mlflow_registry import tag_version, tracked_registry
from wmstudio.settings import get_settings

settings = get_settings()
registry = tracked_registry(settings)  # a promotion also moves MLflow's champion alias
challenger, champion = registry.versions()[-1], registry.champion()
if challenger == champion:
    print(f"{challenger} is already the champion: nothing to promote")
else:
    out = settings.state_dir / "gate" / f"{champion}-for-{challenger}"
    champion_metrics = champion_on_challenger_data(registry, challenger, settings.state_dir, out)
    try:
        gated_promote(registry, challenger, "airflow watermark_loop", GateConfig.from_settings(settings),
                      champion_metrics=champion_metrics)
        print(f"{challenger} promoted over {champion}")
    except GateFailed as exc:
        print(exc)
        tag_version(challenger, "rejected", f"airflow watermark_loop: {exc}", settings)
PY
wmstudio models list"""

# task id -> shell command (Jinja-templated by Airflow). Order = the pipeline.
STAGES: dict[str, str] = {
    # Label Studio being down is not fatal (as in `wmstudio loop`): train on the labels already stored.
    "ingest": 'wmstudio ingest "$WMSTUDIO_DATA_DIR/listings" --name listings\n'
    'wmstudio queue pull || echo "queue pull failed: continuing with the labels in the store"',
    "curate": "wmstudio curate duplicates listings --no-gallery",
    "train": "wmstudio train --warm-start champion --hours 0.5 --run-name airflow-{{ ts_nodash }}",
    "evaluate": f'wmstudio evaluate --version "{CHALLENGER}" --out "$WMSTUDIO_STATE_DIR/airflow/{{{{ ts_nodash }}}}"',
    "promote": PROMOTE_IF_BETTER,
    "score_pool": "wmstudio queue build",
    "push_label_studio": "wmstudio queue push",
}

DEFAULT_ARGS = {
    "owner": "watermark-studio",
    "retries": 1,
    "retry_delay": timedelta(minutes=10),
    "execution_timeout": timedelta(hours=3),
}


def _k8s_task(task_id: str, command: str):
    """One pod from the training image, configured like the Jobs in k8s/base."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from kubernetes.client import models as k8s

    volumes = {
        "models": ("wmstudio-models", "/models"),
        "state": ("wmstudio-state", "/var/lib/wmstudio"),
        "data": ("wmstudio-data", "/data"),
    }
    limits = {"cpu": "4", "memory": "8Gi"}
    if task_id == "train" and TRAIN_GPUS != "0":
        limits["nvidia.com/gpu"] = TRAIN_GPUS
    return KubernetesPodOperator(
        task_id=task_id,
        name=f"wmstudio-loop-{task_id.replace('_', '-')}",
        namespace=NAMESPACE,
        image=IMAGE,
        cmds=["/bin/bash", "-o", "pipefail", "-ec"],
        arguments=[command],
        env_from=[
            k8s.V1EnvFromSource(config_map_ref=k8s.V1ConfigMapEnvSource(name="wmstudio-config")),
            k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name="wmstudio-secrets")),
        ],
        env_vars={"WMSTUDIO_REGISTRY_DIR": "/models", "WMSTUDIO_STATE_DIR": "/var/lib/wmstudio"},
        volumes=[
            k8s.V1Volume(name=name, persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(claim_name=claim))
            for name, (claim, _) in volumes.items()
        ],
        volume_mounts=[k8s.V1VolumeMount(name=name, mount_path=path) for name, (_, path) in volumes.items()],
        container_resources=k8s.V1ResourceRequirements(requests={"cpu": "1", "memory": "2Gi"}, limits=limits),
        security_context=k8s.V1PodSecurityContext(run_as_non_root=True, run_as_user=10001, fs_group=10001),
        service_account_name="wmstudio",
        get_logs=True,
        on_finish_action="delete_pod",
    )


def _local_task(task_id: str, command: str):
    from airflow.providers.standard.operators.bash import BashOperator

    return BashOperator(task_id=task_id, bash_command=f"set -eo pipefail\n{command}\n")


with DAG(
    dag_id="watermark_loop",
    description="Watermark Studio: ingest, curate, retrain, gate, promote, queue for labelling.",
    schedule=SCHEDULE,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["watermark-studio"],
) as dag:
    make_task = _k8s_task if MODE == "k8s" else _local_task
    tasks = [make_task(task_id, command) for task_id, command in STAGES.items()]
    for upstream, downstream in itertools.pairwise(tasks):
        upstream >> downstream
