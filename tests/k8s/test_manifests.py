"""Every manifest in k8s/ (each overlay built with `kubectl kustomize`) and every output of
`orchestrate launch k8s` validates strictly: KubeRay's CRD schemas and operator checks, and
the core Kubernetes schemas (kubernetes-validate), with the validator in ../shared/k8s/.
No Kubernetes API server runs here, so this is as far as the manifests can be proved."""

from __future__ import annotations

import copy
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.launch.rayjob_manifest import RayJobSpec, rayjob

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = ["cpu", "gpu", "example"]


def _shared_dir() -> Path:
    """$ORCH_SHARED_DIR, else ../shared next to the repository (where the project keeps it)."""
    env = os.environ.get("ORCH_SHARED_DIR")
    return Path(env) if env else ROOT.parent / "shared"


VALIDATOR = _shared_dir() / "k8s" / "validate.py"
if not VALIDATOR.is_file():
    pytest.skip(
        f"manifest validator not found at {VALIDATOR} (set ORCH_SHARED_DIR to the shared dir)",
        allow_module_level=True,
    )
_spec = importlib.util.spec_from_file_location("orch_shared_k8s_validate", VALIDATOR)
assert _spec and _spec.loader
validate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(validate)

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl (for kustomize) not on PATH")


def check(docs: list[Any], source: str) -> None:
    errors = validate.validate_documents(docs, source=source)
    assert errors == [], "\n".join(errors)


