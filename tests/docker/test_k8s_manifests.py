"""No cluster runs here: every document in deploy/k8s/ is loaded into the Kubernetes Python
client's models, strictly (a field the API does not know fails, where the client itself would
drop it silently), and checked against what the server, its image and the compose stack say."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import kubernetes.client as k8s
import pytest
import yaml

from ml.core.config import load_params
from ml.core.config.serving import ServingConfig

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
DOCKERFILE = ROOT / "docker" / "serving.Dockerfile"
# Shown for its shape, never applied: a token does not live in the repository.
NOT_APPLIED = {"secret.example.yaml"}
MODELS = {
    ("apps/v1", "Deployment"): "V1Deployment",
    ("v1", "Service"): "V1Service",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Secret"): "V1Secret",
    ("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "V2HorizontalPodAutoscaler",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
}
PRIMITIVES: dict[str, type | tuple[type, ...]] = {
    "str": str,
    "int": int,
    "float": (int, float),
    "bool": bool,
    "object": object,  # IntOrString, quantities given as either
    "datetime": str,
    "date": str,
}


def check_fields(data: Any, type_name: str, where: str) -> None:
    """Every key is a field of the model (by its JSON name), recursively, and every value has
    the model's type (e.g. annotation values must be strings, a port an integer)."""
    if type_name.startswith("list["):
        assert isinstance(data, list), f"{where}: expected a list"
        for i, item in enumerate(data):
            check_fields(item, type_name[5:-1], f"{where}[{i}]")
        return
    if type_name.startswith("dict["):
        # The client's own spelling (kubernetes 36: "dict[str, str]").
        value_type = re.fullmatch(r"dict\[[^,]+, (.+)\]", type_name).group(1)  # type: ignore[union-attr]
        assert isinstance(data, dict), f"{where}: expected a mapping"
        for key, value in data.items():
            check_fields(value, value_type, f"{where}.{key}")
        return
    if type_name in PRIMITIVES:
        expected = PRIMITIVES[type_name]
        ok = isinstance(data, expected) and not (type_name == "int" and isinstance(data, bool))
        assert ok, f"{where}: {data!r} is not {type_name}"
        return
    model = getattr(k8s, type_name)
    assert isinstance(data, dict), f"{where}: expected a {type_name} mapping"
    by_json_name = {json_name: attr for attr, json_name in model.attribute_map.items()}
    unknown = sorted(set(data) - set(by_json_name))
    assert not unknown, f"{where}: {type_name} has no field(s) {unknown}"
    for key, value in data.items():
        check_fields(value, model.openapi_types[by_json_name[key]], f"{where}.{key}")


def load_strict(doc: dict[str, Any], where: str) -> Any:
    key = (doc.get("apiVersion"), doc.get("kind"))
    assert key in MODELS, f"{where}: no model for {key} (add it to MODELS if it is meant)"
    check_fields(doc, MODELS[key], where)
    # The client's own deserializer builds the typed objects (and checks required fields).
    return k8s.ApiClient().deserialize(SimpleNamespace(data=json.dumps(doc)), MODELS[key])


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc is not None:
                docs.append((f"{path.name}#{i}", doc))
    return docs


@pytest.fixture(scope="module")
def objects() -> dict[str, Any]:
    """The applied objects by kind (one of each kind here), typed."""
    applied = set(kustomization()["resources"])
    loaded: dict[str, Any] = {}
    for where, doc in documents():
        if where.split("#")[0] not in applied:
            continue
        assert doc["kind"] not in loaded, f"{where}: a second {doc['kind']}"
        loaded[doc["kind"]] = load_strict(doc, where)
    return loaded


@pytest.fixture(scope="module")
def container(objects: dict[str, Any]) -> Any:
    (serving,) = objects["Deployment"].spec.template.spec.containers
    return serving


