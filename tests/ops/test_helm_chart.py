"""The Helm chart: helm lint and helm template for the default and a production-like values file, every
rendered object validated against the Kubernetes schemas (and the Prometheus Operator's), and what it deploys
checked against what the application expects: its settings, its commands, its ports and health endpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from cloudcoil.models.prometheus_operator import v1 as prometheus_operator

from polycopy.infra.metrics import DEFAULT_PORTS, component_port
from polycopy.infra.settings import PolycopySettings, find_unknown_variables
from schemas.wallets import WalletConfigFile
from tests.ops.helpers import REPO_ROOT, find_tool

CHART = REPO_ROOT / "infra" / "helm" / "polycopy"
PRODUCTION = CHART / "ci" / "production-values.yaml"
KUBERNETES_VERSIONS = ("1.29.0", "1.37.0")  # the chart's oldest supported version and the newest schemas
OPERATOR_KINDS = {"PodMonitor", "ServiceMonitor", "PrometheusRule"}
# Settings the chart sets itself (paths, ports, probes) or takes from Secrets, not from `settings`.
# The chart sets these itself or from Secrets (the CLOB API credentials are optional: derived when absent).
CLOB_API_CREDENTIALS = {"clob_api_key", "clob_api_secret", "clob_api_passphrase"}
CHART_OWNED = {
    "database_url",
    "private_key",
    "alert_webhook_url",
    "mcp_token",  # the chart runs no MCP server: its token is set where `polycopy mcp --http` runs
    "data_dir",
    "metrics_port",
    "metrics_enabled",
    # Left unset: a Deployment's pod names change on every restart, so static membership would gain nothing.
    "instance_id",
} | CLOB_API_CREDENTIALS
# Commands that other work packages are adding; checked once the CLI has them.
PENDING_COMMANDS = {"books"}

Doc = dict[str, Any]


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([find_tool("helm"), *args], capture_output=True, text=True, timeout=300)


@cache
def render(*options: str) -> tuple[Doc, ...]:
    result = helm("template", "polycopy", str(CHART), "--namespace", "trading", *options)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def default() -> tuple[Doc, ...]:
    return render()


def production() -> tuple[Doc, ...]:
    return render("-f", str(PRODUCTION))


def objects(docs: tuple[Doc, ...], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] == kind]


def component_of(doc: Doc) -> str:
    return str(doc["metadata"]["labels"]["app.kubernetes.io/component"])


def strict_schema(node: Any) -> Any:
    """Reject unknown fields, as the API server does for typed objects (the models allow them by default)."""
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node:
            node.setdefault("additionalProperties", False)
        for value in node.values():
            strict_schema(value)
    elif isinstance(node, list):
        for value in node:
            strict_schema(value)
    return node


@cache
def operator_schema(kind: str) -> Doc:
    model = getattr(prometheus_operator, kind)
    return strict_schema(model.model_json_schema(by_alias=True, mode="validation"))  # type: ignore[no-any-return]


def validate(doc: Doc) -> None:
    if doc["kind"] in OPERATOR_KINDS:
        error = jsonschema.exceptions.best_match(
            jsonschema.Draft202012Validator(operator_schema(doc["kind"])).iter_errors(doc)
        )
        assert error is None, f"{doc['kind']} {doc['metadata']['name']}: {error.message}"  # type: ignore[union-attr]
        return
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(doc, version, strict=True)


# --- helm's own checks ------------------------------------------------------------------------------------
@pytest.mark.parametrize("values", [[], ["-f", str(PRODUCTION)]], ids=["default", "production"])
def test_helm_lint_passes_strictly(values: list[str]) -> None:
    result = helm("lint", "--strict", str(CHART), *values)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("docs", [default, production], ids=["default", "production"])
def test_every_rendered_object_validates_against_the_kubernetes_and_operator_schemas(docs) -> None:  # type: ignore[no-untyped-def]
    rendered = docs()
    assert {doc["kind"] for doc in rendered} >= {
        "Deployment",
        "CronJob",
        "Job",
        "ConfigMap",
        "Service",
    }
    for doc in rendered:
        validate(doc)


def test_the_validation_does_catch_a_misspelt_field() -> None:
    [deployment, *_] = objects(default(), "Deployment")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken)
    [rule] = objects(production(), "PrometheusRule")
    broken = json.loads(json.dumps(rule))
    broken["spec"]["groups"][0]["rules"][0]["expresion"] = "up"
    with pytest.raises(AssertionError, match="PrometheusRule"):
        validate(broken)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--set", "settings.executionMode=demo"], "executionMode"),
        (["--set", "settings.pollIntervalSec=3"], "pollIntervalSec"),
        (["--set", "components.worker.replicas=-1"], "replicas"),
        (["--set", "image.tag=latest"], "tag"),
        (["--set", "settings.executionMode=live"], "needs live.privateKey or live.existingSecret"),
        (["--set", "database.url="], "database.url or database.existingSecret"),
        (
            [
                "--set",
                "monitoring.podMonitor.enabled=true",
                "--set",
                "monitoring.serviceMonitor.enabled=true",
            ],
            "not both",
        ),
    ],
)
def test_bad_values_are_refused_with_a_message_naming_them(options: list[str], message: str) -> None:
    result = helm("template", "polycopy", str(CHART), *options)
    assert result.returncode != 0
    assert message in result.stderr


# --- what it deploys --------------------------------------------------------------------------------------
def test_default_values_deploy_every_component_on_paper_with_the_alerts_sink_off() -> None:
    deployments = {component_of(d): d for d in objects(default(), "Deployment")}
    assert set(deployments) == {"producer", "worker", "books", "executor", "sink"}
    replicas = {name: d["spec"]["replicas"] for name, d in deployments.items()}
    assert replicas == {"producer": 2, "worker": 2, "books": 1, "executor": 1, "sink": 1}
    assert deployments["producer"]["spec"]["strategy"]["rollingUpdate"] == {
        "maxUnavailable": 0,
        "maxSurge": 1,
    }
    [settings] = [c for c in objects(default(), "ConfigMap") if c["metadata"]["name"].endswith("-settings")]
    assert settings["data"]["POLYCOPY_EXECUTION_MODE"] == "paper"
    assert all("private-key" not in s.get("stringData", {}) for s in objects(default(), "Secret"))
    assert not [d for d in default() if d["kind"] in OPERATOR_KINDS]


@pytest.mark.parametrize("docs", [default, production], ids=["default", "production"])
def test_every_component_runs_its_command_non_root_read_only_with_probes_on_its_metrics_port(docs) -> None:  # type: ignore[no-untyped-def]
    rendered = docs()
    [settings] = [c for c in objects(rendered, "ConfigMap") if c["metadata"]["name"].endswith("-settings")]
    base = int(settings["data"]["POLYCOPY_METRICS_BASE_PORT"])
    commands = {
        "producer": "rtds",
        "worker": "worker",
        "books": "books",
        "executor": "executor",
        "sink": "sink",
    }
    commands["alerts"] = "alerts"
    for deployment in objects(rendered, "Deployment"):
        component = component_of(deployment)
        pod = deployment["spec"]["template"]["spec"]
        [container] = pod["containers"]
        assert container["args"] == [commands[component]]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
        [port] = container["ports"]
        assert (port["name"], port["containerPort"]) == ("metrics", component_port(component, base))
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/var/lib/polycopy"]] and "emptyDir" in volumes[mounts["/tmp"]]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_the_metrics_port_offsets_in_the_chart_are_the_applications() -> None:
    rendered = render("--set", "settings.metricsBasePort=20000", "--set", "components.alerts.enabled=true")
    ports = {
        component_of(d): d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
        for d in objects(rendered, "Deployment")
    }
    assert ports == {name: component_port(name, 20000) for name in DEFAULT_PORTS if name != "poller"}


def test_every_command_the_chart_runs_exists_in_the_cli() -> None:
    rendered = production()
    runs = {
        tuple(container["args"])
        for doc in rendered
        if doc["kind"] in ("Deployment", "Job", "CronJob")
        for spec in [doc["spec"].get("jobTemplate", {}).get("spec", doc["spec"])["template"]["spec"]]
        for container in spec.get("initContainers", []) + spec["containers"]
    }
    assert ("topics", "create") in runs and ("db", "migrate") in runs and ("poll",) in runs
    assert ("markets", "sync") in runs
    polycopy = Path(sys.executable).parent / "polycopy"
    for args in sorted(runs):
        words = [word for word in args if not word.startswith("/")]
        result = subprocess.run([str(polycopy), *words, "--help"], capture_output=True, text=True, timeout=60)
        if result.returncode != 0 and words[0] in PENDING_COMMANDS:
            continue
        assert result.returncode == 0, f"polycopy {' '.join(words)}: {result.stderr}"


@pytest.mark.parametrize("docs", [default, production], ids=["default", "production"])
def test_the_rendered_settings_are_accepted_by_the_application_and_cover_every_setting(docs) -> None:  # type: ignore[no-untyped-def]
    rendered = docs()
    configmaps = {c["metadata"]["name"]: c for c in objects(rendered, "ConfigMap")}
    secrets = {s["metadata"]["name"]: s.get("stringData", {}) for s in objects(rendered, "Secret")}
    fake_secret = {"database-url": "postgresql://u@db/polycopy", "url": "postgresql://u@db/p"}
    fake_secret |= {"private-key": "0x" + "11" * 32}
    for deployment in objects(rendered, "Deployment"):
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        environ: dict[str, str] = {}
        for source in container["envFrom"]:
            environ |= configmaps[source["configMapRef"]["name"]]["data"]
        for variable in container["env"]:
            ref = variable["valueFrom"]["secretKeyRef"]
            environ[variable["name"]] = secrets.get(ref["name"], fake_secret)[ref["key"]]
        assert find_unknown_variables(environ) == []
        with pytest.MonkeyPatch.context() as patch:
            for name in [name for name in os.environ if name.startswith("POLYCOPY_")]:
                patch.delenv(name)
            for name, value in environ.items():
                patch.setenv(name, value)
            settings = PolycopySettings()
        provided = {name.removeprefix("POLYCOPY_").lower() for name in environ} | {"database_url"}
        assert (
            provided
            >= set(PolycopySettings.model_fields)
            - {"private_key", "alert_webhook_url", "mcp_token", "instance_id"}
            - CLOB_API_CREDENTIALS
        )
        assert (settings.private_key is not None) == (settings.execution_mode.value == "live")
        assert settings.data_dir == Path("/var/lib/polycopy") and settings.metrics_enabled


def test_values_yaml_lists_every_setting_not_owned_by_the_chart_with_the_applications_defaults() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())["settings"]

    def camel(name: str) -> str:
        head, *rest = name.split("_")
        return head + "".join(word.title() for word in rest)

    fields = PolycopySettings.model_fields
    assert set(values) == {camel(name) for name in fields if name not in CHART_OWNED}
    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]["settings"]["properties"]
    assert set(schema) == set(values)
    venue = {
        "rtds_url",
        "clob_url",
        "clob_market_ws_url",
        "clob_user_ws_url",
        "data_api_url",
        "gamma_url",
        "kafka_bootstrap_servers",
    }
    for name, field in fields.items():
        if name in CHART_OWNED or name in venue:
            continue
        default_value = field.default.value if hasattr(field.default, "value") else field.default
        assert values[camel(name)] == default_value, name


def test_the_setup_job_creates_topics_migrates_then_applies_the_wallet_file_before_install_and_upgrade() -> (
    None
):
    rendered = production()
    [job] = objects(rendered, "Job")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    pod = job["spec"]["template"]["spec"]
    steps = [c["args"] for c in pod["initContainers"] + pod["containers"]]
    assert steps == [
        ["topics", "create"],
        ["db", "migrate"],
        ["wallets", "apply", "/etc/polycopy/wallets.yaml"],
    ]
    for container in pod["initContainers"] + pod["containers"]:
        assert {"name": "POLYCOPY_EXECUTION_MODE", "value": "paper"} in container["env"]
    hooks = [d for d in rendered if "helm.sh/hook" in d["metadata"].get("annotations", {}) and d is not job]
    assert {d["kind"] for d in hooks} == {"ConfigMap"}  # the secrets are managed outside the chart here
    assert all(int(d["metadata"]["annotations"]["helm.sh/hook-weight"]) < 0 for d in hooks)
    [wallets] = [d for d in hooks if "wallets.yaml" in d["data"]]
    config = WalletConfigFile.model_validate(yaml.safe_load(wallets["data"]["wallets.yaml"]))
    assert [w.id for w in config.wallets] == ["prod-fixed"]
    assert [c["args"] for c in objects(default(), "Job")[0]["spec"]["template"]["spec"]["containers"]] == [
        ["db", "migrate"]
    ]


def cronjobs() -> dict[str, dict]:  # type: ignore[type-arg]
    return {
        job["metadata"]["labels"]["app.kubernetes.io/component"]: job for job in objects(default(), "CronJob")
    }


def test_the_poller_is_a_cronjob_every_five_minutes_that_never_overlaps() -> None:
    cronjob = cronjobs()["poller"]
    assert cronjob["spec"]["schedule"] == "*/5 * * * *"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    [container] = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["poll"] and container["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_markets_sync_is_a_cronjob_every_ten_minutes_that_never_overlaps() -> None:
    """Resolutions reach the worker only through it: without it no position ever settles."""
    assert set(cronjobs()) == {"poller", "markets-sync"}
    cronjob = cronjobs()["markets-sync"]
    assert (cronjob["spec"]["schedule"], cronjob["spec"]["concurrencyPolicy"]) == ("*/10 * * * *", "Forbid")
    [container] = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["markets", "sync"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_live_mode_takes_the_key_from_the_secret_and_never_puts_it_in_a_configmap() -> None:
    rendered = render("--set", "settings.executionMode=live", "--set", "live.privateKey=0xabc")
    [secret] = [s for s in objects(rendered, "Secret") if s["metadata"]["name"].endswith("-secrets")]
    assert secret["stringData"]["private-key"] == "0xabc"
    assert all("0xabc" not in json.dumps(c) for c in objects(rendered, "ConfigMap"))
    for deployment in objects(rendered, "Deployment"):
        env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["POLYCOPY_PRIVATE_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "private-key"


def test_the_alert_webhook_is_a_secret_only_the_alerts_sink_reads() -> None:
    hook = "https://hooks.slack.test/services/T000/B000/secret"
    rendered = render("--set", "components.alerts.enabled=true", "--set", f"alerting.webhookUrl={hook}")
    [secret] = [s for s in objects(rendered, "Secret") if s["metadata"]["name"].endswith("-secrets")]
    assert secret["stringData"]["alert-webhook-url"] == hook
    assert all(hook not in json.dumps(c) for c in objects(rendered, "ConfigMap"))
    readers = {
        component_of(deployment)
        for deployment in objects(rendered, "Deployment")
        for variable in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        if variable["name"] == "POLYCOPY_ALERT_WEBHOOK_URL"
    }
    assert readers == {"alerts"}


def test_the_prometheus_rule_is_the_alert_rules_file_and_passes_promtool(tmp_path: Path) -> None:
    [rule] = objects(production(), "PrometheusRule")
    shipped = yaml.safe_load((REPO_ROOT / "infra" / "prometheus" / "alerts.yml").read_text())
    assert rule["spec"] == shipped
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rule["spec"]))
    result = subprocess.run(
        [find_tool("promtool"), "check", "rules", str(tmp_path / "rules.yml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_pod_monitor_labels_targets_as_the_dashboards_expect_and_selects_the_components() -> None:
    rendered = production()
    [monitor] = objects(rendered, "PodMonitor")
    assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/part-of"
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    assert {
        "sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"],
        "targetLabel": "component",
    } in (endpoint["relabelings"])
    selector = monitor["spec"]["selector"]["matchLabels"]
    for deployment in objects(rendered, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items() and labels["app.kubernetes.io/part-of"] == "polycopy"
    services = render("--set", "monitoring.serviceMonitor.enabled=true")
    [service_monitor] = objects(services, "ServiceMonitor")
    validate(service_monitor)


def test_the_grafana_dashboard_configmaps_carry_the_generated_dashboards() -> None:
    shipped = {
        path.name: json.loads(path.read_text())
        for path in (REPO_ROOT / "infra" / "grafana" / "dashboards").glob("*.json")
    }
    carried = {
        name: json.loads(text)
        for c in objects(production(), "ConfigMap")
        if c["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
        for name, text in c["data"].items()
    }
    assert carried == shipped


def test_the_packaged_chart_carries_the_linked_alert_rules_and_dashboards_as_files(tmp_path: Path) -> None:
    import tarfile

    result = helm("package", str(CHART), "--destination", str(tmp_path))
    assert result.returncode == 0, result.stderr
    [archive] = tmp_path.glob("polycopy-*.tgz")
    with tarfile.open(archive) as bundle:
        members = {member.name: member for member in bundle.getmembers()}
        rules = members["polycopy/files/alerts.yml"]
        assert rules.isfile()
        shipped = (REPO_ROOT / "infra" / "prometheus" / "alerts.yml").read_bytes()
        assert bundle.extractfile(rules).read() == shipped  # type: ignore[union-attr]
        dashboards = {
            name.rsplit("/", 1)[1] for name in members if name.startswith("polycopy/files/dashboards/")
        }
    assert dashboards == {
        path.name for path in (REPO_ROOT / "infra" / "grafana" / "dashboards").glob("*.json")
    }