def kustomize(directory: Path) -> list[dict[str, Any]]:
    assert KUBECTL is not None
    out = subprocess.run(
        [KUBECTL, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return validate.load_yaml_documents(out)


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def test_core_kinds_are_checked_too():
    # without kubernetes-validate the validator silently skips Deployments, Services ...
    assert validate._kv is not None, "pip install kubernetes-validate (it is in the dev extra)"


@needs_kubectl
# ids are paths: a bare "gpu" id would count as the gpu marker and be skipped without CUDA
@pytest.mark.parametrize("overlay", ["base", *OVERLAYS], ids=lambda o: f"k8s/{o}")
def test_kustomize_build_validates_strictly(overlay):
    path = K8S / "base" if overlay == "base" else K8S / "overlays" / overlay
    docs = kustomize(path)
    check(docs, source=f"kubectl kustomize {path}")
    kinds = sorted(d["kind"] for d in docs)
    assert {"RayJob", "Deployment", "Service", "StatefulSet", "ConfigMap"} <= set(kinds)


def test_plain_manifest_files_validate():
    files = [
        p
        for p in K8S.rglob("*.yaml")
        if p.name not in ("kustomization.yaml", "sweep.yaml") and p.parent.name != "overlays"
    ]
    assert len(files) >= 4
    assert validate.validate_paths([str(p) for p in files]) == []


def test_validator_rejects_unknown_fields_in_our_manifests():
    # proves the checks above would catch a typo, in a custom and in a core kind
    docs = validate.load_yaml_documents((K8S / "base" / "rayjob.yaml").read_text())
    bad = copy.deepcopy(docs[0])
    bad["spec"]["shutdownAfterJobFinish"] = True
    assert any("unknown field" in e for e in validate.validate_documents([bad]))
    deployment = by_kind(
        validate.load_yaml_documents((K8S / "base" / "mlflow.yaml").read_text()), "Deployment"
    )[0]
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    assert any("unknown field" in e for e in validate.validate_documents([deployment]))


def test_base_rayjob_is_what_launch_k8s_renders():
    (doc,) = validate.load_yaml_documents((K8S / "base" / "rayjob.yaml").read_text())
    assert doc == rayjob(RayJobSpec(name="sweep", sweep_configmap="sweep-file"))


def test_base_sweep_is_the_smoke_sweep():
    assert (K8S / "base" / "sweep.yaml").read_text() == (
        ROOT / "search_spaces" / "smoke.yaml"
    ).read_text()


@needs_kubectl
def test_rayjob_runs_the_sweep_file_from_the_configmap():
    docs = kustomize(K8S / "overlays" / "cpu")
    (job,) = by_kind(docs, "RayJob")
    spec = job["spec"]
    assert spec["entrypoint"].startswith("orchestrate sweep /config/sweep.yaml")
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["ttlSecondsAfterFinished"] > 0 and 0 <= spec["backoffLimit"] <= 3
    head = spec["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    (cm_volume,) = [v for v in head["volumes"] if "configMap" in v]
    configmaps = {d["metadata"]["name"]: d for d in by_kind(docs, "ConfigMap")}
    sweep_cm = configmaps[cm_volume["configMap"]["name"]]
    assert sweep_cm["data"]["sweep.yaml"] == (K8S / "base" / "sweep.yaml").read_text()
    mounts = {m["mountPath"]: m["name"] for m in head["containers"][0]["volumeMounts"]}
    assert mounts["/config"] == cm_volume["name"]
    groups = spec["rayClusterSpec"]["workerGroupSpecs"]
    assert len(groups) == 1 and groups[0]["replicas"] == 2
    for pod in (head, groups[0]["template"]["spec"]):
        (container,) = pod["containers"]
        assert "/dev/shm" in {m["mountPath"] for m in container["volumeMounts"]}
        assert {"requests", "limits"} <= set(container["resources"])
        assert container["image"] == "registry.example.com/orchestrator:cpu"
        assert "nvidia.com/gpu" not in container["resources"]["limits"]


@needs_kubectl
def test_gpu_overlay_requests_gpus_and_tells_the_sweep():
    (job,) = by_kind(kustomize(K8S / "overlays" / "gpu"), "RayJob")
    (group,) = job["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    (container,) = group["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert container["image"].endswith(":cuda")
    assert "-o resources.gpus_per_worker=1" in job["spec"]["entrypoint"]


@needs_kubectl
def test_mlflow_server_uses_postgres_s3_allowed_hosts_and_probes():
    docs = kustomize(K8S / "overlays" / "cpu")
    (deployment,) = by_kind(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = dict(a.removeprefix("--").split("=", 1) for a in container["args"])
    assert args["backend-store-uri"].startswith("postgresql+psycopg2://")
    assert args["artifacts-destination"].startswith("s3://")
    assert "mlflow" in args["allowed-hosts"].split(",")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/health"
    (statefulset,) = by_kind(docs, "StatefulSet")
    assert statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]
    services = {d["metadata"]["name"] for d in by_kind(docs, "Service")}
    assert {"mlflow", "postgres"} <= services


def _env_vars(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for doc in docs:
        pod = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []):
            out += container.get("env", [])
    return out


@needs_kubectl
@pytest.mark.parametrize("overlay", ["base", "cpu", "gpu"], ids=lambda o: f"k8s/{o}")
def test_credentials_only_through_secret_references(overlay):
    path = K8S / "base" if overlay == "base" else K8S / "overlays" / overlay
    docs = kustomize(path)
    assert by_kind(docs, "Secret") == []
    secret_like = [
        e for e in _env_vars(docs) if any(w in e["name"] for w in ("PASSWORD", "SECRET", "KEY"))
    ]
    assert len(secret_like) >= 3
    for env in secret_like:
        assert "value" not in env and "secretKeyRef" in env["valueFrom"], env
    text = "".join(p.read_text() for p in (K8S / "base").glob("*.yaml"))
    assert "change-me" not in text


@needs_kubectl
def test_example_overlay_generates_the_secrets_it_references():
    docs = kustomize(K8S / "overlays" / "example")
    secrets = {d["metadata"]["name"] for d in by_kind(docs, "Secret")}
    refs = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for e in _env_vars(docs)
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert refs and refs <= secrets
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {
        "orchestrator-demo"
    }


# ---- orchestrate launch k8s ----


def launch_k8s(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "launch", "k8s", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


CASES = {
    "defaults": [],
    "gpus": ["--gpus", "2", "--workers", "3", "--namespace", "ml-team", "-o",
             "resources.gpus_per_worker=1"],
    "sized": ["--cpus", "8", "--memory", "32Gi", "-o", "sweep.num_samples=3", "--tracking-uri",
              "http://mlflow.tracking.svc:5000"],
}  # fmt: skip


@needs_kubectl
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("sweep", ["smoke.yaml", "rtdetr.yaml"])
def test_launch_k8s_output_validates(tmp_path, case, sweep):
    out = tmp_path / "job"
    sweep_file = ROOT / "search_spaces" / sweep
    proc = launch_k8s(str(sweep_file), "--image", "reg.example/orch:1", "--out", str(out),
                      *CASES[case])  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "kustomization.yaml",
        "rayjob.yaml",
        "sweep.yaml",
    ]
    assert f"kubectl apply -k {out}" in proc.stdout
    assert validate.validate_paths([str(out / "rayjob.yaml")]) == []
    docs = kustomize(out)
    check(docs, source=f"launch k8s {case}")
    (job,) = by_kind(docs, "RayJob")
    (cm,) = by_kind(docs, "ConfigMap")
    name = job["metadata"]["name"]
    assert len(name) <= 47 and f"logs -f job/{name}" in proc.stdout
    assert cm["data"]["sweep.yaml"] == sweep_file.read_text()
    (group,) = job["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    if case == "gpus":
        assert job["metadata"]["namespace"] == "ml-team" == cm["metadata"]["namespace"]
        assert group["replicas"] == 3 and limits["nvidia.com/gpu"] == 2
        assert "-o resources.gpus_per_worker=1" in job["spec"]["entrypoint"]
    if case == "sized":
        assert limits == {"cpu": "8", "memory": "32Gi"}
        assert "-o sweep.num_samples=3" in job["spec"]["entrypoint"]
        env = yaml.safe_load(job["spec"]["runtimeEnvYAML"])["env_vars"]
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow.tracking.svc:5000"


def test_launch_k8s_refuses_a_sweep_that_cannot_fit_a_worker_pod(tmp_path):
    proc = launch_k8s(str(ROOT / "search_spaces/smoke.yaml"), "--image", "x", "--out",
                      str(tmp_path / "o"), "-o", "resources.gpus_per_worker=1")  # fmt: skip
    assert proc.returncode == 2
    assert "resources.gpus_per_worker=1 does not fit a worker pod of --gpus 0" in proc.stderr


@needs_kubectl
def test_launch_k8s_apply_reports_kubectl_failure_without_an_api_server(tmp_path):
    # a kubeconfig whose API server is a closed loopback port: kubectl fails fast
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    out = tmp_path / "job"
    proc = launch_k8s(str(ROOT / "search_spaces/smoke.yaml"), "--image", "x", "--out", str(out),
                      "--apply", env=env)  # fmt: skip
    assert proc.returncode == 2
    assert "kubectl apply -k" in proc.stderr and f"the manifests are in {out}" in proc.stderr
    assert (out / "rayjob.yaml").is_file()


# ---- hardening: durable sweep folder, pod security, network policies, MLflow auth ----


def _pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(where, pod metadata, pod spec) of every pod any document creates, the RayJob's head,
    worker and submitter pods included."""
    pods = []
    for doc in docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        spec = doc.get("spec", {})
        if doc["kind"] in ("Deployment", "StatefulSet"):
            pods.append((name, spec["template"]["metadata"], spec["template"]["spec"]))
        if doc["kind"] == "RayJob":
            cluster = spec["rayClusterSpec"]
            templates = [("head", cluster["headGroupSpec"]["template"])]
            templates += [(g["groupName"], g["template"]) for g in cluster["workerGroupSpecs"]]
            templates.append(("submitter", spec["submitterPodTemplate"]))
            for part, template in templates:
                pods.append((f"{name}/{part}", template.get("metadata", {}), template["spec"]))
    return pods


@needs_kubectl
@pytest.mark.parametrize("overlay", ["base", *OVERLAYS], ids=lambda o: f"k8s/{o}")
def test_every_container_is_non_root_unprivileged_read_only_with_a_writable_tmp(overlay):
    path = K8S / "base" if overlay == "base" else K8S / "overlays" / overlay
    pods = _pod_specs(kustomize(path))
    assert len(pods) == 5  # postgres, mlflow, ray head, ray workers, submitter
    for where, _, pod in pods:
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] > 0, where
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}, where
        emptydirs = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
        for container in pod["containers"] + pod.get("initContainers", []):
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False, where
            assert ctx["capabilities"] == {"drop": ["ALL"]}, where
            assert ctx["readOnlyRootFilesystem"] is True, where
            assert "privileged" not in ctx and "runAsUser" not in ctx, where
            tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert len(tmp) == 1 and tmp[0]["name"] in emptydirs, where


# pods that are not ours: one in the same namespace, the KubeRay operator elsewhere
STRANGER = ("stranger", {"app": "curious"}, "same")
OPERATOR = ("operator", {"app.kubernetes.io/name": "kuberay-operator"}, "kuberay")
OUTSIDE = ("s3", None, None)  # an address outside the cluster (S3, the internet)


def _selects(selector: dict[str, Any], labels: dict[str, str] | None) -> bool:
    assert set(selector) <= {"matchLabels"}, selector  # the only form the manifests use
    return labels is not None and selector.get("matchLabels", {}).items() <= labels.items()


def _peer_matches(peer: dict[str, Any], labels: dict[str, str] | None, ns: str | None) -> bool:
    assert set(peer) <= {"podSelector", "namespaceSelector"}, peer  # no ipBlock in ours
    if labels is None:  # outside the cluster: no pod or namespace selector matches it
        return False
    if "namespaceSelector" in peer:
        if not _selects(peer["namespaceSelector"], {}) and ns != "same":
            return False
    elif ns != "same":  # a bare podSelector means this namespace only
        return False
    return _selects(peer.get("podSelector", {}), labels)


def _rules_allow(rules: list[dict[str, Any]], key: str, labels, ns, port: int) -> bool:
    for rule in rules:
        peers = rule.get(key)
        ports = rule.get("ports")
        port_ok = ports is None or any(p["port"] == port for p in ports)
        peer_ok = not peers or any(_peer_matches(p, labels, ns) for p in peers)
        if port_ok and peer_ok:
            return True
    return False


def allowed(policies: list[dict[str, Any]], src: tuple, dst: tuple, port: int) -> bool:
    """What a NetworkPolicy-enforcing CNI decides for a TCP connection src -> dst:port
    (src, dst = name, pod labels or None for outside, namespace), as the API defines it:
    a direction is open unless a policy of that type selects the pod; then any of the
    selecting policies' rules must allow the peer and port."""
    _, src_labels, src_ns = src
    _, dst_labels, dst_ns = dst
    if src_labels is not None and src_ns == "same":
        egress = [p["spec"] for p in policies if "Egress" in p["spec"]["policyTypes"]
                  and _selects(p["spec"]["podSelector"], src_labels)]  # fmt: skip
        if egress and not any(
            _rules_allow(p.get("egress", []), "to", dst_labels, dst_ns, port) for p in egress
        ):
            return False
    if dst_labels is not None and dst_ns == "same":
        ingress = [p["spec"] for p in policies if "Ingress" in p["spec"]["policyTypes"]
                   and _selects(p["spec"]["podSelector"], dst_labels)]  # fmt: skip
        if ingress and not any(
            _rules_allow(p.get("ingress", []), "from", src_labels, src_ns, port) for p in ingress
        ):
            return False
    return True


@needs_kubectl
def test_network_policies_let_only_the_ray_pods_reach_mlflow_and_only_mlflow_the_stores():
    docs = kustomize(K8S / "overlays" / "cpu")
    policies = by_kind(docs, "NetworkPolicy")
    pods = {where.split("/", 2)[-1]: (where, meta["labels"], "same")
            for where, meta, _ in _pod_specs(docs)}  # fmt: skip
    head, worker, submitter = pods["head"], pods["workers"], pods["submitter"]
    mlflow, postgres = pods["mlflow"], pods["postgres"]
    cases = [  # (source, destination, port, allowed)
        (head, mlflow, 5000, True),
        (worker, mlflow, 5000, True),
        (worker, head, 6379, True),
        (head, worker, 10001, True),
        (submitter, head, 8265, True),
        (OPERATOR, head, 8265, True),
        (mlflow, postgres, 5432, True),
        (mlflow, OUTSIDE, 443, True),
        # the attacks: a stranger pod at every port, the Ray pods at the stores
        (STRANGER, mlflow, 5000, False),
        (STRANGER, postgres, 5432, False),
        (STRANGER, head, 6379, False),
        (STRANGER, head, 8265, False),
        (STRANGER, head, 10001, False),
        (STRANGER, worker, 10001, False),
        (OPERATOR, head, 6379, False),
        (submitter, mlflow, 5000, False),
        (head, postgres, 5432, False),
        (worker, postgres, 5432, False),
        (head, OUTSIDE, 443, False),
        (worker, OUTSIDE, 9000, False),
        (postgres, OUTSIDE, 443, False),
        (mlflow, head, 8265, False),
    ]
    wrong = [(s[0], d[0], port, ok) for s, d, port, ok in cases
             if allowed(policies, s, d, port) != ok]  # fmt: skip
    assert wrong == []
    for name, labels, _ in pods.values():  # every pod of ours is under a policy
        assert any(_selects(p["spec"]["podSelector"], labels) for p in policies), name


@needs_kubectl
@pytest.mark.parametrize("overlay", ["base", *OVERLAYS], ids=lambda o: f"k8s/{o}")
def test_no_password_on_a_command_line(overlay):
    path = K8S / "base" if overlay == "base" else K8S / "overlays" / overlay
    docs = kustomize(path)
    secret_env = {e["name"] for e in _env_vars(docs) if "secretKeyRef" in e.get("valueFrom", {})}
    assert {"PGUSER", "PGPASSWORD", "AWS_SECRET_ACCESS_KEY"} <= secret_env
    for where, _, pod in _pod_specs(docs):
        for container in pod["containers"]:
            line = " ".join(container.get("command", []) + container.get("args", []))
            assert not any(f"$({name})" in line for name in secret_env), (where, line)
            assert "@" not in line, (where, line)  # no user info in a URI either
    (deployment,) = by_kind(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = dict(a.removeprefix("--").split("=", 1) for a in container["args"])
    assert args["backend-store-uri"] == "postgresql+psycopg2://$(DB_HOST):5432/$(DB_NAME)"


@needs_kubectl
@pytest.mark.parametrize("overlay", ["base", *OVERLAYS], ids=lambda o: f"k8s/{o}")
def test_mlflow_basic_auth_is_on_in_the_production_overlays(overlay):
    path = K8S / "base" if overlay == "base" else K8S / "overlays" / overlay
    docs = kustomize(path)
    (deployment,) = by_kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    if overlay == "base":
        assert "--app-name=basic-auth" not in container["args"]
        return
    assert "--app-name=basic-auth" in container["args"]
    for var, key in (("MLFLOW_AUTH_ADMIN_USERNAME", "username"),
                     ("MLFLOW_AUTH_ADMIN_PASSWORD", "password"),
                     ("MLFLOW_FLASK_SERVER_SECRET_KEY", "server-secret-key")):  # fmt: skip
        assert env[var]["valueFrom"]["secretKeyRef"] == {"name": "mlflow-auth", "key": key}
    # (kustomize would rename a generated Secret here but not inside the RayJob: the example
    # overlay generates this one without a hash suffix, so both name the same Secret)
    ini_path = Path(env["MLFLOW_AUTH_CONFIG_PATH"]["value"])
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(ini_path.parent)]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    configmaps = {d["metadata"]["name"]: d for d in by_kind(docs, "ConfigMap")}
    ini = configmaps[volume["configMap"]["name"]]["data"][ini_path.name]
    import configparser

    parsed = configparser.ConfigParser()
    parsed.read_string(ini)
    assert parsed["mlflow"]["default_permission"] == "NO_PERMISSIONS"
    assert "admin_password" not in parsed["mlflow"] and "@" not in ini
    # the driver sends the same Secret's credentials
    (job,) = by_kind(docs, "RayJob")
    (head,) = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"]
    head_env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in head["env"]}
    assert head_env["MLFLOW_TRACKING_USERNAME"]["name"] == "mlflow-auth"
    if overlay == "example":
        assert "mlflow-auth" in {d["metadata"]["name"] for d in by_kind(docs, "Secret")}
    assert head_env["MLFLOW_TRACKING_PASSWORD"]["key"] == "password"


@needs_kubectl
def test_the_sweep_folder_is_on_the_shared_volume_under_the_job_name(tmp_path):
    docs = kustomize(K8S / "overlays" / "gpu")
    (pvc,) = by_kind(docs, "PersistentVolumeClaim")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    (job,) = by_kind(docs, "RayJob")
    assert job["spec"]["backoffLimit"] >= 1  # a lost head pod is retried ...
    words = job["spec"]["entrypoint"].split()
    # ... and the retry resumes the folder named after the job
    assert words[words.index("--dir") + 1] == f"/sweeps/{job['metadata']['name']}"
    assert "sweep.dir=/sweeps" in words
    for where, _, pod in _pod_specs(docs):
        if "submitter" in where or "RayJob" not in where:
            continue
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"]
                  for v in pod["volumes"] if "persistentVolumeClaim" in v}  # fmt: skip
        (container,) = pod["containers"]
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/sweeps"]
        assert claims[mount["name"]] == pvc["metadata"]["name"], where
    out = tmp_path / "job"
    proc = launch_k8s(str(ROOT / "search_spaces/smoke.yaml"), "--image", "x", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    (rendered,) = by_kind(kustomize(out), "RayJob")
    words = rendered["spec"]["entrypoint"].split()
    assert words[words.index("--dir") + 1] == f"/sweeps/{rendered['metadata']['name']}"
