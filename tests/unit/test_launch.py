"""The pure parts of `launch ray` / `launch k8s` and the shipped cluster files."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from importlib.metadata import metadata
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from orchestrator.launch import ray_job
from orchestrator.launch.k8s import job_name
from orchestrator.launch.rayjob_manifest import RayJobSpec
from orchestrator.launch.rayjob_manifest import entrypoint as k8s_entrypoint

ROOT = Path(__file__).resolve().parents[2]
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def test_ray_entrypoint_joins_the_cluster_and_keeps_overrides_as_single_words():
    override = "space.optim.lr={float: [1e-5, 1e-3], log: true}"
    cmd = ray_job.entrypoint((override, "sweep.num_samples=4"))
    assert shlex.split(cmd) == [
        "python", "-m", "orchestrator.cli", "sweep", "sweep.yaml",
        "-o", "sweep.ray_address=auto",
        "-o", override,
        "-o", "sweep.num_samples=4",
    ]  # fmt: skip


def test_k8s_entrypoint_is_orchestrate_sweep_on_the_mounted_file_in_a_durable_folder():
    # --dir on the sweeps volume, named after the job: a retried job resumes that folder
    assert shlex.split(k8s_entrypoint("sweep-smoke-1a2b3c4d", ("train.epochs=3",))) == [
        "orchestrate", "sweep", "/config/sweep.yaml", "--dir", "/sweeps/sweep-smoke-1a2b3c4d",
        "-o", "sweep.ray_address=auto", "-o", "sweep.dir=/sweeps", "-o", "train.epochs=3",
    ]  # fmt: skip


def test_runtime_env_carries_sweep_dir_code_packages_and_tracking_uri(tmp_path):
    options = ray_job.RayLaunchOptions(
        sweep_file=tmp_path / "s.yaml",
        address="http://h:8265",
        tracking_uri="http://mlflow:5000",
        pip=("scikit-learn",),
    )
    env = ray_job.runtime_env(options, tmp_path)
    assert env["working_dir"] == str(tmp_path)
    (module,) = env["py_modules"]
    assert Path(module).name == "orchestrator" and (Path(module) / "cli.py").is_file()
    assert env["env_vars"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert env["pip"] == ["scikit-learn"]
    bare = ray_job.runtime_env(
        options.model_copy(update={"ship_code": False, "pip": ()}), tmp_path
    )
    assert "py_modules" not in bare and "pip" not in bare


def test_launch_options_reject_unknown_fields():
    with pytest.raises(ValidationError):
        ray_job.RayLaunchOptions(sweep_file=Path("s"), address="x", adress="y")  # type: ignore[call-arg]


def test_submission_id_names_the_sweep():
    assert re.fullmatch(r"rtdetr-loss-\d{8}-\d{6}-[0-9a-f]{4}", ray_job.default_submission_id(
        "rtdetr loss"
    ))  # fmt: skip


@pytest.mark.parametrize("name", ["smoke", "RT-DETR loss / v2", "x" * 80, "---"])
def test_job_name_is_a_valid_rayjob_name(name):
    job = job_name(name, "text", ())
    assert len(job) <= 47 and DNS_1035.match(job), job
    RayJobSpec(name=job, sweep_configmap="c")  # the manifest model accepts it too


def test_job_name_changes_with_file_and_overrides_only():
    base = job_name("smoke", "a: 1\n", ())
    assert job_name("smoke", "a: 1\n", ()) == base
    assert job_name("smoke", "a: 2\n", ()) != base
    assert job_name("smoke", "a: 1\n", ("train.epochs=3",)) != base


def test_rayjob_spec_rejects_names_kuberay_would():
    for bad in ("Sweep", "1sweep", "s" * 48, "sweep-"):
        with pytest.raises(ValidationError):
            RayJobSpec(name=bad, sweep_configmap="c")


def test_ray_cluster_launcher_yaml_passes_rays_schema():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / "launch/ray-cluster.yaml").read_text())
    validate_config(prepare_config(config))


def test_dockerfile_installs_extras_that_exist():
    meta = metadata("orchestrator")
    text = (ROOT / "launch/Dockerfile").read_text()
    (wanted,) = re.findall(r'pip install "\.\[([a-z,]+)\]"', text)
    assert set(wanted.split(",")) == {"cluster", "server"} <= set(meta.get_all("Provides-Extra"))
    requires = meta.get_all("Requires-Dist") or []
    assert any(r.startswith("ray[default]") and 'extra == "cluster"' in r for r in requires)


def test_cli_lists_launch_and_jobs_without_importing_ray_or_mlflow():
    code = (
        "import sys, contextlib, io\n"
        "from orchestrator.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()) as o:\n"
        "    main(['launch', 'k8s', '--help'])\n"
        "assert '--image' in o.getvalue() and '--apply' in o.getvalue()\n"
        "heavy = [m for m in ('ray', 'mlflow', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