@pytest.mark.parametrize("where,doc", documents(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_document_loads_into_the_client_models(where: str, doc: dict[str, Any]) -> None:
    obj = load_strict(doc, where)
    assert obj.metadata.name, where
    assert obj.metadata.labels["app.kubernetes.io/part-of"] == "shopflow", where


def test_the_strict_loader_refuses_what_the_client_would_drop() -> None:
    doc = yaml.safe_load((K8S / "deployment.yaml").read_text())
    container = doc["spec"]["template"]["spec"]["containers"][0]
    container["readinessprobe"] = container.pop("readinessProbe")  # a typo kubectl rejects
    with pytest.raises(AssertionError, match="readinessprobe"):
        load_strict(doc, "deployment.yaml")
    doc = yaml.safe_load((K8S / "deployment.yaml").read_text())
    doc["spec"]["replicas"] = "2"
    with pytest.raises(AssertionError, match="not int"):
        load_strict(doc, "deployment.yaml")


def test_kustomization_applies_every_manifest() -> None:
    kust = kustomization()
    assert kust["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kust["kind"] == "Kustomization"
    assert set(kust) <= {"apiVersion", "kind", "resources", "images", "labels", "namespace"}
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kust["resources"]) == files - NOT_APPLIED
    assert not NOT_APPLIED & set(kust["resources"])


def test_probes_use_the_servers_paths_and_port(container: Any) -> None:
    port = ServingConfig().port
    (http,) = container.ports
    assert (http.name, http.container_port) == ("http", port)
    command = container.command
    assert command[:4] == ["python", "-m", "ml", "serve"]
    assert command[command.index("--port") + 1] == str(port)
    assert command[command.index("--host") + 1] == "0.0.0.0"
    # Readiness: models loaded (503 otherwise); liveness and start-up: the process answers.
    assert container.readiness_probe.http_get.path == "/readyz"
    assert container.liveness_probe.http_get.path == "/healthz"
    assert container.startup_probe.http_get.path == "/healthz"
    for probe in (container.readiness_probe, container.liveness_probe, container.startup_probe):
        assert probe.http_get.port in ("http", port)
    # The start-up window covers the imports (torch, MLflow) on a cold, busy node.
    startup = container.startup_probe
    assert startup.period_seconds * startup.failure_threshold >= 120
    # The same paths the image's own HEALTHCHECK and the compose healthcheck use.
    assert "/healthz" in DOCKERFILE.read_text()


def test_every_path_probed_is_a_route_of_the_server(objects: dict[str, Any]) -> None:
    """The k8s probes, the Prometheus scrape annotation, the compose healthcheck and the image's
    HEALTHCHECK all name routes the app really has (building it loads no model)."""
    from ml.serving.app import create_app

    routes = {route.path for route in create_app(load_params(ROOT / "params.yaml")).routes}
    pod = objects["Deployment"].spec.template
    (container,) = pod.spec.containers
    probed = {
        container.readiness_probe.http_get.path,
        container.liveness_probe.http_get.path,
        container.startup_probe.http_get.path,
        pod.metadata.annotations["prometheus.io/path"],
    }
    compose = yaml.safe_load((ROOT / "docker" / "docker-compose.yml").read_text())
    for text in (" ".join(compose["services"]["serving"]["healthcheck"]["test"]),
                 DOCKERFILE.read_text()):  # fmt: skip
        probed |= set(re.findall(r"https?://[\w.]+:\d+(/[\w/]*)", text))
    assert probed and probed <= routes, sorted(probed - routes)
    assert pod.metadata.annotations["prometheus.io/port"] == str(ServingConfig().port)


def test_selectors_match_the_pod_labels(objects: dict[str, Any]) -> None:
    deployment = objects["Deployment"]
    labels = deployment.spec.template.metadata.labels
    for name, selector in (
        ("Deployment", deployment.spec.selector.match_labels),
        ("Service", objects["Service"].spec.selector),
        ("PodDisruptionBudget", objects["PodDisruptionBudget"].spec.selector.match_labels),
    ):
        assert selector and selector.items() <= labels.items(), name
    for spread in deployment.spec.template.spec.topology_spread_constraints or []:
        assert spread.label_selector.match_labels.items() <= labels.items()
    service_port = objects["Service"].spec.ports[0]
    assert service_port.target_port in ("http", ServingConfig().port)


def test_hpa_scales_the_deployment_on_cpu(objects: dict[str, Any]) -> None:
    deployment, hpa = objects["Deployment"], objects["HorizontalPodAutoscaler"]
    target = hpa.spec.scale_target_ref
    assert (target.api_version, target.kind, target.name) == (
        "apps/v1",
        "Deployment",
        deployment.metadata.name,
    )
    assert hpa.spec.min_replicas == deployment.spec.replicas == 2
    assert hpa.spec.max_replicas > hpa.spec.min_replicas
    (metric,) = hpa.spec.metrics
    assert metric.type == "Resource" and metric.resource.name == "cpu"
    assert metric.resource.target.type == "Utilization"
    # Utilization is relative to the request: without one the HPA cannot compute it.
    (container,) = deployment.spec.template.spec.containers
    assert "cpu" in container.resources.requests
    pdb = objects["PodDisruptionBudget"]
    assert pdb.spec.min_available is not None and pdb.spec.min_available < hpa.spec.min_replicas


def test_image_is_the_one_compose_builds(container: Any) -> None:
    compose = yaml.safe_load((ROOT / "docker" / "docker-compose.yml").read_text())
    service = compose["services"]["serving"]
    assert service["build"]["dockerfile"] == "docker/serving.Dockerfile"
    name = service["image"].split(":")[0]
    assert container.image.split(":")[0] == name
    assert container.image_pull_policy == "IfNotPresent"
    assert [image["name"] for image in kustomization()["images"]] == [name]


def test_environment_from_the_configmap_and_the_token_secret(
    objects: dict[str, Any], container: Any
) -> None:
    config_map = objects["ConfigMap"]
    (source,) = container.env_from
    assert source.config_map_ref.name == config_map.metadata.name
    compose = yaml.safe_load((ROOT / "docker" / "docker-compose.yml").read_text())
    tracking = compose["services"]["serving"]["environment"]["MLFLOW_TRACKING_URI"]
    assert config_map.data["MLFLOW_TRACKING_URI"] == tracking
    env = {var.name: var for var in container.env}
    token = env["SHOPFLOW_SERVING_TOKEN"].value_from.secret_key_ref
    secret = yaml.safe_load((K8S / "secret.example.yaml").read_text())
    assert token.name == secret["metadata"]["name"] and token.key in secret["stringData"]
    # The server runs (open) until someone creates the Secret.
    assert token.optional is True
    # Every SHOPFLOW_* variable given is one the server reads.
    serving_code = "\n".join(p.read_text() for p in (ROOT / "ml" / "serving").rglob("*.py"))
    for name in env:
        if name.startswith("SHOPFLOW_"):
            assert name in serving_code, f"{name} is read nowhere in ml/serving"
    # torch's thread count follows the CPU limit, not the node's core count.
    assert env["OMP_NUM_THREADS"].value == container.resources.limits["cpu"]


def test_runs_as_the_images_non_root_user_on_a_read_only_root(
    objects: dict[str, Any], container: Any
) -> None:
    pod = objects["Deployment"].spec.template.spec
    user = re.search(r"^USER (\d+):(\d+)$", DOCKERFILE.read_text(), re.M)
    assert user, "serving.Dockerfile has no numeric USER"
    assert pod.security_context.run_as_non_root is True
    assert str(pod.security_context.run_as_user) == user.group(1)
    assert str(pod.security_context.run_as_group) == user.group(2)
    context = container.security_context
    assert context.allow_privilege_escalation is False
    assert context.read_only_root_filesystem is True
    assert context.capabilities.drop == ["ALL"]
    # What the server writes: temp files (MLflow downloads) and the prediction log.
    mounts = {m.mount_path: m.name for m in container.volume_mounts}
    workdir = re.search(r"^WORKDIR (\S+)$", DOCKERFILE.read_text(), re.M).group(1)  # type: ignore[union-attr]
    log_dir = f"{workdir}/{ServingConfig().prediction_log_dir}"
    assert "/tmp" in mounts and log_dir in mounts
    volumes = {v.name: v for v in pod.volumes}
    claim = volumes[mounts[log_dir]].persistent_volume_claim
    assert claim.claim_name == objects["PersistentVolumeClaim"].metadata.name


def test_resources_fit_a_minilm_cpu_server(container: Any) -> None:
    def cpu(value: str) -> float:
        return float(value[:-1]) / 1000 if value.endswith("m") else float(value)

    def mib(value: str) -> float:
        units = {"Mi": 1, "Gi": 1024}
        return float(value[:-2]) * units[value[-2:]]

    requests, limits = container.resources.requests, container.resources.limits
    assert 0 < cpu(requests["cpu"]) <= cpu(limits["cpu"])
    # torch + MiniLM (+ a second version while it loads) needs about 1-2 GiB.
    assert 1024 <= mib(requests["memory"]) <= mib(limits["memory"]) <= 4096
