"""Deployment artefacts, checked offline: Dockerfile (hadolint), docker-compose.yml, every kustomize
target (kubectl kustomize | kubernetes-validate --strict, plus our schemas for the Prometheus
Operator CRDs), the GitHub Actions workflow (actionlint) and the Airflow DAG (DagBag).

Beyond "it parses", each check ties the files to the code: every ``wmstudio`` command they run must
parse against the real CLI, every ``WMSTUDIO_*`` variable must be a settings field, and every
alert must query a metric the API really exports.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import tomllib
from functools import cache
from pathlib import Path

import jsonschema
import pytest
import typer.main
import yaml

from tests.conftest import ROOT
from wmstudio.registry import Registry
from wmstudio.settings import Settings

pytestmark = pytest.mark.deploy

VENV_BIN = Path(sys.executable).parent
K8S = ROOT / "k8s"
OVERLAYS = ["overlays/dev", "overlays/prod"]
JOBS = ["jobs/train", "jobs/bulk-scan"]
CRD_API = "monitoring.coreos.com/v1"
SETTINGS_VARS = {f"WMSTUDIO_{name.upper()}" for name in Settings.model_fields}
AIRFLOW_VENV = ROOT / ".wmstudio" / "airflow-venv"
DAG_FILE = ROOT / "airflow" / "dags" / "watermark_loop.py"
DAG_VARS = set(re.findall(r'os\.environ\.get\("(WMSTUDIO_\w+)"', DAG_FILE.read_text()))  # read by the DAG itself
PIPELINE = ["ingest", "curate", "train", "evaluate", "promote", "score_pool", "push_label_studio"]


def tool(name: str) -> str:
    """A linter/validator from the dev extra; missing means a broken install, not a skip."""
    path = VENV_BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"`{name}` not found: install the dev extra (pip install -e '.[dev]')")
    return found


def run(*args: str, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, cwd=ROOT, input=stdin, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})}
    )


# --- the real CLI, to check every command the deployment files run ------------------------------


@cache
def _cli():
    from cli.main import app

    return typer.main.get_command(app)


def check_cli(argv: list[str]) -> None:
    """Parse ``wmstudio ...`` against the CLI (subcommands, options, types) without running it."""
    assert argv[0] == "wmstudio", argv
    command, args, name = _cli(), list(argv[1:]), "wmstudio"
    while hasattr(command, "commands"):  # a group (typer may vendor click: no isinstance checks)
        assert args, f"{argv}: missing subcommand"
        sub = command.commands.get(args[0])
        assert sub is not None, f"{shlex.join(argv)}: no such command {args[0]!r}"
        command, name, args = sub, args[0], args[1:]
    try:
        command.make_context(name, args)
    except Exception as exc:  # click's usage errors: unknown option, bad value, missing argument
        pytest.fail(f"{shlex.join(argv)}: {exc}")


def _without_substitutions(line: str) -> str:
    """Replace each ``$(...)`` (balanced) by a placeholder word, so its pipes are not split on."""
    out, depth, i = [], 0, 0
    while i < len(line):
        if line.startswith("$(", i):
            if depth == 0:
                out.append("SUBSTITUTION")
            depth, i = depth + 1, i + 2
            continue
        if depth and line[i] == "(":
            depth += 1
        elif depth and line[i] == ")":
            depth -= 1
        elif not depth:
            out.append(line[i])
        i += 1
    return "".join(out)


def wmstudio_calls(script: str) -> list[list[str]]:
    """``wmstudio`` invocations in a shell script (one per line, up to the first operator)."""
    calls = []
    for line in script.splitlines():
        line = _without_substitutions(line.strip())
        for part in re.split(r"\s(?:&&|\|\||;|\|)\s", line):
            part = part.strip()
            if part.startswith("exec "):
                part = part[5:]
            if part.startswith("wmstudio "):
                calls.append(shlex.split(part))
    return calls


# --- Dockerfile --------------------------------------------------------------------------------


def dockerfile_stages() -> dict[str, str]:
    """Stage name -> its instructions (continuation lines joined)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stages: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        match = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE)
        if match:
            current = match.group(1)
            stages[current] = line + "\n"
        elif current and line.strip() and not line.lstrip().startswith("#"):
            stages[current] += line + "\n"
    return stages


