"""deploy/k8s: every overlay renders, validates against Kubernetes and KEDA, and matches the code.

Kubernetes objects are validated with kubernetes-validate (strict) for KUBERNETES_VERSION; KEDA's
ScaledObject and TriggerAuthentication against the OpenAPI schema of KEDA's CRDs, vendored from
https://github.com/kedacore/keda/tree/v2.20.2/config/crd/bases (commit 68a5b5028f35b22d50597c69819ab32c4e92f21a).
"""

from __future__ import annotations

import shlex
import types
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from kombu.transport.redis import Channel
from ruamel.yaml import YAML

from orchestrator.store.keys import Keys
from tests.deploy.deployment import (
    KNOWN_VARIABLES,
    ROOT,
    SCHEMAS,
    api_routes,
    check_command,
    flower_routes,
    hard_limits,
    queue_lists,
)
from tests.deploy.kustomize import Object, containers, pod_spec, render

KUBERNETES_VERSION = "1.31.0"
DEPLOY = ROOT / "deploy" / "k8s"
OVERLAYS = ["base", "overlays/production", "overlays/in-cluster-redis"]
KEDA_CRDS = {
    "ScaledObject": "keda.sh_scaledobjects.yaml",
    "TriggerAuthentication": "keda.sh_triggerauthentications.yaml",
}


@cache
def rendered(overlay: str) -> tuple[Object, ...]:
    return tuple(render(DEPLOY / overlay))


def objects(overlay: str, kind: str) -> dict[str, Object]:
    return {o["metadata"]["name"]: o for o in rendered(overlay) if o["kind"] == kind}


