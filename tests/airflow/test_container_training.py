"""Training in a container (DockerOperator) or a pod (KubernetesPodOperator).

No Docker engine and no cluster here: the DAGs are built and their operators inspected, the
operators' execute runs against a fake Docker API client / up to the pod's creation (the pod
request is built by the provider itself), the container's command is parsed by the real
``python -m ml`` parser, and the hand-over through --output-json runs on a real training run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath
from typing import Any
from unittest import mock

import pytest
import yaml

from ml.core.config import parse_override_entry
from ml.core.errors import ConfigError, InputError
from ml.core.families import FAMILIES as SPECS
from ml.orchestration import container_specs, containers, steps
from ml.orchestration.dags import build_retrain_dag
from ml.orchestration.params import conf_overrides, retrain_fields
from ml.orchestration.runtime import RunContext, in_project, run_ml_step
from ml.orchestration.settings import OrchestrationSettings

RUNNERS = ("docker", "kubernetes")
FAMILIES = ("intent", "recommender")
SECRET = "wJalrXUtnFEMI-not-a-real-key-7Q"  # must never reach the DAG definition
KUBECONFIG = {
    # A cluster that is never contacted: the provider only reads the file to build the pod.
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:9"}}],
    "users": [{"name": "none", "user": {"token": "none"}}],
    "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
    "current-context": "none",
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "params.yaml").write_text("paths: {reports: out/reports}\n")
    return folder


def settings_for(runner: str, project: Path, **values: Any) -> OrchestrationSettings:
    return OrchestrationSettings(
        project_dir=project, train_runner=runner, train_pool="gpu", train_queue="gpu", **values
    )


def container_args(settings: OrchestrationSettings, family: str, conf: dict) -> list[str]:
    """What train_command computes for a run with these Params."""
    spec = SPECS[family]
    overrides = conf_overrides(retrain_fields(spec), conf, settings.project_dir)
    run = (spec.dag_id, "manual__2026-11-22T05:54:43+00:00")
    return steps.container_train_args(spec, RunContext.create(settings, conf, overrides, run))


def build_parser_output(args: list[str]) -> PurePosixPath:
    from ml.cli import build_parser

    return PurePosixPath(build_parser().parse_args(args).output_json)


def train_task(settings: OrchestrationSettings, family: str = "intent") -> Any:
    """The retrain DAG's ``train`` task (typed Any: provider attributes are inspected)."""
    return build_retrain_dag(family, settings).get_task("train")


class PodCreation(Exception):
    """Raised where the operator would create the pod: there is no cluster."""


def built_pod(operator: Any, arguments: list[str], tmp_path: Path) -> Any:
    """The pod the provider would submit when the task runs (after the XCom is resolved):
    the operator's execute runs until it hands the pod request to get_or_create_pod."""
    kubeconfig = tmp_path / "kubeconfig.yaml"
    kubeconfig.write_text(yaml.safe_dump(KUBECONFIG))
    operator.arguments = arguments
    operator.config_file = str(kubeconfig)
    requests: list[Any] = []

    def get_or_create_pod(pod_request_obj: Any, context: Any) -> Any:
        requests.append(pod_request_obj)
        raise PodCreation

    operator.get_or_create_pod = get_or_create_pod
    with pytest.raises(PodCreation):
        operator.execute({})
    [pod] = requests
    return pod


def fake_docker_engine(monkeypatch: pytest.MonkeyPatch) -> mock.MagicMock:
    """docker.APIClient as DockerHook makes it, faked: an engine with the image, whose
    container prints a line and exits 0. ``engine.call_args`` has the engine URL."""
    client = mock.MagicMock(name="APIClient()")
    client.ping.return_value = True
    client.images.return_value = [{"Id": "sha256:trainer"}]
    client.create_container.return_value = {"Id": "container-1"}
    client.attach.return_value = iter([b"trained\n"])
    client.wait.return_value = {"StatusCode": 0}
    engine = mock.MagicMock(name="APIClient", return_value=client)
    monkeypatch.setattr("airflow.providers.docker.hooks.docker.APIClient", engine)
    return engine


