"""infra/kubernetes/: the GPU work pool's job and the KubeRay RayCluster are valid Kubernetes objects
(the schemas kubernetes-validate ships, offline) and run the project's image, directory and env."""

from __future__ import annotations

import json
import re
from typing import Any

import kubernetes_validate
import yaml

from tests.conftest import REPO_ROOT

K8S = REPO_ROOT / "infra" / "kubernetes"
VERSION = "1.31"
_PLACEHOLDER = re.compile(r"\{\{ *(\w+) *\}\}")


def _compose_image() -> tuple[str, dict[str, str]]:
    """The image `docker-compose.yml` builds from infra/Dockerfile and its offline environment."""
    compose = yaml.safe_load((REPO_ROOT / "infra" / "docker-compose.yml").read_text(encoding="utf-8"))
    return compose["x-refinery-image"]["image"], {k: str(v) for k, v in compose["x-offline"].items()}


def _render(node: Any, defaults: dict[str, Any]) -> Any:
    """The job manifest as the Prefect worker fills it with the variables' defaults."""
    if isinstance(node, dict):
        return {key: _render(value, defaults) for key, value in node.items()}
    if isinstance(node, list):
        return [_render(value, defaults) for value in node]
    if isinstance(node, str) and (whole := _PLACEHOLDER.fullmatch(node)):
        return defaults[whole.group(1)]
    if isinstance(node, str):
        return _PLACEHOLDER.sub(lambda m: str(defaults[m.group(1)]), node)
    return node


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container["env"]}


def test_the_gpu_work_pool_job_is_a_valid_job_running_the_project_image() -> None:
    template = json.loads((K8S / "gpu-work-pool.json").read_text(encoding="utf-8"))
    defaults = {name: spec.get("default") for name, spec in template["variables"]["properties"].items()}
    job = _render(template["job_configuration"]["job_manifest"], defaults)
    kubernetes_validate.validate(job, VERSION, strict=True)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    image, offline = _compose_image()
    assert container["image"] == image and container["workingDir"] == "/app"  # the Dockerfile's WORKDIR
    assert container["args"] == ["prefect", "flow-run", "execute"]  # the Prefect worker's own command
    assert offline.items() <= _env(container).items()
    assert container["resources"]["limits"]["nvidia.com/gpu"] >= 1


def test_the_raycluster_has_kuberays_required_fields_and_valid_pods() -> None:
    cluster = yaml.safe_load((K8S / "raycluster.yaml").read_text(encoding="utf-8"))
    assert cluster["apiVersion"] == "ray.io/v1" and cluster["kind"] == "RayCluster"
    spec = cluster["spec"]
    assert {"headGroupSpec", "workerGroupSpecs"} <= set(spec)  # KubeRay's CRD requires these
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    assert all({"rayStartParams", "template"} <= set(group) for group in groups)
    assert all("groupName" in group for group in spec["workerGroupSpecs"])
    image, offline = _compose_image()
    import ray

    assert spec["rayVersion"] == ray.__version__  # driver and cluster on the same Ray
    for group in groups:
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": group["template"]["spec"],
        }
        kubernetes_validate.validate(pod, VERSION, strict=True)
        (container,) = pod["spec"]["containers"]
        assert container["image"] == image and container["workingDir"] == "/app"
        assert offline.items() <= _env(container).items()
