"""Placement check: a trial's request against the cluster's nodes, computed by hand."""

from __future__ import annotations

from orchestrator.config.models import Resources
from orchestrator.tuning.placement import GIB, describe_nodes, shortfall, trial_bundles

LAPTOP = [{"CPU": 8.0, "memory": 12 * GIB, "object_store_memory": 1e9, "node:10.0.0.1": 1.0}]


def test_a_gpu_request_on_a_cpu_only_machine_names_the_key_and_both_amounts():
    problem = shortfall(trial_bundles(Resources(cpus_per_worker=8, gpus_per_worker=1)), LAPTOP)
    assert problem is not None and problem.key == "resources.gpus_per_worker"
    assert problem.rule == (
        "the trial asks for 1 GPU, but the Ray cluster has no GPUs "
        "(8 CPU, 0 GPU, 12 GiB memory on 1 node)"
    )


def test_what_fits_passes():
    assert shortfall(trial_bundles(Resources(cpus_per_worker=8)), LAPTOP) is None
    # 2 workers x 2 CPU + the trial's own 0.1 CPU = 4.1 <= 8
    assert shortfall(trial_bundles(Resources(workers=2, cpus_per_worker=2)), LAPTOP) is None
    # a one-worker trial with trial_cpus set reserves only those
    assert shortfall(trial_bundles(Resources(cpus_per_worker=16, trial_cpus=1)), LAPTOP) is None


def test_workers_that_fit_one_by_one_but_not_together_blame_workers():
    # 4 x 2 CPU + 0.1 = 8.1 > 8
    problem = shortfall(trial_bundles(Resources(workers=4, cpus_per_worker=2)), LAPTOP)
    assert problem is not None and problem.key == "resources.workers"
    assert "ask for 8.1 CPU in all, but the Ray cluster has 8 CPU" in problem.rule


def test_cpus_memory_and_custom_resources_name_their_own_keys():
    cases = {
        "resources.cpus_per_worker": Resources(cpus_per_worker=9),
        "resources.trial_cpus": Resources(cpus_per_worker=1, trial_cpus=9),
        "resources.memory_per_worker_gb": Resources(memory_per_worker_gb=20),
        "resources.custom_per_worker.A100": Resources(custom_per_worker={"A100": 1}),
    }
    for key, resources in cases.items():
        problem = shortfall(trial_bundles(resources), LAPTOP)
        assert problem is not None and problem.key == key, (key, problem)
    memory = shortfall(trial_bundles(cases["resources.memory_per_worker_gb"]), LAPTOP)
    assert memory is not None and "asks for 20 GiB memory, but the Ray cluster has 12 GiB" in (
        memory.rule
    )


def test_several_nodes_the_largest_one_and_resources_split_across_nodes():
    two = [{"CPU": 8.0, "GPU": 0.0}, {"CPU": 2.0, "GPU": 1.0}]
    problem = shortfall(trial_bundles(Resources(cpus_per_worker=16)), two)
    assert problem is not None
    assert problem.rule.startswith("the trial asks for 16 CPU, but its largest node has 8 CPU")
    # 4 CPU and a GPU exist, but never on the same node
    split = shortfall(trial_bundles(Resources(cpus_per_worker=4, gpus_per_worker=1)), two)
    assert split is not None and split.key == "resources"
    assert "no node has all of that (10 CPU, 1 GPU on 2 nodes)" in split.rule
    # two GPU workers on two GPU nodes: each fits, and together (first fit) too
    gpus = [{"CPU": 4.0, "GPU": 1.0}, {"CPU": 4.0, "GPU": 1.0}]
    ddp = Resources(workers=2, cpus_per_worker=3, gpus_per_worker=1)
    assert shortfall(trial_bundles(ddp), gpus) is None
    # three of them do not: 3 GPUs asked, 2 exist
    more = shortfall(trial_bundles(ddp.model_copy(update={"workers": 3})), gpus)
    assert more is not None and more.key == "resources.workers"


def test_the_cluster_description_leaves_out_ray_bookkeeping_resources():
    nodes = [*LAPTOP, {"CPU": 4.0, "GPU": 2.0, "A100": 2.0, "accelerator_type:A100": 1.0}]
    assert describe_nodes(nodes) == "12 CPU, 2 GPU, 12 GiB memory, 2 A100 on 2 nodes"


def test_the_cluster_to_join_is_the_sweep_files_then_ray_address_then_none(monkeypatch):
    from orchestrator.config.models import SweepConfig
    from orchestrator.tuning.placement import cluster_address

    base = {"name": "t", "task": {"kind": "regression"}}
    base["objective"] = {"metric": "val/mse", "mode": "min"}
    own = SweepConfig.model_validate({**base, "sweep": {"ray_address": "10.0.0.9:6379"}})
    local = SweepConfig.model_validate(base)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert cluster_address(local) is None  # a local Ray of the sweep's own
    assert cluster_address(own) == "10.0.0.9:6379"
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6380")
    assert cluster_address(local) == "127.0.0.1:6380"  # as ray.init() reads it
    assert cluster_address(own) == "10.0.0.9:6379"  # the sweep file wins
    monkeypatch.setenv("RAY_ADDRESS", "")
    assert cluster_address(local) is None


def test_a_cluster_that_cannot_be_joined_is_one_line_naming_where_the_address_came_from():
    from orchestrator.config.models import SweepConfig
    from orchestrator.tuning.runner import _join_failure

    base = {"name": "t", "task": {"kind": "regression"}}
    base["objective"] = {"metric": "val/mse", "mode": "min"}
    refused = ConnectionError("Failed to connect to Ray cluster at 10.0.0.9:6379")
    env = _join_failure(SweepConfig.model_validate(base), "10.0.0.9:6379", refused)
    assert env == (
        "RAY_ADDRESS: cannot join the Ray cluster at 10.0.0.9:6379: Failed to connect to Ray "
        "cluster at 10.0.0.9:6379 (is it running? with token auth, RAY_AUTH_TOKEN must hold "
        "the cluster's token)"
    )
    own = SweepConfig.model_validate({**base, "sweep": {"ray_address": "ray://u:pw@head:10001"}})
    line = _join_failure(own, "ray://u:pw@head:10001", RuntimeError(""))
    assert line.startswith("sweep.ray_address: cannot join the Ray cluster at ray://***@head")
    assert "pw" not in line and ": RuntimeError (is it running?" in line