@pytest.fixture
def worker_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No container setting, credential or DOCKER_HOST from the machine running the tests."""
    for name in (*containers.PASSED_SETTINGS, *containers.CREDENTIAL_NAMES, "DOCKER_HOST"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("runner", RUNNERS)
def test_training_tasks_and_wiring(project: Path, runner: str, family: str) -> None:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.providers.docker.operators.docker import DockerOperator

    dag = build_retrain_dag(family, settings_for(runner, project))
    train = dag.get_task("train")
    expected = DockerOperator if runner == "docker" else KubernetesPodOperator
    assert isinstance(train, expected)
    assert dag.get_task("preprocess").downstream_task_ids == {"train_command"}
    assert dag.get_task("train_command").downstream_task_ids == {"train"}
    assert train.downstream_task_ids == {"record_training"}
    assert dag.get_task("record_training").downstream_task_ids == {"evaluate", "summary"}
    assert dag.get_task("evaluate").upstream_task_ids == {"record_training"}
    # The summary reads the recorded result, not the container's output.
    assert "train" not in dag.get_task("summary").upstream_task_ids
    # Runs after a skipped container too (already trained in this DAG run).
    assert dag.get_task("record_training").trigger_rule == "none_failed"
    # The container task keeps what the in-process train task had.
    assert (train.pool, train.queue, train.retries) == ("gpu", "gpu", 2)
    assert train.retry_exponential_backoff == 2.0
    assert dag.get_task("train_command").pool == "default_pool"
    assert dag.get_task("record_training").queue != "gpu"
    assert train.image == "shopflow-trainer:latest"


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("runner", RUNNERS)
def test_command_is_a_python_m_ml_train_command_line(
    project: Path, runner: str, family: str
) -> None:
    from ml.cli import build_parser

    settings = settings_for(runner, project)
    (project / "overlay.yaml").write_text("intent: {train: {batch_size: 8}}\n")
    conf = {"epochs": 2, "overrides": ["seed=7", "@overlay.yaml"]}
    args = container_args(settings, family, conf)
    parsed = build_parser().parse_args(args)
    assert (parsed.verb, parsed.family) == ("train", family)
    assert parsed.params == "params.yaml"
    expected = conf_overrides(retrain_fields(SPECS[family]), conf, project)
    assert dict(parse_override_entry(entry) for entry in parsed.overrides) == expected
    assert expected["intent.train.batch_size"] == 8  # the @file profile, flattened
    # The result file is in the container's view of the run's ledger folder.
    run_folder = "out/reports/pipeline_runs/" + SPECS[family].dag_id
    assert str(parsed.output_json).startswith(f"/opt/shopflow/{run_folder}/")
    assert parsed.output_json.name == containers.RESULT_FILE
    assert containers.trainer_argv(args)[:3] == ["python", "-m", "ml"]


def test_docker_operator_runs_the_command_in_the_mounted_project(project: Path) -> None:
    settings = settings_for("docker", project, docker_network="shopflow_default")
    train = train_task(settings)
    assert train.entrypoint == list(containers.TRAINER_ENTRYPOINT)
    assert train.working_dir == "/opt/shopflow"
    [mount] = train.mounts
    # Default: the worker's project folder, bind-mounted where the command runs.
    assert (mount["Type"], mount["Source"], mount["Target"]) == (
        "bind",
        str(project.resolve()),
        "/opt/shopflow",
    )
    output = build_parser_output(container_args(settings, "intent", {}))
    assert PurePosixPath(mount["Target"]) in output.parents
    assert train.network_mode == "shopflow_default"
    assert train.auto_remove == "force" and train.mount_tmp_dir is False
    assert train.do_xcom_push is False


def test_docker_volumes_must_hold_the_result_file(project: Path) -> None:
    # Compose-style named volumes: reports is one of them, so the hand-over works.
    compose_like = settings_for(
        "docker",
        project,
        docker_mounts=["shopflow_data:/opt/shopflow/data", "shopflow_reports:/opt/shopflow/out"],
    )
    train = train_task(compose_like)
    assert [(m["Type"], m["Source"]) for m in train.mounts] == [
        ("volume", "shopflow_data"),
        ("volume", "shopflow_reports"),
    ]
    assert build_parser_output(container_args(compose_like, "intent", {})).is_relative_to(
        "/opt/shopflow/out"
    )
    # Without the reports volume the worker would never see the result: refused up front.
    data_only = settings_for("docker", project, docker_mounts=["shopflow_data:/opt/shopflow/data"])
    with pytest.raises(ConfigError, match="SHOPFLOW_DOCKER_MOUNTS"):
        container_args(data_only, "intent", {})


def test_reports_outside_the_project_folder_are_refused(project: Path, tmp_path: Path) -> None:
    settings = settings_for("kubernetes", project)
    with pytest.raises(ConfigError, match="SHOPFLOW_PROJECT_DIR"):
        container_args(settings, "intent", {"overrides": [f"paths.reports={tmp_path / 'else'}"]})


@pytest.mark.parametrize(("gpus", "requested"), [(2, True), (0, False)])
def test_docker_gpu_request(project: Path, gpus: int, requested: bool) -> None:
    requests = train_task(settings_for("docker", project, train_gpus=gpus)).device_requests
    if requested:
        [request] = requests
        assert request["Count"] == gpus and request["Capabilities"] == [["gpu"]]
    else:
        assert not requests


@pytest.mark.parametrize(("gpus", "requested"), [(1, True), (0, False)])
def test_pod_spec(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gpus: int, requested: bool
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    settings = settings_for(
        "kubernetes",
        project,
        train_gpus=gpus,
        k8s_namespace="ml",
        k8s_secret="shopflow-credentials",
        k8s_service_account="trainer",
        k8s_gpu_node_selector={"nvidia.com/gpu.present": "true"},
        k8s_gpu_tolerations=["nvidia.com/gpu:NoSchedule"],
    )
    train = train_task(settings, "recommender")
    assert train.get_logs is True and train.on_finish_action.value == "delete_pod"
    args = container_args(settings, "recommender", {})
    pod = built_pod(train, args, tmp_path)
    [container] = pod.spec.containers
    assert container.command + container.args == containers.trainer_argv(args)
    # The project PVC is mounted where the command runs.
    assert container.working_dir == "/opt/shopflow"
    [volume] = pod.spec.volumes
    assert volume.persistent_volume_claim.claim_name == "shopflow-project"
    [mount] = container.volume_mounts
    assert (mount.name, mount.mount_path) == (volume.name, "/opt/shopflow")
    assert PurePosixPath(mount.mount_path) in build_parser_output(args).parents
    # Credentials come from the named Secret; only non-secret settings are literal values.
    assert [e.secret_ref.name for e in container.env_from] == ["shopflow-credentials"]
    assert {e.name: e.value for e in container.env} == {"MLFLOW_TRACKING_URI": "http://mlflow:5000"}
    assert pod.spec.service_account_name == "trainer" and pod.metadata.namespace == "ml"
    if requested:
        assert container.resources.limits == {"nvidia.com/gpu": "1"}
        assert pod.spec.node_selector == {"nvidia.com/gpu.present": "true"}
        [toleration] = pod.spec.tolerations
        assert (toleration.key, toleration.operator, toleration.effect) == (
            "nvidia.com/gpu",
            "Exists",
            "NoSchedule",
        )
    else:
        assert not (container.resources and container.resources.limits)
        assert not pod.spec.node_selector and not pod.spec.tolerations


@pytest.mark.parametrize("runner", RUNNERS)
def test_no_secret_values_in_the_serialized_dag(
    project: Path, monkeypatch: pytest.MonkeyPatch, runner: str
) -> None:
    from airflow.serialization.serialized_objects import DagSerialization

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA-not-a-real-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SECRET + "-mlflow")
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", "http://minio:9000")
    dag = build_retrain_dag("intent", settings_for(runner, project, k8s_secret="creds"))
    text = json.dumps(DagSerialization.to_dict(dag))
    assert SECRET not in text and "AKIA-not-a-real-id" not in text
    # The non-secret settings are read on the worker when the task runs, not at parse time.
    assert "http://minio:9000" not in text


PARSE_TIME = {
    "MLFLOW_TRACKING_URI": "http://dag-processor-mlflow:5000",
    "MLFLOW_S3_ENDPOINT_URL": "http://dag-processor-minio:9000",
    "DOCKER_HOST": "tcp://dag-processor-docker:2375",
}
# The worker's environment when the task runs: one setting changed, one gone, one new.
RUN_TIME = {
    "MLFLOW_TRACKING_URI": "http://worker-mlflow:5000",
    "AWS_DEFAULT_REGION": "eu-central-1",
    "DOCKER_HOST": "tcp://worker-docker:2375",
}


@pytest.mark.parametrize("runner", RUNNERS)
def test_container_settings_are_read_on_the_worker_when_the_task_runs(
    project: Path, tmp_path: Path, worker_env: pytest.MonkeyPatch, runner: str
) -> None:
    for name, value in PARSE_TIME.items():
        worker_env.setenv(name, value)
    settings = settings_for(runner, project, k8s_secret="creds")
    train = train_task(settings)  # the DAG file parsed
    args = container_args(settings, "intent", {})
    for name in PARSE_TIME:
        worker_env.delenv(name)
    for name, value in RUN_TIME.items():
        worker_env.setenv(name, value)
    worker_env.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    expected = {
        "MLFLOW_TRACKING_URI": "http://worker-mlflow:5000",
        "AWS_DEFAULT_REGION": "eu-central-1",
    }

    if runner == "docker":
        engine = fake_docker_engine(worker_env)
        train.command = args  # the train_command XCom, resolved
        assert train.execute({}) is None
        [create] = engine.return_value.create_container.call_args_list
        # The credential by name, as before; unset settings are not passed (not even empty).
        assert create.kwargs["environment"] == {**expected, "AWS_SECRET_ACCESS_KEY": SECRET}
        # No SHOPFLOW_DOCKER_URL: the worker's DOCKER_HOST is the engine.
        assert engine.call_args.kwargs["base_url"] == "tcp://worker-docker:2375"
        rendered = train.environment
    else:
        [container] = built_pod(train, args, tmp_path).spec.containers
        assert {e.name: e.value for e in container.env} == expected
        # Credentials: from the Secret only, never from the worker's environment.
        assert [e.secret_ref.name for e in container.env_from] == ["creds"]
        rendered = {e.name: e.value for e in train.env_vars}
    # What the UI shows after the run (the rendered fields are recorded again): the values the
    # container got, without the secret.
    assert train.overwrite_rtif_after_execution is True
    assert rendered == expected


def test_docker_credentials_are_read_on_the_worker_when_the_task_runs(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for("docker", project, docker_url=f"unix://{tmp_path}/no-docker.sock")
    train = train_task(settings)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)  # the worker's environment, at run time
    assert SECRET not in json.dumps(train.environment)
    # No Docker engine: execute gets as far as connecting, with the credentials loaded.
    with pytest.raises(Exception, match="Docker"):
        train.execute({})
    assert train._private_environment == {"AWS_SECRET_ACCESS_KEY": SECRET}
    assert "AWS_SECRET_ACCESS_KEY" not in train.environment


def test_mlflow_uris_an_earlier_step_exported_stay_on_the_host(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`airflow dags test` runs every task in one process: a step before train pointed MLflow
    at the host's store, and mlflow exported it; the container must not get that host path."""
    from ml.core.config import MlflowConfig
    from ml.stack.tracking import activate_tracking_uri

    for name in containers.PASSED_SETTINGS:
        monkeypatch.setenv(name, "unset-after-the-test")  # so that delenv restores "unset"
        monkeypatch.delenv(name)
    host_store = f"sqlite:///{project}/mlflow.db"
    activate_tracking_uri(MlflowConfig(tracking_uri=host_store))
    assert os.environ["MLFLOW_TRACKING_URI"] == os.environ["MLFLOW_REGISTRY_URI"] == host_store
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    passed = containers.worker_environment(containers.PASSED_SETTINGS)
    assert passed == {"AWS_DEFAULT_REGION": "eu-central-1"}
    # The deployment's own value still goes through.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    passed = containers.worker_environment(containers.PASSED_SETTINGS)
    assert passed["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"


def test_settings_from_environment(project: Path) -> None:
    env = {
        "SHOPFLOW_PROJECT_DIR": str(project),
        "SHOPFLOW_TRAIN_RUNNER": "kubernetes",
        "SHOPFLOW_TRAIN_GPUS": "2",
        "SHOPFLOW_DOCKER_MOUNTS": "/srv/shopflow:/opt/shopflow, models:/opt/shopflow/models",
        "SHOPFLOW_K8S_GPU_NODE_SELECTOR": "pool=gpu,nvidia.com/gpu.present=true",
        "SHOPFLOW_K8S_GPU_TOLERATIONS": "nvidia.com/gpu:NoSchedule,dedicated=ml:NoExecute",
        "SHOPFLOW_K8S_SECRET": "shopflow-credentials",
    }
    settings = OrchestrationSettings.from_env(env)
    assert settings.train_runner == "kubernetes" and settings.train_gpus == 2
    assert settings.docker_mounts == ["/srv/shopflow:/opt/shopflow", "models:/opt/shopflow/models"]
    assert settings.k8s_gpu_node_selector == {"pool": "gpu", "nvidia.com/gpu.present": "true"}
    assert container_specs.parse_toleration(settings.k8s_gpu_tolerations[1]) == {
        "key": "dedicated",
        "operator": "Equal",
        "value": "ml",
        "effect": "NoExecute",
    }
    defaults = OrchestrationSettings.from_env({"SHOPFLOW_PROJECT_DIR": str(project)})
    assert defaults.train_runner == "local"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SHOPFLOW_TRAIN_RUNNER", "gpu"),
        ("SHOPFLOW_TRAIN_GPUS", "-1"),
        ("SHOPFLOW_DOCKER_MOUNTS", "/srv/shopflow"),
        ("SHOPFLOW_DOCKER_MOUNTS", "/srv/shopflow:relative/target"),
        ("SHOPFLOW_K8S_GPU_TOLERATIONS", "nvidia.com/gpu:Sometimes"),
        ("SHOPFLOW_K8S_GPU_NODE_SELECTOR", "gpu"),
        ("SHOPFLOW_TRAINER_PROJECT_DIR", "opt/shopflow"),
    ],
)
def test_bad_settings_name_the_variable(project: Path, name: str, value: str) -> None:
    env = {"SHOPFLOW_PROJECT_DIR": str(project), name: value}
    with pytest.raises(ConfigError, match=name):
        OrchestrationSettings.from_env(env)


