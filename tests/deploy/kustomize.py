"""A small kustomize: enough of it for deploy/k8s, so the manifests are checked without kubectl.

Supported (and all deploy/k8s uses): ``resources`` (files, or directories with a
kustomization.yaml), ``patches`` with a ``path`` to a strategic-merge patch naming its target by
kind and metadata.name, ``namespace`` and ``images`` (newName/newTag). Merging follows kustomize
for what we patch: mappings merge, the lists Kubernetes merges by name (containers, env, volumes,
volumeMounts) merge by name, any other list is replaced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

MERGED_BY_NAME = {"containers", "initContainers", "env", "volumes", "volumeMounts"}
SUPPORTED = {"apiVersion", "kind", "namespace", "resources", "patches", "images"}
Object = dict[str, Any]


def load_all(path: Path) -> list[Object]:
    return [doc for doc in YAML(typ="safe").load_all(path.read_text()) if doc]


def render(directory: Path) -> list[Object]:
    """The objects ``kustomize build directory`` prints (in resource order)."""
    (kustomization,) = load_all(directory / "kustomization.yaml")
    unknown = set(kustomization) - SUPPORTED
    assert not unknown, f"{directory}: this renderer does not know {sorted(unknown)}"
    objects: list[Object] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        objects += render(path) if path.is_dir() else load_all(path)
    for patch_entry in kustomization.get("patches", []):
        assert set(patch_entry) == {"path"}, f"{directory}: only `path` patches are supported"
        for patch in load_all(directory / patch_entry["path"]):
            target = _find(objects, patch["kind"], patch["metadata"]["name"], directory)
            merged = merge(target, patch)
            objects[objects.index(target)] = merged
    if namespace := kustomization.get("namespace"):
        for obj in objects:
            obj.setdefault("metadata", {})["namespace"] = namespace
    for image in kustomization.get("images", []):
        for obj in objects:
            for container in _containers(obj):
                name, _, _tag = str(container["image"]).partition(":")
                if name == image["name"]:
                    container["image"] = f"{image.get('newName', name)}:{image['newTag']}"
    return objects


def merge(base: Any, patch: Any, key: str | None = None) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for name, value in patch.items():
            merged[name] = merge(base[name], value, name) if name in base else value
        return merged
    if key in MERGED_BY_NAME and isinstance(base, list) and isinstance(patch, list):
        merged_list = list(base)
        for item in patch:
            names = [existing.get("name") for existing in merged_list]
            if item.get("name") in names:
                index = names.index(item["name"])
                merged_list[index] = merge(merged_list[index], item)
            else:
                merged_list.append(item)
        return merged_list
    return patch


def _find(objects: list[Object], kind: str, name: str, directory: Path) -> Object:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{directory}: a patch targets {kind}/{name}, found {len(found)}"
    return found[0]


def _containers(obj: Object) -> list[Object]:
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    return [*spec.get("containers", []), *spec.get("initContainers", [])]


def pod_spec(obj: Object) -> Object:
    spec: Object = obj["spec"]["template"]["spec"]
    return spec


def containers(obj: Object) -> list[Object]:
    return _containers(obj)