@cache
def keda_schema(kind: str) -> dict[str, Any]:
    crd = YAML(typ="safe").load((SCHEMAS / KEDA_CRDS[kind]).read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def worker_queue(deployment: Object) -> str:
    (container,) = containers(deployment)
    command = container["command"]
    return str(command[command.index("--queues") + 1])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_valid(overlay: str) -> None:
    for obj in rendered(overlay):
        if obj["kind"] in KEDA_CRDS:
            assert obj["apiVersion"] == "keda.sh/v1alpha1"
            jsonschema.Draft7Validator(keda_schema(obj["kind"])).validate(obj)
        else:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_scales_each_worker_on_every_list_of_its_queue(overlay: str) -> None:
    deployments = {n: d for n, d in objects(overlay, "Deployment").items() if n.startswith("worker-")}
    scaled = objects(overlay, "ScaledObject")
    assert set(scaled) == set(deployments)
    auth = objects(overlay, "TriggerAuthentication")
    # kombu's own naming of a queue's priority lists, on its own channel attributes.
    kombu = types.SimpleNamespace(sep=Channel.sep, priority_steps=Channel.priority_steps)
    kombu.priority = types.MethodType(Channel.priority, kombu)
    for name, deployment in deployments.items():
        queue = worker_queue(deployment)
        expected = [Channel._q_for_pri(kombu, Keys("orch").queue(queue), p) for p in Channel.priority_steps]
        assert expected == queue_lists(queue)
        if hasattr(Keys, "queue_lists"):  # the metrics' own reading of a queue's depth
            assert list(Keys("orch").queue_lists(queue)) == expected
        assert len(expected) == 4 and expected[0] == "orch:broker:" + queue
        triggers = scaled[name]["spec"]["triggers"]
        assert [t["metadata"]["listName"] for t in triggers] == expected
        assert scaled[name]["spec"]["scaleTargetRef"]["name"] == name
        for trigger in triggers:
            assert trigger["type"] == "redis"
            assert trigger["authenticationRef"]["name"] in auth
            env_names = {e["name"] for c in containers(deployment) for e in c.get("env", [])}
            env_names |= set(objects(overlay, "ConfigMap")["orchestrator-config"]["data"])
            assert trigger["metadata"]["addressFromEnv"] in env_names


def test_the_keda_user_may_only_measure_queues() -> None:
    line = next(x for x in (ROOT / "deploy/redis/users.acl").read_text().splitlines() if x.startswith("user keda "))
    rules = line.split()
    assert "~orch:broker:*" in rules and "+llen" in rules and "-@all" in rules
    assert not [r for r in rules if r.startswith("+@")]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workers_drain_warmly_and_prefetch_one(overlay: str) -> None:
    limits = hard_limits()
    config = objects(overlay, "ConfigMap")["orchestrator-config"]["data"]
    for name, deployment in objects(overlay, "Deployment").items():
        if not name.startswith("worker-"):
            continue
        queue = worker_queue(deployment)
        grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
        assert grace > limits.get(queue, limits["default"]), name
        assert grace > limits["default"] >= 3600
        (container,) = containers(deployment)
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["ORCH_WORKER__PREFETCH_MULTIPLIER"] == "1"
        assert float(config["ORCH_WORKER__VISIBILITY_TIMEOUT"]) > max(limits.values())
        assert "requests" in container["resources"]
        pdbs = [
            p
            for p in objects(overlay, "PodDisruptionBudget").values()
            if p["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
        ]
        assert len(pdbs) == 1, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_one_beat_recreated_never_two(overlay: str) -> None:
    beat = objects(overlay, "Deployment")["beat"]
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"] == {"type": "Recreate"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_commands_env_and_probes_point_at_real_things(overlay: str) -> None:
    routes = {"api": api_routes(), "flower": flower_routes()}
    config = objects(overlay, "ConfigMap")["orchestrator-config"]["data"]
    assert not {k for k in config if k.startswith("ORCH_")} - KNOWN_VARIABLES
    for kind in ("Deployment", "StatefulSet"):
        for name, obj in objects(overlay, kind).items():
            for container in containers(obj):
                if container["image"].startswith("redis:"):
                    continue
                check_command(container["command"])
                assert (
                    not {e["name"] for e in container.get("env", []) if e["name"].startswith("ORCH_")} - KNOWN_VARIABLES
                )
                assert container["image"].split(":")[0].endswith("celery-orchestrator")
                ports = {p["containerPort"] for p in container.get("ports", [])}
                for probe in ("readinessProbe", "livenessProbe"):
                    spec = container.get(probe)
                    if spec is None:
                        continue
                    if "httpGet" in spec:
                        assert spec["httpGet"]["path"] in routes[name], (name, probe)
                        assert spec["httpGet"]["port"] in ports, (name, probe)
                        command = container["command"]
                        assert str(spec["httpGet"]["port"]) == command[command.index("--port") + 1]
                    else:
                        shell = spec["exec"]["command"]
                        assert shell[:2] == ["sh", "-c"]
                        check_command(shlex.split(shell[2]))
    api = objects(overlay, "Deployment")["api"]
    (container,) = containers(api)
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_components_use_their_own_redis_users(overlay: str) -> None:
    for name, deployment in objects(overlay, "Deployment").items():
        component = name.split("-")[0]
        (container,) = containers(deployment)
        refs = {
            e["name"]: e["valueFrom"]["secretKeyRef"]["key"]
            for e in container["env"]
            if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]
        }
        assert refs["ORCH_BROKER_URL"] == refs["ORCH_STORE_URL"] == f"{component}-url", name
    for secret in objects(overlay, "Secret").values():
        for key, value in secret["stringData"].items():
            if key.endswith("-url"):
                assert value.startswith(f"redis://{key.removesuffix('-url')}:"), key


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_redis_and_flower_are_reachable_only_from_inside(overlay: str) -> None:
    policies = objects(overlay, "NetworkPolicy")
    assert policies["default-deny-ingress"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    for name, app in (("redis-ingress", "redis"), ("flower-ingress", "flower")):
        spec = policies[name]["spec"]
        assert spec["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == app
        for rule in spec["ingress"]:
            assert rule.get("from"), f"{name}: a rule without `from` admits everyone"
    service = objects(overlay, "Service")["flower"]
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"


def test_the_in_cluster_redis_keeps_an_aof_and_loads_the_users() -> None:
    redis = objects("overlays/in-cluster-redis", "StatefulSet")["redis"]
    (container,) = containers(redis)
    command = container["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--aclfile") + 1] == "/etc/redis/users.acl"


def test_production_uses_tls_and_a_pinned_image() -> None:
    auth = objects("overlays/production", "TriggerAuthentication")["redis-queue-depth"]
    assert "tls" in {ref["parameter"] for ref in auth["spec"]["secretTargetRef"]}
    for deployment in objects("overlays/production", "Deployment").values():
        for container in containers(deployment):
            assert not container["image"].endswith(":latest")
    assert not objects("overlays/production", "Secret"), "production secrets are created out of band"


def test_kustomizations_list_every_manifest() -> None:
    listed: set[Path] = set()
    for kustomization in DEPLOY.rglob("kustomization.yaml"):
        data = YAML(typ="safe").load(kustomization.read_text())
        listed |= {(kustomization.parent / r).resolve() for r in data.get("resources", [])}
        listed |= {(kustomization.parent / p["path"]).resolve() for p in data.get("patches", [])}
    manifests = {p.resolve() for p in DEPLOY.rglob("*.yaml") if p.name != "kustomization.yaml"}
    assert manifests <= listed, sorted(str(p) for p in manifests - listed)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secret_files_are_settings_read_from_the_secrets_dir(overlay: str) -> None:
    config = objects(overlay, "ConfigMap")["orchestrator-config"]["data"]
    for name, deployment in objects(overlay, "Deployment").items():
        mounts = {m["name"]: m["mountPath"] for c in containers(deployment) for m in c.get("volumeMounts", [])}
        for volume in pod_spec(deployment).get("volumes", []):
            if "secret" not in volume:
                continue
            assert mounts[volume["name"]] == config["ORCH_SECRETS_DIR"], name
            for item in volume["secret"]["items"]:  # only the files this component needs
                assert item["path"].upper() in KNOWN_VARIABLES, (name, item)