def test_dag_files_import_with_the_kubernetes_runner(
    repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    monkeypatch.setenv("SHOPFLOW_TRAIN_RUNNER", "kubernetes")
    monkeypatch.setenv("SHOPFLOW_TRAIN_QUEUE", "gpu")
    dagbag = DagBag(dag_folder=str(repo_root / "dags"))
    assert dagbag.import_errors == {}
    for dag_id in ("intent_retrain", "recommender_retrain"):
        train = dagbag.dags[dag_id].get_task("train")
        assert isinstance(train, KubernetesPodOperator)
        assert train.queue == "gpu"


def test_record_training_from_a_real_result_file(tiny_project: Path) -> None:
    """The container's side run in-process (same CLI, same project folder, mounted at the same
    path), then record_training's function on the file it wrote."""
    from airflow.sdk.exceptions import AirflowSkipException

    from ml import cli
    from ml.core.config import load_params
    from ml.stack import model_store
    from ml.stack.model_store import TRAINED_ON_TAG

    settings = OrchestrationSettings(
        project_dir=tiny_project, train_runner="docker", trainer_project_dir=str(tiny_project)
    )
    spec = SPECS["intent"]
    ctx = RunContext.create(settings, {}, {}, run=(spec.dag_id, "manual__container"))
    for verb in (["ingest"], ["validate", "--dataset", "utterances"], ["preprocess", "intent"]):
        run_ml_step(verb, settings, ctx.params)
    ledger = ctx.ledger
    assert ledger is not None
    args = steps.container_train_args(spec, ctx)
    with in_project(settings):
        assert cli.main(args) == 0  # what the container's `python -m ml` does
    output = containers.result_file(ledger.folder)
    written = json.loads(output.read_text())

    recorded = steps.record_container_training(spec, ctx)
    assert recorded["reused"] is False
    assert recorded["registration"] == written["registration"]
    assert recorded["registration"]["version"] == "1"
    dates = recorded["trained_on"]["utterances"]
    assert len(dates) == 3
    assert ledger.get("train") == {k: v for k, v in recorded.items() if k != "reused"}
    assert not output.exists()  # consumed
    with in_project(settings):
        client = model_store.get_client(load_params(settings.params_file))
        version = client.get_model_version(written["registration"]["model_name"], "1")
    assert json.loads(version.tags[TRAINED_ON_TAG]) == {"utterances": dates}

    # Run again in the same DAG run: no second container, the recorded result is handed on.
    with pytest.raises(AirflowSkipException, match="already finished"):
        steps.container_train_args(spec, ctx)
    again = steps.record_container_training(spec, ctx)
    assert again["reused"] is True and again["registration"]["version"] == "1"


def test_missing_result_file_says_what_to_share(project: Path) -> None:
    settings = settings_for("kubernetes", project)
    ctx = RunContext.create(settings, {}, {}, run=("intent_retrain", "manual__x"))
    with pytest.raises(InputError, match="SHOPFLOW_K8S_PROJECT_PVC"):
        steps.record_container_training(SPECS["intent"], ctx)