def test_dockerfile_passes_hadolint():
    hadolint = tool("hadolint")
    result = run(hadolint, "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr
    # the linter really lints: an unpinned, root, latest-tag Dockerfile fails
    bad = run(hadolint, "-", stdin="FROM python:latest\nRUN pip install requests\n")
    assert bad.returncode != 0 and "DL3007" in bad.stdout and "DL3013" in bad.stdout


def test_dockerfile_targets():
    stages = dockerfile_stages()
    assert {"build", "serve", "apps", "train", "airflow"} <= set(stages)
    assert list(stages)[-1] == "serve", "serve must be the default (last) target"
    assert "python:3.11-slim" in (ROOT / "Dockerfile").read_text()

    serve = stages["serve"]
    assert "COPY --from=build /opt/venv /opt/venv" in serve
    assert re.search(r"^USER 10001$", serve, re.MULTILINE)
    assert re.search(r"HEALTHCHECK .*CMD .*/healthz", serve)
    assert 'CMD ["wmstudio", "serve", "--host", "0.0.0.0"]' in serve
    check_cli(["wmstudio", "serve", "--host", "0.0.0.0"])
    runtime = stages["runtime"]
    assert "models /app/models" in runtime and "WMSTUDIO_REGISTRY_DIR=/app/models" in runtime

    # serving is torch-free: the build stage installs only the core dependencies and checks it
    build = stages["build"]
    assert "['project']['dependencies']" in build and "optional-dependencies" not in build
    assert '! python -c "import torch"' in build
    core = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not [d for d in core if re.match(r"(torch|torchvision|ultralytics)\b", d)]

    train = stages["train"]
    assert "torch==2.14.1 torchvision==0.29.1" in train
    assert "['optional-dependencies']['train']" in train and "['optional-dependencies']['curation']" in train
    assert re.search(r"^USER 10001$", train, re.MULTILINE)
    # the image and `make airflow-venv` (the DAG test) run the same Airflow
    pins = re.search(r"^AIRFLOW_PACKAGES := (.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE).group(1).split()
    assert pins and all(f" {pin}" in stages["airflow"] for pin in pins), pins


def test_dockerignore_keeps_state_out_and_packages_in():
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*", "allow-list: everything is excluded first"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    for pattern in packages["include"]:
        assert pattern.rstrip("*") in allowed, f"package {pattern} is missing from the Docker build context"
    assert {"pyproject.toml", "README.md", "models", "airflow/dags"} <= allowed
    assert not allowed & {".wmstudio", ".venv", "tests", ".git"}
    # every COPY source of the Dockerfile is in the build context
    for source in re.findall(r"^COPY (?!--from)(?:--\S+ )*(\S+) ", (ROOT / "Dockerfile").read_text(), re.MULTILINE):
        assert source.rstrip("/") in allowed or source in ("pyproject.toml", "README.md"), source


# --- docker compose ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def env_example() -> dict[str, str]:
    pairs = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value
    return pairs


def test_compose_services_healthchecks_and_dependencies(compose):
    services = compose["services"]
    assert {"api", "dashboard", "demo", "label-studio", "postgres", "airflow"} <= set(services)
    for name, service in services.items():
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert condition == {"condition": "service_healthy"}, f"{name} -> {dependency}: {condition}"
    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    for app in ("dashboard", "demo"):
        assert services[app]["depends_on"]["api"] == {"condition": "service_healthy"}
    assert services["label-studio"]["image"].startswith("heartexlabs/label-studio:")

    stages = dockerfile_stages()
    for name, service in services.items():
        if "build" in service:
            assert service["build"]["target"] in stages, f"{name}: no Dockerfile target {service['build']['target']}"
    assert services["api"]["build"]["target"] == "serve"
    assert services["airflow"]["profiles"] == ["airflow"]
    assert all("profiles" not in s for n, s in services.items() if n != "airflow"), "only airflow is optional"
    for name in ("api", "dashboard", "demo", "airflow"):
        assert services[name]["env_file"] == [{"path": ".env", "required": False}], name


def test_compose_volumes_persist_data(compose):
    declared = set(compose["volumes"])

    def named(service: str) -> dict[str, str]:
        mounts = {}
        for volume in compose["services"][service].get("volumes", []):
            source, target = volume.split(":")[:2]
            if not source.startswith((".", "/", "$")):
                assert source in declared, f"{service}: volume {source} is not declared"
                mounts[target] = source
        return mounts

    assert "/label-studio/data" in named("label-studio")
    assert "/var/lib/postgresql/data" in named("postgres")
    # the API serves from the registry volume the loop writes (promotion -> hot reload)
    assert named("api")["/app/models"] == named("airflow")["/app/models"] == "models"


def test_compose_configuration_is_documented(compose):
    documented = env_example()
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    assert used, "compose reads nothing from .env?"
    assert used <= set(documented), f"not in .env.example: {sorted(used - set(documented))}"
    unknown = {key for key in documented if key.startswith("WMSTUDIO_")} - SETTINGS_VARS
    assert not unknown, f".env.example documents variables the settings do not have: {unknown}"
    environment = {
        k for s in compose["services"].values() for k in s.get("environment", {}) if k.startswith("WMSTUDIO_")
    }
    assert environment <= SETTINGS_VARS | DAG_VARS, environment - SETTINGS_VARS - DAG_VARS
    # compose refuses to start without the required secrets instead of using a default password
    for secret in ("POSTGRES_PASSWORD", "LABEL_STUDIO_PASSWORD", "WMSTUDIO_LABEL_STUDIO_TOKEN"):
        assert re.search(rf"\$\{{{secret}:\?", text), secret


def compose_settings(compose: dict, service: str, dotenv: dict[str, str]) -> Settings:
    """The settings a compose service's process sees: the image's ENV, compose's environment, ``.env``."""
    runtime = dockerfile_stages()["runtime"]
    image_env = dict(re.findall(r"(WMSTUDIO_\w+)=(\S+)", runtime))
    environment = {k: str(v) for k, v in compose["services"][service].get("environment", {}).items()}
    merged = {**image_env, **dotenv, **environment}
    fields = {name[len("WMSTUDIO_") :].lower(): value for name, value in merged.items() if name.startswith("WMSTUDIO_")}
    return Settings(_env_file=None, **{k: v for k, v in fields.items() if k in Settings.model_fields})


def test_compose_is_secure_by_default(compose, monkeypatch, tmp_path):
    """Ports only on loopback; without keys and logins the API, dashboard and demo refuse to start."""
    from api.main import create_app
    from app.demo import login_check
    from wmstudio.exposure import InsecureDeployment

    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("${BIND_ADDRESS:-127.0.0.1}:"), f"{name} publishes {port} on every interface"
        assert "WMSTUDIO_ALLOW_INSECURE" not in service.get("environment", {}), name
    documented = env_example()
    assert documented["BIND_ADDRESS"] == "127.0.0.1"
    assert documented["WMSTUDIO_API_KEYS"] == documented["WMSTUDIO_APP_USERS"] == ""
    assert documented["WMSTUDIO_ALLOW_INSECURE"] in ("", "false", "0")
    for key in list(os.environ):
        if key.startswith("WMSTUDIO_"):
            monkeypatch.delenv(key)
    dotenv = {k: v for k, v in documented.items() if k.startswith("WMSTUDIO_")}  # `cp .env.example .env`
    api = compose_settings(compose, "api", dotenv)
    assert api.api_host == "0.0.0.0" and not api.api_keys
    with pytest.raises(InsecureDeployment, match="WMSTUDIO_API_KEYS"):
        create_app(api)
    with pytest.raises(InsecureDeployment, match="WMSTUDIO_APP_USERS"):
        login_check(compose_settings(compose, "demo", dotenv))
    dashboard = compose["services"]["dashboard"]["command"]
    assert "--server.address=0.0.0.0" in dashboard  # exposed: app/login.py then requires logins
    # with keys the API starts; the explicit flag is the only other way
    create_app(api.model_copy(update={"api_keys": ["a-key"], "registry_dir": tmp_path, "state_dir": tmp_path}))


def test_compose_label_studio_serves_only_the_datasets_folder(compose):
    label_studio = compose["services"]["label-studio"]
    root = label_studio["environment"]["LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"]
    assert root == "/var/lib/wmstudio/datasets"
    assert compose["x-wmstudio-env"]["WMSTUDIO_LABEL_STUDIO_DOCUMENT_ROOT"] == root
    # the datasets folder is where the loop's volume holds them, mounted read-only
    assert "loop-state:/var/lib/wmstudio:ro" in label_studio["volumes"]
    assert all(not v.endswith(":/") and ":/data" not in v for v in label_studio["volumes"])


def test_compose_app_commands(compose):
    dashboard = compose["services"]["dashboard"]["command"]
    assert dashboard[:2] == ["streamlit", "run"] and dashboard[2].endswith("site-packages/app/dashboard.py")
    assert compose["services"]["demo"]["command"] == ["python", "-m", "app.demo"]


# --- kubernetes ----------------------------------------------------------------------------------


@cache
def render(target: str) -> list[dict]:
    result = run(tool("kubectl"), "kustomize", str(K8S / target))
    assert result.returncode == 0, f"kubectl kustomize {target}:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def validate_strict(docs: list[dict]) -> subprocess.CompletedProcess:
    return run(tool("kubernetes-validate"), "--strict", "--quiet", "-", stdin=yaml.safe_dump_all(docs))


def crd_schema(doc: dict) -> dict:
    return json.loads((K8S / "schemas" / f"{doc['kind'].lower()}-monitoring-v1.json").read_text())


def pod_specs(docs: list[dict]) -> dict[str, dict]:
    specs = {}
    for doc in docs:
        spec = doc.get("spec", {})
        if doc["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        if doc["kind"] in ("Deployment", "Job", "CronJob"):
            specs[f"{doc['kind']}/{doc['metadata']['name']}"] = spec["template"]["spec"]
    return specs


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


EXPECTED_KINDS = {
    "overlays/dev": {
        "Namespace", "ServiceAccount", "ConfigMap", "Secret", "PersistentVolumeClaim", "Deployment", "Service",
        "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy", "CronJob",
    },  # no Ingress: dev runs open (WMSTUDIO_ALLOW_INSECURE), reached by port-forward only
    "jobs/train": {"Job"},
    "jobs/bulk-scan": {"Job", "ConfigMap"},
}  # fmt: skip
EXPECTED_KINDS["overlays/prod"] = EXPECTED_KINDS["overlays/dev"] - {"Secret"} | {
    "Ingress", "ServiceMonitor", "PrometheusRule"
}  # fmt: skip


@pytest.mark.parametrize("target", OVERLAYS + JOBS)
def test_kustomize_renders_and_validates_strictly(target):
    docs = render(target)
    assert {doc["kind"] for doc in docs} == EXPECTED_KINDS[target]
    core = [doc for doc in docs if doc["apiVersion"] != CRD_API]
    result = validate_strict(core)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # a kind without a schema is only a WARN (exit 0): every core resource must really be checked
    assert "WARN" not in output and "ERROR" not in output, output
    for doc in docs:
        if doc["apiVersion"] == CRD_API:
            jsonschema.validate(doc, crd_schema(doc))


def test_strict_validation_catches_mistakes():
    """The validators are not rubber stamps: a typo'd field and a broken alert both fail."""
    api = by_kind(render("overlays/prod"), "Deployment")["wmstudio-api"]
    broken = json.loads(json.dumps(api))
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = broken["spec"]["template"]["spec"][
        "containers"
    ][0].pop("readinessProbe")
    result = validate_strict([broken])
    assert result.returncode != 0 and "readinesProbe" in result.stdout
    rule = json.loads(json.dumps(by_kind(render("overlays/prod"), "PrometheusRule")["wmstudio-api"]))
    del rule["spec"]["groups"][0]["rules"][0]["for"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(rule, crd_schema(rule))


@pytest.mark.parametrize("target", OVERLAYS)
def test_api_deployment_is_production_grade(target):
    docs = render(target)
    api = by_kind(docs, "Deployment")["wmstudio-api"]
    spec = api["spec"]
    assert spec["strategy"]["type"] == "RollingUpdate" and spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = spec["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "api")
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    check_cli(container["args"])
    tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
    assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == tmp["name"])
    models = next(v for v in pod["volumes"] if v["name"] == "models")
    assert models["persistentVolumeClaim"]["claimName"] in by_kind(docs, "PersistentVolumeClaim")
    seed = pod["initContainers"][0]
    assert "registry.json" in seed["command"][-1] and seed["image"] == container["image"]

    hpa = by_kind(docs, "HorizontalPodAutoscaler")["wmstudio-api"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "wmstudio-api"}
    assert hpa["spec"]["minReplicas"] <= spec["replicas"] <= hpa["spec"]["maxReplicas"]
    pod_labels = spec["template"]["metadata"]["labels"]
    pdb = by_kind(docs, "PodDisruptionBudget")["wmstudio-api"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"] or hpa["spec"]["minReplicas"] == 1
    policy = by_kind(docs, "NetworkPolicy")["wmstudio-api"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert any(rule.get("podSelector", {}).get("matchLabels", {}).items() <= pod_labels.items()
               for rule in policy["spec"]["ingress"][0]["from"] if "podSelector" in rule)  # fmt: skip


@pytest.mark.parametrize("target", OVERLAYS + JOBS)
def test_every_pod_is_locked_down_and_sized(target):
    """Restricted pod security: non-root, read-only root, no escalation; requests and limits everywhere."""
    specs = pod_specs(render(target))
    assert specs
    for name, pod in specs.items():
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod.get("automountServiceAccountToken") is False, name
        for container in pod.get("initContainers", []) + pod["containers"]:
            where = f"{name}/{container['name']}"
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), where
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), where
            if "args" in container and container["args"][0] == "wmstudio":
                check_cli(container["args"])


@pytest.mark.parametrize("target", OVERLAYS + JOBS)
def test_references_resolve(target):
    """Services, Ingress, ConfigMaps, Secrets and PVCs that pods name all exist (Jobs: in the overlays)."""
    docs = render(target)
    available = docs + (render("overlays/prod") + render("overlays/dev") if target in JOBS else [])
    names = {(doc["kind"], doc["metadata"]["name"]) for doc in available}
    # prod creates them out of band from k8s/base/secret.example.yaml and mlflow-secret.example.yaml
    secrets = {"wmstudio-secrets", "wmstudio-mlflow"}
    for name, pod in pod_specs(docs).items():
        for volume in pod.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert ("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]) in names, name
        for container in pod["containers"]:
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert ("ConfigMap", source["configMapRef"]["name"]) in names, name
                else:
                    assert source["secretRef"]["name"] in secrets, name
    deployments = by_kind(docs, "Deployment")
    for service in by_kind(docs, "Service").values():
        selector = service["spec"]["selector"].items()
        assert any(selector <= d["spec"]["template"]["metadata"]["labels"].items() for d in deployments.values())
    for ingress in by_kind(docs, "Ingress").values():
        for rule in ingress["spec"]["rules"]:
            backend = rule["http"]["paths"][0]["backend"]["service"]
            ports = [p["name"] for p in by_kind(docs, "Service")[backend["name"]]["spec"]["ports"]]
            assert backend["port"]["name"] in ports


def test_kubernetes_is_secure_by_default(monkeypatch):
    """Base and prod: keys and logins from the Secret, /metrics not routed; dev says it runs open."""
    from api.main import create_app
    from wmstudio.exposure import InsecureDeployment

    for key in list(os.environ):
        if key.startswith("WMSTUDIO_"):
            monkeypatch.delenv(key)

    prod = render("overlays/prod")
    config = by_kind(prod, "ConfigMap")["wmstudio-config"]["data"]
    assert config["WMSTUDIO_API_HOST"] == "0.0.0.0" and "WMSTUDIO_ALLOW_INSECURE" not in config
    fields = {k[len("WMSTUDIO_") :].lower(): v for k, v in config.items() if k.startswith("WMSTUDIO_")}
    with pytest.raises(InsecureDeployment):  # a Secret without keys: the API does not start
        create_app(Settings(_env_file=None, **fields))
    template = yaml.safe_load((K8S / "base" / "secret.example.yaml").read_text())["stringData"]
    assert {"WMSTUDIO_API_KEYS", "WMSTUDIO_APP_USERS", "WMSTUDIO_CLIENT_API_KEY", "WMSTUDIO_WEBHOOK_SECRET"} <= set(
        template
    )
    deployments = by_kind(prod, "Deployment")
    dashboard = deployments["wmstudio-dashboard"]["spec"]["template"]["spec"]["containers"][0]
    assert {"secretRef": {"name": "wmstudio-secrets"}} in dashboard["envFrom"]
    demo = deployments["wmstudio-demo"]["spec"]["template"]["spec"]["containers"][0]
    from_secret = {e["name"] for e in demo["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    assert from_secret == {"WMSTUDIO_APP_USERS", "WMSTUDIO_CLIENT_API_KEY"}  # not the database or Label Studio
    assert not [e for e in demo.get("envFrom", []) if "secretRef" in e]

    ingress = by_kind(prod, "Ingress")["wmstudio"]
    api_rule = next(r for r in ingress["spec"]["rules"] if r["host"].startswith("api."))
    routed = {(p["path"], p["pathType"]) for p in api_rule["http"]["paths"]}
    assert routed == {("/v1", "Prefix"), ("/docs", "Exact"), ("/openapi.json", "Exact")}
    for private in ("/metrics", "/healthz", "/readyz"):
        assert not any(private.startswith(path) for path, kind in routed if kind == "Prefix"), private
    # Prometheus still scrapes /metrics directly (ServiceMonitor + NetworkPolicy from the monitoring namespace)
    assert by_kind(prod, "ServiceMonitor")["wmstudio-api"]["spec"]["endpoints"][0]["path"] == "/metrics"

    dev = render("overlays/dev")
    assert by_kind(dev, "ConfigMap")["wmstudio-config"]["data"]["WMSTUDIO_ALLOW_INSECURE"] == "true"
    assert "Ingress" not in {doc["kind"] for doc in dev}


def test_configuration_and_secrets():
    for target in OVERLAYS:
        config = by_kind(render(target), "ConfigMap")["wmstudio-config"]["data"]
        settings_keys = {key for key in config if key.startswith("WMSTUDIO_")}
        assert settings_keys <= SETTINGS_VARS, settings_keys - SETTINGS_VARS
        assert config["WMSTUDIO_REGISTRY_DIR"] == "/models"
    assert "Secret" not in {doc["kind"] for doc in render("overlays/prod")}, "an apply must not overwrite the secret"
    dev_secret = by_kind(render("overlays/dev"), "Secret")["wmstudio-secrets"]
    assert set(dev_secret["data"].values()) == {""}, "dev secrets are empty, never real"
    template = yaml.safe_load((K8S / "base" / "secret.example.yaml").read_text())
    assert template["kind"] == "Secret" and set(template["stringData"]) <= SETTINGS_VARS
    assert all("REPLACE_ME" in value for value in template["stringData"].values())
    assert validate_strict([template]).returncode == 0
    # the MLflow server's Secret: a PostgreSQL backend in prod (template), SQLite on its volume in dev
    mlflow = yaml.safe_load((K8S / "base" / "mlflow-secret.example.yaml").read_text())
    assert mlflow["metadata"]["name"] == "wmstudio-mlflow" and validate_strict([mlflow]).returncode == 0
    assert mlflow["stringData"]["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg://")
    dev_mlflow = by_kind(render("overlays/dev"), "Secret")["wmstudio-mlflow"]
    assert base64.b64decode(dev_mlflow["data"]["MLFLOW_BACKEND_STORE_URI"]).decode().startswith("sqlite:////mlflow/")


def test_mlflow_server_for_teams(compose):
    """MLflow in compose and k8s: PostgreSQL backend, an artifact volume, reachable by the trainers."""
    service = compose["services"]["mlflow"]
    assert service["build"]["target"] == "mlflow" and "mlflow" in dockerfile_stages()
    assert service["environment"]["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg://")
    assert "@mlflow-db:5432/" in service["environment"]["MLFLOW_BACKEND_STORE_URI"]
    assert service["depends_on"] == {"mlflow-db": {"condition": "service_healthy"}}
    assert any(v.split(":")[1] == "/mlflow" for v in service["volumes"])
    assert "mlflow" in service["environment"]["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    trackers = {"api", "dashboard", "demo", "airflow"}
    for name in trackers:
        assert compose["services"][name]["environment"]["WMSTUDIO_MLFLOW_TRACKING_URI"] == "http://mlflow:5000", name
    assert compose["services"]["airflow"]["depends_on"]["mlflow"] == {"condition": "service_healthy"}
    for target in OVERLAYS:
        docs = render(target)
        deployment = by_kind(docs, "Deployment")["wmstudio-mlflow"]
        pod = deployment["spec"]["template"]["spec"]
        assert pod["containers"][0]["args"][:2] == ["mlflow", "server"]
        assert pod["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/health"
        volume = next(v for v in pod["volumes"] if v["name"] == "data")
        assert volume["persistentVolumeClaim"]["claimName"] in by_kind(docs, "PersistentVolumeClaim")
        service = by_kind(docs, "Service")["wmstudio-mlflow"]
        config = by_kind(docs, "ConfigMap")["wmstudio-config"]["data"]
        assert config["WMSTUDIO_MLFLOW_TRACKING_URI"] == f"http://{service['metadata']['name']}:5000"
        policy = by_kind(docs, "NetworkPolicy")["wmstudio-mlflow"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert "Secret" not in {doc["kind"] for doc in render("overlays/prod")}


def test_loop_cronjob_and_bulk_scan_jobs():
    loop = by_kind(render("overlays/prod"), "CronJob")["wmstudio-loop"]
    assert loop["spec"]["concurrencyPolicy"] == "Forbid"
    assert loop["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"][:2] == ["wmstudio", "loop"]
    assert by_kind(render("overlays/dev"), "CronJob")["wmstudio-loop"]["spec"]["suspend"] is True

    docs = render("jobs/bulk-scan")
    jobs, config = by_kind(docs, "Job"), next(iter(by_kind(docs, "ConfigMap").values()))["data"]
    scan, merge = jobs["wmstudio-scan"], jobs["wmstudio-scan-merge"]
    shards = int(config["SHARDS"])
    assert scan["spec"]["completionMode"] == "Indexed"
    assert scan["spec"]["completions"] == scan["spec"]["parallelism"] == shards
    args = scan["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == [
        "wmstudio", "scan", "/data/manifest.txt", "--shard", "$(JOB_COMPLETION_INDEX)/$(SHARDS)",
        "--out", "/results/shard-$(JOB_COMPLETION_INDEX).jsonl",
    ]  # fmt: skip
    check_cli(args)
    script = merge["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert '-ge "$SHARDS"' in script and "$$(ls" in script  # $$( is not expanded by Kubernetes
    [merge_call] = wmstudio_calls(script)
    assert merge_call[:2] == ["wmstudio", "scan-merge"] and "--manifest" in merge_call
    check_cli(merge_call)
    mounts = [m for job in jobs.values() for m in job["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]]
    assert {m.get("subPathExpr") for m in mounts if m["mountPath"] == "/results"} == {"$(SCAN_RUN)"}
    train = by_kind(render("jobs/train"), "Job")["wmstudio-train"]["spec"]["template"]["spec"]["containers"][0]
    check_cli(train["args"])
    assert train["resources"]["limits"]["nvidia.com/gpu"] == "1"


def exported_metrics() -> set[str]:
    """Sample names the API's /metrics can show: ServiceMetrics plus the drift monitor."""
    from api.drift import DriftMonitor
    from api.metrics import ServiceMetrics

    metrics = ServiceMetrics()
    DriftMonitor().register(metrics.registry)
    metrics.requests.labels("/v1/detect", "POST", "200").inc()
    metrics.latency.labels("/v1/detect", "POST", "200").observe(0.1)
    return {sample.name for family in metrics.registry.collect() for sample in family.samples}


def test_monitoring_alerts_query_real_metrics():
    docs = render("overlays/prod")
    rules = by_kind(docs, "PrometheusRule")["wmstudio-api"]["spec"]["groups"][0]["rules"]
    alerts = {rule["alert"]: rule["expr"] for rule in rules}
    assert {"WatermarkStudioHighErrorRate", "WatermarkStudioHighLatencyP95", "WatermarkStudioWatermarkRateDrift",
            "WatermarkStudioNoTraffic"} <= set(alerts)  # fmt: skip
    assert "wmstudio_watermark_rate_drift" in alerts["WatermarkStudioWatermarkRateDrift"]
    assert "histogram_quantile(0.95" in alerts["WatermarkStudioHighLatencyP95"]
    exported = exported_metrics()
    for name, expr in alerts.items():
        for metric in set(re.findall(r"\bwmstudio_[a-z_]+", expr)):
            assert metric in exported, f"{name} queries {metric}, which the API does not export"
    monitor = by_kind(docs, "ServiceMonitor")["wmstudio-api"]
    service = by_kind(docs, "Service")["wmstudio-api"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] in [p["name"] for p in service["spec"]["ports"]]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert "ServiceMonitor" not in {doc["kind"] for doc in render("overlays/dev")}


# --- CI workflow --------------------------------------------------------------------------------


def test_workflow_passes_actionlint(tmp_path):
    actionlint = tool("actionlint")
    env = {"PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # shellcheck checks the run: scripts
    result = run(actionlint, ".github/workflows/ci.yml", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.nope }}\n"
    )
    assert run(actionlint, str(bad), env=env).returncode != 0


def test_workflow_tests_builds_and_deploys():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    jobs = workflow["jobs"]
    assert any(step.get("run") == "make test PYTHON=python" for step in jobs["test"]["steps"])
    assert jobs["images"]["needs"] == "test" and "refs/heads/main" in jobs["images"]["if"]
    build = next(s for s in jobs["images"]["steps"] if s.get("uses", "").startswith("docker/build-push-action"))
    assert build["with"]["push"] is True
    targets = {entry["target"] for entry in jobs["images"]["strategy"]["matrix"]["include"]}
    assert targets <= set(dockerfile_stages()) and "serve" in targets
    assert jobs["images"]["permissions"]["packages"] == "write"
    assert jobs["deploy"]["needs"] == "images" and "refs/tags/v" in jobs["deploy"]["if"]
    deploy = " ".join(step.get("run", "") for step in jobs["deploy"]["steps"])
    assert "kubectl apply -k k8s/overlays/prod" in deploy


# --- Airflow DAG ----------------------------------------------------------------------------------


def dag_stages() -> dict[str, str]:
    """The DAG's stage table, read without Airflow (the constants block of the DAG file)."""
    source = DAG_FILE.read_text()
    constants = source[source.index("MODE = ") : source.index("DEFAULT_ARGS = ")]
    namespace: dict = {"os": os}
    exec(compile(constants, str(DAG_FILE), "exec"), namespace)
    return namespace["STAGES"]


def test_dag_stages_are_the_pipeline_of_wmstudio_commands():
    """Without Airflow: the stage table is the pipeline, each stage is valid bash running real commands."""
    stages = dag_stages()
    assert list(stages) == PIPELINE
    for task_id, template in stages.items():
        # the only template variables are plain names, rendered like Airflow would
        command = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: {"ts_nodash": "20260101T020000"}[m.group(1)], template)
        syntax = run("bash", "-n", "-c", command)
        assert syntax.returncode == 0, f"{task_id}: {syntax.stderr}"
        calls = wmstudio_calls(command)
        assert calls, f"{task_id} runs no wmstudio command"
        for call in calls:
            check_cli(call)
    assert wmstudio_calls(stages["train"])[0][:2] == ["wmstudio", "train"]
    assert "gated_promote(" in stages["promote"] and "champion_on_challenger_data(" in stages["promote"]


DAG_PROBE = textwrap.dedent(
    """
    import json, os
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(dag_folder=os.environ["DAG_FOLDER"])
    dag = bag.dags.get("watermark_loop")
    tasks = {}
    for task in (dag.tasks if dag else []):
        command = task.bash_command if hasattr(task, "bash_command") else task.arguments[0]
        context = {"ts_nodash": "20260101T020000", "run_id": "manual__1"}
        tasks[task.task_id] = {
            "operator": type(task).__name__,
            "downstream": sorted(task.downstream_task_ids),
            "command": task.render_template(command, context),
            "image": getattr(task, "image", None),
        }
    errors = {str(k): str(v) for k, v in bag.import_errors.items()}
    print(json.dumps({"errors": errors, "tasks": tasks, "max_active_runs": dag.max_active_runs if dag else None}))
    """
)


@pytest.fixture(scope="module")
def airflow_python() -> Path:
    """Airflow lives in its own venv (its pins clash with ours): `make airflow-venv` builds it."""
    python = AIRFLOW_VENV / "bin" / "python"
    if not (AIRFLOW_VENV / ".installed").exists():
        result = subprocess.run(["make", "-s", "airflow-venv"], cwd=ROOT, capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            pytest.skip(f"Airflow could not be installed into {AIRFLOW_VENV} (offline?): {result.stderr[-500:]}")
    return python


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("mode", ["local", "k8s"])
def test_dag_loads_in_airflow(airflow_python, mode, tmp_path):
    env = {
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "DAG_FOLDER": str(DAG_FILE.parent),
        "WMSTUDIO_AIRFLOW_MODE": mode,
        "WMSTUDIO_TRAIN_IMAGE": "registry.example/wmstudio-train:test",
    }
    result = run(str(airflow_python), "-c", DAG_PROBE, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["errors"] == {}
    tasks = report["tasks"]
    assert list(tasks) == PIPELINE
    for upstream, downstream in itertools.pairwise(PIPELINE):
        assert tasks[upstream]["downstream"] == [downstream]
    assert tasks[PIPELINE[-1]]["downstream"] == []
    assert report["max_active_runs"] == 1
    operator = "KubernetesPodOperator" if mode == "k8s" else "BashOperator"
    assert {task["operator"] for task in tasks.values()} == {operator}
    if mode == "k8s":
        assert {task["image"] for task in tasks.values()} == {"registry.example/wmstudio-train:test"}
    for task_id, task in tasks.items():
        command = task["command"]
        assert "{{" not in command, f"{task_id}: unrendered template"
        syntax = run("bash", "-n", "-c", command)
        assert syntax.returncode == 0, f"{task_id}: {syntax.stderr}"
        calls = wmstudio_calls(command)
        assert calls, f"{task_id} runs no wmstudio command"
        for call in calls:
            check_cli(call)
    assert "airflow-20260101T020000" in tasks["train"]["command"]


def _dag_promote_script() -> str:
    script = re.search(r'PROMOTE_IF_BETTER = """(.*?)"""', DAG_FILE.read_text(), re.DOTALL).group(1)
    return script.split("<<'PY'\n", 1)[1].split("\nPY\n", 1)[0]


def test_dag_promote_gate_runs_against_a_registry(tmp_path, bundled_registry):
    """The promote task's gate script runs with the project's code: nothing new -> nothing promoted."""
    registry = tmp_path / "models"
    shutil.copytree(bundled_registry, registry)
    env = {"WMSTUDIO_REGISTRY_DIR": str(registry), "WMSTUDIO_STATE_DIR": str(tmp_path / "state")}
    result = run(sys.executable, "-c", _dag_promote_script(), env=env)
    assert result.returncode == 0, result.stderr
    assert "already the champion: nothing to promote" in result.stdout


def test_dag_promote_refuses_figures_from_other_validation_data(tmp_path, bundled_registry):
    """Better figures measured on other validation photos (none here to re-measure on) promote nothing."""
    shutil.copytree(bundled_registry, tmp_path / "models")
    registry = Registry(tmp_path / "models")
    champion = registry.champion()
    card = registry.card(champion)
    shutil.copytree(registry.path(champion), tmp_path / "models" / "v999")
    better = card["metrics"] | {"val_f1": 0.99}
    elsewhere = {"version": "v999", "evaluation_data_version": "other+machine", "metrics": better}
    registry.write_card("v999", card | elsewhere)
    env = {"WMSTUDIO_REGISTRY_DIR": str(registry.root), "WMSTUDIO_STATE_DIR": str(tmp_path / "state")}
    result = run(sys.executable, "-c", _dag_promote_script(), env=env)
    assert result.returncode == 0, result.stderr
    assert "fails the promotion gate" in result.stdout
    assert "validation data: v999 was measured on other+machine" in result.stdout
    assert Registry(tmp_path / "models").champion() == champion
