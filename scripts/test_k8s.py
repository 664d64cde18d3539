#!/usr/bin/env python3
"""Offline checks of the Kubernetes manifests (deploy/k8s/*/) and their images' Dockerfiles: no
cluster, no network.

    python scripts/test_k8s.py           the self-tests (unittest): the real manifests pass every
                                         check, and mutated copies of them are caught
    python scripts/test_k8s.py --check [DIR]
                                         only the checks (default: every app in APPS; DIR is one
                                         app's directory, such as deploy/k8s/hits, or a copy of it);
                                         prints each problem and exits 1 if there is any

Each app (APPS: calc-worker, hits) has its manifests in deploy/k8s/<app>/, its Dockerfile, its
Secrets made by hand and its own container checks. What is checked, for base/ and each
overlays/*/ as kustomize renders it (`kubectl kustomize` when kubectl is on PATH, else this
script's rendering of the subset used here: resources, patches by path as strategic merges or
`$patch: delete`, images; tested against kustomize's documented examples in
scripts/testdata/kustomize/, and refusing what it does not render):
  - every kustomization's `resources` and `patches` paths exist;
  - core kinds against the Kubernetes OpenAPI schemas (kubernetes-validate, bundled offline),
    strict: an unknown or misspelt field fails;
  - KEDA's ScaledObject and TriggerAuthentication field by field (CRDs have no bundled schema):
    apiVersion, known spec fields, triggers with their required metadata as strings, min <= max;
  - cross-references: scaler targets (ScaledObject, HPA) name the Deployment, and an HPA on CPU
    or memory utilisation has requests to measure it against; Service, PodDisruptionBudget and
    topology-spread selectors match the pods; Ingress backends name a Service port; probes name a
    container port; ConfigMap, Secret (made by hand: the app's external_secrets),
    PersistentVolumeClaim and ServiceAccount references exist with their keys, volume mounts
    name a volume; a PodDisruptionBudget leaves a node drain something to evict;
  - the pods' policy: non-root (never uid 0), read-only root filesystem, no privilege escalation,
    all capabilities dropped, RuntimeDefault seccomp, no API token mounted, requests and limits
    (hits: no CPU limit, on purpose), readiness and liveness (liveness no quicker to fail);
  - calc-worker: CALC_HEALTH_ADDR is the probes' port, CALC_MAX_X is the template's MaxX and the
    drain fits in terminationGracePeriodSeconds; queue names and URLs agree between the worker's
    environment and its trigger;
  - hits: hits-server's arguments (the container's, else the image's CMD) parse, it listens on
    all interfaces on a container port, every probe is GET /healthz on that port; HITS_STORE is a
    valid store, and a file: store's directory is a writable PersistentVolumeClaim mount (fsGroup
    set); on a volume without ReadWriteMany, one writer: replicas 1, strategy Recreate, no
    autoscaler above 1; a Service's pods have a preStop sleep, and terminationGracePeriodSeconds
    exceeds that sleep + --shutdown-timeout;
  - the Dockerfile (deploy/<image>/Dockerfile, read by scripts/dockerfile.py, the reader
    functions/hits/tests/image.rs runs too; one it cannot read is a problem): the binary it builds exists in the crate, the
    final image is distroless nonroot with an exec-form ENTRYPOINT, its EXPOSE is the
    Deployment's ports and its user the pods' runAsUser, no shell-form HEALTHCHECK, STOPSIGNAL
    SIGTERM if any; hits: the CMD parses, listens on the EXPOSEd port, and the HEALTHCHECK probes
    it. (An app whose Dockerfile is still being written can set dockerfile_required=False: while
    it does not exist, its checks are skipped with a note.)
"""

from __future__ import annotations

import concurrent.futures
import copy
import functools
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"

if __name__ == "__main__" and Path(sys.prefix).resolve() != VENV.resolve() and (VENV / "bin/python").exists():
    os.execv(str(VENV / "bin/python"), [str(VENV / "bin/python"), str(Path(__file__).resolve()), *sys.argv[1:]])

sys.path.insert(0, str(ROOT / "scripts"))
import yaml  # noqa: E402  (after the re-exec into the venv)

import stack  # noqa: E402
from dockerfile import Dockerfile, DockerfileError  # noqa: E402
from dockerfile import go_duration  # noqa: E402
from dockerfile import parse as parse_dockerfile  # noqa: E402
from dockerfile import read as read_dockerfile  # noqa: E402

K8S = ROOT / "deploy/k8s"
# The schemas' Kubernetes version (EKS's standard support covers it).
K8S_VERSION = "1.33"
NONROOT_UID = 65532  # distroless `nonroot`
# Notes on sub-checks that could not run (a Dockerfile not written yet): printed by --check.
SKIPPED: list[str] = []
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: ~10x faster


class Problem(Exception):
    """A manifest that cannot be rendered."""


@dataclass(frozen=True)
class App:
    """One component's manifests (deploy/k8s/<name>/) and the image they run."""

    name: str
    deployment: str  # the Deployment's name
    dockerfile: Path
    crate: Path  # the crate whose [[bin]] the Dockerfile builds
    # The app's own checks of each container of its Deployment.
    container_checks: Callable[["Container"], list[str]]
    # Secrets the app's README has you create by hand (credentials stay out of git): name -> keys.
    external_secrets: dict[str, set[str]] = field(default_factory=dict)
    # Checks of the image on its own (its CMD, say), given the ports it EXPOSEs.
    image_checks: Callable[[Dockerfile, set[int]], list[str]] | None = None
    # Whether the containers need a CPU limit (hits does without one; see its deployment.yaml).
    cpu_limit: bool = True
    # False while the Dockerfile is someone else's work in progress: its checks are skipped (with
    # a note) when it does not exist, instead of failing.
    dockerfile_required: bool = True

    @property
    def manifests(self) -> Path:
        return K8S / self.name


@dataclass
class Container:
    """One container of a Deployment, with what its app's checks need to know around it."""

    who: str  # "Deployment/x: container y", to start each problem with
    deployment: dict[str, Any]
    pod: dict[str, Any]
    container: dict[str, Any]
    env: dict[str, str | None]  # its environment (None: from a Secret)
    ports: dict[Any, Any]  # container port name -> number
    probe_ports: set[int]
    objects: dict[tuple[str, str], dict[str, Any]]
    image: Dockerfile | None  # the app's Dockerfile, None when absent


# --- Rendering. ------------------------------------------------------------------------------


def load_documents(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.load_all(f, Loader=_LOADER) if d is not None]


def kustomization(directory: Path) -> dict[str, Any]:
    path = directory / "kustomization.yaml"
    if not path.is_file():
        raise Problem(f"{directory}: no kustomization.yaml")
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def missing_paths(directory: Path) -> list[str]:
    """`resources` and `patches` paths of a kustomization (and the ones it includes) that do not exist."""
    found = []
    k = kustomization(directory)
    for entry in k.get("resources") or []:
        path = directory / entry
        if path.is_dir():
            if not (path / "kustomization.yaml").is_file():
                found.append(f"{directory.name}/kustomization.yaml: resource {entry} has no kustomization.yaml")
            else:
                found += missing_paths(path)
        elif not path.is_file():
            found.append(f"{directory.name}/kustomization.yaml: resource {entry} does not exist")
    for patch in k.get("patches") or []:
        if "path" in patch and not (directory / patch["path"]).is_file():
            found.append(f"{directory.name}/kustomization.yaml: patch {patch['path']} does not exist")
    return found


# What kustomize merges by key in a strategic merge patch of a built-in kind (the Kubernetes
# schema's patchMergeKey); any other list of such a kind, and every list of a kind kustomize has no
# schema for (a CRD's), the patch replaces.
MERGE_KEYS = {"containers": "name", "initContainers": "name", "ephemeralContainers": "name", "env": "name",
              "volumes": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath",
              "imagePullSecrets": "name", "hostAliases": "ip", "resourceClaims": "name"}
# Lists of built-in kinds merged in ways this script does not do (several keys, primitive merges):
# a patch of one needs kubectl kustomize.
UNMERGED_LISTS = {"topologySpreadConstraints", "finalizers", "ownerReferences", "conditions"}
BUILTIN_GROUPS = {"", "apps", "batch", "autoscaling", "policy", "networking.k8s.io", "rbac.authorization.k8s.io",
                  "storage.k8s.io", "scheduling.k8s.io", "coordination.k8s.io", "discovery.k8s.io",
                  "node.k8s.io", "certificates.k8s.io", "admissionregistration.k8s.io", "apiextensions.k8s.io"}


def _builtin(o: dict[str, Any]) -> bool:
    """Whether kustomize knows the object's schema (its merge keys): a built-in API group."""
    api_version = str(o.get("apiVersion", ""))
    return (api_version.rpartition("/")[0] if "/" in api_version else "") in BUILTIN_GROUPS


def strategic_merge(target: Any, patch: Any, builtin: bool = True, where: str = "patch") -> Any:
    """A strategic merge patch as kustomize applies it, for what these manifests use: maps merge,
    null or `$patch: delete` deletes, lists of a built-in kind with a merge key (MERGE_KEYS,
    container ports by containerPort, a Service's by port) merge by it — the patch's items first, in
    its order, then the rest — and other lists are replaced. Any other directive is refused."""
    if isinstance(patch, dict):
        directive = patch.get("$patch", "merge")
        others = sorted(k for k in patch if str(k).startswith("$") and k != "$patch")
        if others or directive != "merge":
            raise Problem(f"{where}: {others or f'$patch: {directive}'} needs kubectl kustomize (this script "
                          "reads $patch: delete only)")
        merged = dict(target) if isinstance(target, dict) else {}
        for key, value in patch.items():
            if key == "$patch":
                continue
            if value is None or (isinstance(value, dict) and value.get("$patch") == "delete"):
                merged.pop(key, None)
            elif isinstance(value, list):
                merged[key] = _merge_list(merged.get(key), value, key, builtin, f"{where}: {key}")
            else:
                merged[key] = strategic_merge(merged.get(key), value, builtin, f"{where}: {key}")
        return merged
    return copy.deepcopy(patch)


def _merge_list(target: Any, patch: list[Any], field: str, builtin: bool, where: str) -> list[Any]:
    if builtin and field in UNMERGED_LISTS:
        raise Problem(f"{where}: patching {field} needs kubectl kustomize (not merged here)")
    items = [i for i in [*patch, *(target if isinstance(target, list) else [])] if isinstance(i, dict)]
    key = MERGE_KEYS.get(field) if field != "ports" else (
        "containerPort" if any("containerPort" in i for i in items) else "port")
    if not builtin or key is None or not all(isinstance(i, dict) and key in i for i in patch):
        if any(isinstance(i, dict) and any(str(k).startswith("$") for k in i) for i in patch):
            raise Problem(f"{where}: a directive in a list that is replaced, not merged, needs kubectl kustomize")
        return copy.deepcopy(patch)
    old = target if isinstance(target, list) else []
    merged, matched = [], set()
    for item in patch:
        index = next((n for n, o in enumerate(old) if isinstance(o, dict) and o.get(key) == item[key]), None)
        if index is not None:
            matched.add(index)
        if item.get("$patch") == "delete":
            continue  # and one that is not there is not added
        merged.append(strategic_merge(old[index] if index is not None else {}, item, builtin,
                                      f"{where}[{key}={item[key]}]"))
    return merged + [o for n, o in enumerate(old) if n not in matched]


IMAGE_FIELDS = {"name", "newName", "newTag", "digest"}


def own_render(directory: Path) -> list[dict[str, Any]]:
    k = kustomization(directory)
    unsupported = set(k) - {"apiVersion", "kind", "resources", "patches", "images"}
    if unsupported:
        raise Problem(f"{directory}: {sorted(unsupported)} needs kubectl kustomize (this script renders "
                      "resources, patches and images only)")
    objects: list[dict[str, Any]] = []
    for entry in k.get("resources") or []:
        path = directory / entry
        objects += own_render(path) if path.is_dir() else load_documents(path)
    for patch in k.get("patches") or []:
        if set(patch) != {"path"}:
            raise Problem(f"{directory}: patch {patch} needs kubectl kustomize (only `path:` patches here)")
        for document in load_documents(directory / patch["path"]):
            key = (document.get("kind"), document.get("metadata", {}).get("name"))
            index = next((i for i, o in enumerate(objects) if (o.get("kind"), o["metadata"].get("name")) == key), None)
            if index is None:
                raise Problem(f"{directory}: patch {patch['path']} targets {key}, which is not among the resources")
            if document.get("$patch") == "delete":
                del objects[index]
            else:
                objects[index] = strategic_merge(objects[index], document, _builtin(objects[index]),
                                                 f"{directory}: patch {patch['path']}")
    for image in k.get("images") or []:
        if not set(image) <= IMAGE_FIELDS or "name" not in image:
            raise Problem(f"{directory}: image {image} needs kubectl kustomize (this script reads "
                          f"{sorted(IMAGE_FIELDS)}, with a name)")
        for o in objects:
            for c in _image_containers(o):
                name, tag, digest = _split_image(str(c.get("image", "")))
                if name != image["name"]:
                    continue
                # As kustomize: a new tag or digest replaces both the old tag and digest.
                if "newTag" in image or "digest" in image:
                    tag, digest = str(image.get("newTag", "")), str(image.get("digest", ""))
                c["image"] = str(image.get("newName", name)) + (f":{tag}" if tag else "") + (
                    f"@{digest}" if digest else "")
    return objects


def _image_containers(node: Any) -> list[dict[str, Any]]:
    """The containers and initContainers anywhere in an object, whose `image` kustomize's
    `images` sets (in any kind)."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                found += [c for c in value if isinstance(c, dict) and "image" in c]
            else:
                found += _image_containers(value)
    elif isinstance(node, list):
        for value in node:
            found += _image_containers(value)
    return found


def _split_image(image: str) -> tuple[str, str, str]:
    """`registry:5000/name:tag@sha256:...` -> (`registry:5000/name`, `tag`, `sha256:...`), as
    kustomize splits an image (a `:` or `@` counts after the first `/`)."""
    slash = image.find("/")
    start = slash if slash > 0 else 0
    at, colon = image.find("@", start), image.find(":", start)
    if at < 0 and colon < 0:
        return image, "", ""
    if at >= 0 and (colon < 0 or at < colon):
        return image[:at], "", image[at + 1:]
    if at >= 0:
        return image[:colon], image[colon + 1:at], image[at + 1:]
    return image[:colon], image[colon + 1:], ""


def kubectl_render(directory: Path) -> list[dict[str, Any]]:
    done = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise Problem(f"kubectl kustomize {directory}: {done.stderr.strip()}")
    return [d for d in yaml.load_all(done.stdout, Loader=_LOADER) if d is not None]


def render(directory: Path, use_kubectl: bool | None = None) -> list[dict[str, Any]]:
    if use_kubectl is None:
        use_kubectl = shutil.which("kubectl") is not None
    return kubectl_render(directory) if use_kubectl else own_render(directory)


# --- Checks of one rendered overlay. ---------------------------------------------------------


def _containers(o: dict[str, Any]) -> list[dict[str, Any]]:
    if o.get("kind") not in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return []
    return (((o.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []


def _name(o: dict[str, Any]) -> str:
    return f"{o.get('kind')}/{(o.get('metadata') or {}).get('name')}"


def _number(text: Any) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


_schema_results: dict[str, list[str]] = {}


def check_schema(o: dict[str, Any]) -> list[str]:
    """The object against its kind's schema; remembered, as kubernetes-validate reads the
    definitions file (megabytes) on every call and most objects recur across overlays."""
    key = json.dumps(o, sort_keys=True)
    if key not in _schema_results:
        _schema_results[key] = _check_schema(o)
    return _schema_results[key]


def _check_schema(o: dict[str, Any]) -> list[str]:
    try:
        import kubernetes_validate
    except ImportError:
        return ["kubernetes-validate is not installed: run scripts/bootstrap (requirements-dev.txt)"]
    try:
        kubernetes_validate.validate(o, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        where = ".".join(str(p) for p in e.path) or "(top)"
        return [f"{_name(o)}: {where}: {e.message}"]
    except kubernetes_validate.SchemaNotFoundError as e:
        return [f"{_name(o)}: {e.message}"]
    return []


SCALED_OBJECT_SPEC = {"scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod",
                      "idleReplicaCount", "minReplicaCount", "maxReplicaCount", "fallback", "advanced", "triggers"}
TRIGGER_FIELDS = {"type", "name", "metadata", "authenticationRef", "metricType", "useCachedMetrics"}
TRIGGER_AUTH_SPEC = {"secretTargetRef", "env", "podIdentity", "configMapTargetRef", "hashiCorpVault",
                     "azureKeyVault", "awsSecretManager", "gcpSecretManager", "boundServiceAccountToken"}


def check_keda(o: dict[str, Any], objects: dict[tuple[str, str], dict[str, Any]], app: App) -> list[str]:
    found = []
    name, spec = _name(o), o.get("spec") or {}
    if o.get("apiVersion") != "keda.sh/v1alpha1":
        found.append(f"{name}: apiVersion {o.get('apiVersion')!r} is not keda.sh/v1alpha1")
    if o.get("kind") == "TriggerAuthentication":
        allowed = TRIGGER_AUTH_SPEC
        for ref in spec.get("secretTargetRef") or []:
            missing = {"parameter", "name", "key"} - set(ref)
            if missing:
                found.append(f"{name}: secretTargetRef {ref} lacks {sorted(missing)}")
            else:
                found += _secret_key(objects, ref["name"], ref["key"], name, app)
        identity = spec.get("podIdentity")
        if identity is not None:
            if identity.get("provider") not in ("aws", "azure-workload", "gcp", "none"):
                found.append(f"{name}: podIdentity.provider {identity.get('provider')!r} is not aws, azure-workload, gcp or none")
            if identity.get("identityOwner", "keda") not in ("keda", "workload"):
                found.append(f"{name}: podIdentity.identityOwner must be keda or workload")
            if "roleArn" in identity and identity.get("identityOwner") == "workload":
                found.append(f"{name}: podIdentity.roleArn and identityOwner: workload exclude each other")
        if not set(spec) & allowed:
            found.append(f"{name}: spec names no source of credentials")
    elif o.get("kind") == "ScaledObject":
        allowed = SCALED_OBJECT_SPEC
        target = spec.get("scaleTargetRef") or {}
        if not target.get("name"):
            found.append(f"{name}: spec.scaleTargetRef.name is missing")
        low, high = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
        for field in ("pollingInterval", "cooldownPeriod", "minReplicaCount", "maxReplicaCount"):
            if field in spec and (not isinstance(spec[field], int) or isinstance(spec[field], bool) or spec[field] < 0):
                found.append(f"{name}: spec.{field} must be a whole number >= 0")
        if isinstance(low, int) and isinstance(high, int) and not (low <= high and high >= 1):
            found.append(f"{name}: minReplicaCount {low} must be <= maxReplicaCount {high} (and max >= 1)")
        triggers = spec.get("triggers")
        if not isinstance(triggers, list) or not triggers:
            found.append(f"{name}: spec.triggers must be a non-empty list")
            triggers = []
        for i, trigger in enumerate(triggers):
            found += _check_trigger(f"{name}: triggers[{i}]", trigger, objects)
    else:
        return [f"{name}: no check for this KEDA kind (ScaledObject, TriggerAuthentication)"]
    found += [f"{name}: unknown field spec.{k}" for k in sorted(set(spec) - allowed)]
    return found


def _check_trigger(where: str, trigger: dict[str, Any], objects: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    found = [f"{where}: unknown field {k}" for k in sorted(set(trigger) - TRIGGER_FIELDS)]
    metadata = trigger.get("metadata") or {}
    found += [f"{where}: metadata.{k} must be a string (KEDA's metadata is string to string), got {v!r}"
              for k, v in metadata.items() if not isinstance(v, str)]
    auth_ref = trigger.get("authenticationRef")
    auth: dict[str, Any] = {}
    if auth_ref is not None:
        kind = auth_ref.get("kind", "TriggerAuthentication")
        auth = (objects.get((kind, auth_ref.get("name"))) or {}).get("spec") or {}
        if (kind, auth_ref.get("name")) not in objects:
            found.append(f"{where}: authenticationRef names no {kind} {auth_ref.get('name')!r}")
    auth_parameters = {ref.get("parameter") for ref in auth.get("secretTargetRef") or []}
    kind = trigger.get("type")
    if kind == "rabbitmq":
        if not metadata.get("queueName"):
            found.append(f"{where}: rabbitmq needs metadata.queueName")
        if metadata.get("protocol", "auto") not in ("auto", "amqp", "http"):
            found.append(f"{where}: metadata.protocol must be auto, amqp or http")
        if metadata.get("mode") not in ("QueueLength", "MessageRate"):
            found.append(f"{where}: rabbitmq needs metadata.mode QueueLength or MessageRate")
        if not ((_number(metadata.get("value")) or 0) > 0):
            found.append(f"{where}: rabbitmq needs metadata.value, a number > 0")
        if not (metadata.get("host") or metadata.get("hostFromEnv") or "host" in auth_parameters):
            found.append(f"{where}: rabbitmq needs a host: metadata.host, hostFromEnv or a TriggerAuthentication "
                         "secretTargetRef with parameter host")
    elif kind == "aws-sqs-queue":
        if not str(metadata.get("queueURL", "")).startswith(("https://", "http://")):
            found.append(f"{where}: aws-sqs-queue needs metadata.queueURL, the queue's https:// URL")
        if not metadata.get("awsRegion"):
            found.append(f"{where}: aws-sqs-queue needs metadata.awsRegion")
        length = _number(metadata.get("queueLength", "5"))
        if length is None or length < 1 or not length.is_integer():
            found.append(f"{where}: metadata.queueLength must be a whole number >= 1")
        if not ((auth.get("podIdentity") or {}).get("provider") == "aws" or "awsRoleArn" in auth_parameters
                or {"awsAccessKeyID", "awsSecretAccessKey"} <= auth_parameters
                or metadata.get("identityOwner") == "operator"):
            found.append(f"{where}: aws-sqs-queue needs AWS credentials: a TriggerAuthentication with "
                         "podIdentity.provider aws, awsRoleArn, or access keys")
    else:
        found.append(f"{where}: trigger type {kind!r} is not checked here (rabbitmq, aws-sqs-queue)")
    return found


def _secret_key(objects: dict[tuple[str, str], dict[str, Any]], secret: str, key: str, who: str,
                app: App) -> list[str]:
    if secret in app.external_secrets:
        keys = app.external_secrets[secret]
    elif ("Secret", secret) in objects:
        o = objects[("Secret", secret)]
        keys = set(o.get("data") or {}) | set(o.get("stringData") or {})
    else:
        return [f"{who}: names Secret {secret!r}, which is neither rendered nor among {app.name}'s external_secrets"]
    return [] if key in keys else [f"{who}: Secret {secret} has no key {key!r} (it has {sorted(keys)})"]


def _environment(pod: dict[str, Any], container: dict[str, Any], objects: dict[tuple[str, str], dict[str, Any]],
                 who: str, app: App) -> tuple[dict[str, str | None], list[str]]:
    """The container's environment (None: from a Secret) and the references that do not resolve."""
    env: dict[str, str | None] = {}
    found = []
    for source in container.get("envFrom") or []:
        ref = source.get("configMapRef") or source.get("secretRef") or {}
        kind = "ConfigMap" if "configMapRef" in source else "Secret"
        if (kind, ref.get("name")) not in objects:
            if not ref.get("optional"):
                found.append(f"{who}: envFrom names no {kind} {ref.get('name')!r}")
            continue
        data = objects[(kind, ref["name"])].get("data") or {}
        env.update({k: (str(v) if kind == "ConfigMap" else None) for k, v in data.items()})
    for item in container.get("env") or []:
        source = item.get("valueFrom") or {}
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            data = (objects.get(("ConfigMap", ref.get("name"))) or {}).get("data")
            if data is None or ref.get("key") not in data:
                found.append(f"{who}: env {item['name']} names ConfigMap {ref.get('name')} key {ref.get('key')!r}, "
                             "which does not exist")
            env[item["name"]] = None if data is None else data.get(ref.get("key"))
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            found += _secret_key(objects, ref.get("name"), ref.get("key"), f"{who}: env {item['name']}", app)
            env[item["name"]] = None
        else:
            env[item["name"]] = item.get("value", "")
    return env, found


def _pod_labels(deployment: dict[str, Any]) -> dict[str, Any]:
    return (((deployment.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}


def _selects(selector: dict[str, Any], labels: dict[str, Any]) -> bool:
    """Whether a label selector (matchLabels, matchExpressions) selects these labels; an empty one
    selects nothing here (in a PodDisruptionBudget it would select every pod of the namespace)."""
    expressions = selector.get("matchExpressions") or []
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in expressions:
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        if ((op == "In" and labels.get(key) not in values) or (op == "NotIn" and labels.get(key, object()) in values)
                or (op == "Exists" and key not in labels) or (op == "DoesNotExist" and key in labels)):
            return False
    return bool(selector.get("matchLabels") or expressions)


def _scalers(objects: dict[tuple[str, str], dict[str, Any]], deployment: str) -> list[dict[str, Any]]:
    return [o for o in objects.values() if o.get("kind") in ("HorizontalPodAutoscaler", "ScaledObject")
            and ((o.get("spec") or {}).get("scaleTargetRef") or {}).get("name") == deployment]


def _replica_range(objects: dict[tuple[str, str], dict[str, Any]], deployment: dict[str, Any]) -> tuple[int, int]:
    """The fewest and most replicas the Deployment can have: its autoscalers' bounds, else its own."""
    scalers = _scalers(objects, deployment["metadata"]["name"])
    if not scalers:
        replicas = (deployment.get("spec") or {}).get("replicas", 1)
        return replicas, replicas
    hpa = lambda s: s["kind"] == "HorizontalPodAutoscaler"  # noqa: E731
    return (min(s["spec"].get("minReplicas", 1) if hpa(s) else s["spec"].get("minReplicaCount", 0) for s in scalers),
            max(s["spec"].get("maxReplicas", 0) if hpa(s) else s["spec"].get("maxReplicaCount", 100) for s in scalers))


def _failure_window(probe: dict[str, Any]) -> float:
    """Seconds of failing answers before a probe gives up on the container."""
    return probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3)


def check_workload(o: dict[str, Any], objects: dict[tuple[str, str], dict[str, Any]], app: App,
                   image: Dockerfile | None) -> list[str]:
    found = []
    name, spec = _name(o), o.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or {}
    labels = _pod_labels(o)
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    if not selector or any(labels.get(k) != v for k, v in selector.items()):
        found.append(f"{name}: spec.selector.matchLabels {selector} must match the pod labels {labels}")
    account = pod.get("serviceAccountName")
    if account and ("ServiceAccount", account) not in objects:
        found.append(f"{name}: serviceAccountName {account!r} names no ServiceAccount")
    token = pod.get("automountServiceAccountToken",
                    (objects.get(("ServiceAccount", account)) or {}).get("automountServiceAccountToken"))
    if token is not False:
        found.append(f"{name}: automountServiceAccountToken must be false (on the pod or its ServiceAccount): "
                     "the pods never call the Kubernetes API")
    pod_security = pod.get("securityContext") or {}
    if (pod_security.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        found.append(f"{name}: securityContext.seccompProfile.type must be RuntimeDefault")
    for i, spread in enumerate(pod.get("topologySpreadConstraints") or []):
        if not _selects(spread.get("labelSelector") or {}, labels):
            found.append(f"{name}: topologySpreadConstraints[{i}].labelSelector does not select the pod's own "
                         "labels, so it spreads nothing")
    volumes = {v.get("name"): v for v in pod.get("volumes") or []}
    for volume in volumes.values():
        claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
        if claim is not None and ("PersistentVolumeClaim", claim) not in objects:
            found.append(f"{name}: volume {volume['name']} names no PersistentVolumeClaim {claim!r}")
        config_map = volume.get("configMap") or {}
        if config_map and not config_map.get("optional") and ("ConfigMap", config_map.get("name")) not in objects:
            found.append(f"{name}: volume {volume['name']} names no ConfigMap {config_map.get('name')!r}")
        secret = (volume.get("secret") or {}).get("secretName")
        if (secret is not None and not volume["secret"].get("optional") and ("Secret", secret) not in objects
                and secret not in app.external_secrets):
            found.append(f"{name}: volume {volume['name']} names Secret {secret!r}, which is neither rendered "
                         f"nor among {app.name}'s external_secrets")
    for container in pod.get("containers") or []:
        who = f"{name}: container {container.get('name')}"
        security = container.get("securityContext") or {}
        if not (security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is True):
            found.append(f"{who}: runAsNonRoot must be true")
        if security.get("runAsUser", pod_security.get("runAsUser")) == 0:
            found.append(f"{who}: runAsUser 0 is root (the image's user is {NONROOT_UID}, nonroot)")
        if security.get("allowPrivilegeEscalation") is not False:
            found.append(f"{who}: allowPrivilegeEscalation must be false")
        if security.get("readOnlyRootFilesystem") is not True:
            found.append(f"{who}: readOnlyRootFilesystem must be true")
        if "ALL" not in ((security.get("capabilities") or {}).get("drop") or []):
            found.append(f"{who}: capabilities.drop must include ALL")
        resources = container.get("resources") or {}
        limits = {"cpu", "memory"} if app.cpu_limit else {"memory"}
        for part, needed in (("requests", {"cpu", "memory"}), ("limits", limits)):
            missing = needed - set(resources.get(part) or {})
            if missing:
                found.append(f"{who}: resources.{part} lacks {sorted(missing)}")
        for mount in container.get("volumeMounts") or []:
            if mount.get("name") not in volumes:
                found.append(f"{who}: volumeMount {mount.get('mountPath')} names no volume {mount.get('name')!r}")
        ports = {p.get("name"): p.get("containerPort") for p in container.get("ports") or []}
        probe_ports = set()
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if probe not in container:
                if probe != "startupProbe":
                    found.append(f"{who}: {probe} is missing")
                continue
            port = (container[probe].get("httpGet") or {}).get("port")
            number = ports.get(port) if isinstance(port, str) else port
            if number not in ports.values():
                found.append(f"{who}: {probe} port {port!r} is not a container port ({ports})")
            else:
                probe_ports.add(number)
        if "readinessProbe" in container and "livenessProbe" in container:
            live, ready = _failure_window(container["livenessProbe"]), _failure_window(container["readinessProbe"])
            if live < ready:
                found.append(f"{who}: livenessProbe gives up after {live:g} s, before readinessProbe ({ready:g} s): "
                             "a slow pod would be restarted instead of taken out of rotation")
        env, problems = _environment(pod, container, objects, who, app)
        found += problems
        found += app.container_checks(Container(who, o, pod, container, env, ports, probe_ports, objects, image))
    return found


def calc_worker_container(c: Container) -> list[str]:
    """calc-worker-server's settings against its probes, the template and its grace period."""
    found, who, env = [], c.who, c.env
    max_x = template_max_x()
    grace = c.pod.get("terminationGracePeriodSeconds", 30)
    health = env.get("CALC_HEALTH_ADDR") or "0.0.0.0:8080"
    if c.probe_ports and int(health.rsplit(":", 1)[-1]) not in c.probe_ports:
        found.append(f"{who}: CALC_HEALTH_ADDR {health} is not the probes' port {sorted(c.probe_ports)}")
    worker_x = _number(env.get("CALC_MAX_X", "10"))
    if worker_x != max_x:
        found.append(f"{who}: CALC_MAX_X {env.get('CALC_MAX_X')} is not the template's MaxX {max_x}")
    drain = _number(env.get("CALC_SHUTDOWN_TIMEOUT", "30")) or 0
    if not (max_x + 5 <= drain < grace):
        found.append(f"{who}: need MaxX + 5 s ({max_x + 5}) <= CALC_SHUTDOWN_TIMEOUT ({drain}) < "
                     f"terminationGracePeriodSeconds ({grace}) for the drain to finish before SIGKILL")
    source = env.get("CALC_SOURCE", "")
    if source is not None and not source.startswith(("amqp://", "amqps://", "https://", "http://")):
        found.append(f"{who}: CALC_SOURCE {source!r} is neither an amqp:// URL nor a queue URL")
    return found


# hits-server's options and their defaults (functions/hits/src/server.rs).
HITS_SERVER_OPTIONS = {"--addr": "0.0.0.0:8000", "--shutdown-timeout": "25"}
HITS_HEALTH_PATH = "/healthz"


def hits_server_options(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """hits-server's options from its arguments as `Options::parse` reads them (`--flag value` or
    `--flag=value`), with the problems that would make it exit 2 at start."""
    options, problems = dict(HITS_SERVER_OPTIONS), []
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        flag, has_value, value = arg.partition("=")
        if flag not in options:
            problems.append(f"unknown argument {arg!r}")
            continue
        if not has_value:
            if not rest:
                problems.append(f"{flag} needs a value")
                break
            value = rest.pop(0)
        options[flag] = value
    host, _, port = options["--addr"].rpartition(":")
    if not (_ip_literal(host) and port.isdigit() and 0 < int(port) < 65536):
        problems.append(f"--addr {options['--addr']!r} is not IP:PORT with a fixed port (a SocketAddr: no host names)")
    timeout = _number(options["--shutdown-timeout"])
    if timeout is None or timeout != timeout or timeout < 0 or timeout == float("inf"):
        problems.append(f"--shutdown-timeout {options['--shutdown-timeout']!r} is not a number of seconds")
    return options, problems


def _ip_literal(host: str) -> bool:
    """An address as Rust's SocketAddr reads it: 1.2.3.4, or [v6] in brackets."""
    bracketed = host.startswith("[") and host.endswith("]")
    try:
        address = ipaddress.ip_address(host[1:-1] if bracketed else host)
    except ValueError:
        return False
    return bracketed == (address.version == 6)


def hits_store_problem(value: str) -> str | None:
    """Why `HITS_STORE` would stop hits-server at start (crates/counter/src/spec.rs), or None."""
    value = value.strip()
    if value in ("", "memory"):
        return None
    scheme, colon, rest = value.partition(":")
    if not colon or scheme not in ("file", "dynamodb", "s3"):
        return "unknown store (memory | file:<path> | dynamodb:<table> | s3:<bucket>/<key>)"
    if scheme == "file" and not rest:
        return "file: needs a path"
    if scheme == "dynamodb":
        table, sharded, shard = rest.partition("#")
        numbers = re.fullmatch(r"(\d+)/(\d+)", shard)
        if sharded and not (numbers and int(numbers[1]) < int(numbers[2]) <= 10):
            return "a shard is #<index>/<shards>, 0 <= index < shards <= 10"
        if not re.fullmatch(r"[A-Za-z0-9_.-]{3,255}", table):
            return "a DynamoDB table name is 3-255 characters of [A-Za-z0-9_.-]"
    if scheme == "s3" and not re.fullmatch(r"[^/]+/.+", rest):
        return "s3: needs <bucket>/<key>"
    return None


def hits_container(c: Container) -> list[str]:
    """hits-server: its arguments, probes, store and drain against the rest of the manifests."""
    found, who, container, pod = [], c.who, c.container, c.pod
    # The arguments hits-server gets: the container's args, else the image's CMD (a `command`
    # without args drops the CMD too), else none.
    if "args" in container:
        args, origin = [str(a) for a in container["args"] or []], "args"
    elif "command" in container:
        args, origin = [], "command without args"
    elif c.image is not None and c.image.final.cmd is not None:
        args, origin = c.image.final.cmd, f"{c.image.path.name}'s CMD"
    else:
        args, origin = [], "the defaults"
    options, problems = hits_server_options(args)
    found += [f"{who}: {origin}: {p} (hits-server would exit 2)" for p in problems]
    if problems:
        return found
    host, _, port_text = options["--addr"].rpartition(":")
    port, drain = int(port_text), float(options["--shutdown-timeout"])
    if host not in ("0.0.0.0", "[::]"):
        found.append(f"{who}: --addr {options['--addr']} listens on {host} only; the kubelet's probes and the "
                     "Service reach the pod IP (0.0.0.0 or [::])")
    if port not in c.ports.values():
        found.append(f"{who}: hits-server listens on {port} ({origin}), which is no containerPort ({c.ports})")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        if probe not in container:
            continue
        get = container[probe].get("httpGet")
        if get is None:
            found.append(f"{who}: {probe} must be httpGet {HITS_HEALTH_PATH} (the image has no shell)")
            continue
        if get.get("path") != HITS_HEALTH_PATH:
            found.append(f"{who}: {probe} path {get.get('path')!r} is not {HITS_HEALTH_PATH} (any other path is a "
                         "404, and /hits would count every probe)")
        number = c.ports.get(get.get("port")) if isinstance(get.get("port"), str) else get.get("port")
        if number is not None and number != port:
            found.append(f"{who}: {probe} port {get.get('port')!r} is {number}, but hits-server listens on {port}")
    # Stopping: the preStop sleep, then SIGTERM and the drain, all within the grace period.
    grace = pod.get("terminationGracePeriodSeconds", 30)
    sleep = (((container.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}).get("seconds", 0)
    if not grace > sleep + drain:
        found.append(f"{who}: terminationGracePeriodSeconds ({grace}) must exceed the preStop sleep ({sleep} s) + "
                     f"--shutdown-timeout ({drain:g} s) = {sleep + drain:g} s, or SIGKILL cuts the drain short")
    served = [s for (kind, s), o in c.objects.items() if kind == "Service"
              and _selects({"matchLabels": (o.get("spec") or {}).get("selector") or {}}, _pod_labels(c.deployment))]
    if served and not sleep:
        found.append(f"{who}: Service/{served[0]} sends it requests, but it has no lifecycle.preStop.sleep: SIGTERM "
                     "would close the listener while the endpoint is still being removed (connection refused)")
    # The store.
    store = c.env.get("HITS_STORE", (c.image.final.env_dict() if c.image is not None else {}).get("HITS_STORE", "memory"))
    if store is None:
        return found  # from a Secret: not known here
    problem = hits_store_problem(store)
    if problem is not None:
        return found + [f"{who}: HITS_STORE {store!r}: {problem}"]
    if not store.strip().startswith("file:"):
        return found
    path = store.strip()[len("file:"):]
    if not path.startswith("/"):
        return found + [f"{who}: HITS_STORE {store}: the path must be absolute (the image's working directory "
                        "is on the read-only root filesystem)"]
    directory = path.rsplit("/", 1)[0] or "/"
    mounts = [m for m in container.get("volumeMounts") or []
              if f"{directory}/".startswith(m.get("mountPath", "").rstrip("/") + "/")]
    if not mounts:
        return found + [f"{who}: HITS_STORE {store}: {directory} is on no mounted volume; the root filesystem is "
                        "read-only, and the count must outlive the pod"]
    mount = max(mounts, key=lambda m: len(m["mountPath"]))
    if mount.get("readOnly"):
        found.append(f"{who}: HITS_STORE {store}: volumeMount {mount['mountPath']} is readOnly")
    volume = next((v for v in pod.get("volumes") or [] if v.get("name") == mount.get("name")), {})
    claim_name = (volume.get("persistentVolumeClaim") or {}).get("claimName")
    if claim_name is None:
        kinds = sorted(set(volume) - {"name"}) or ["no"]
        return found + [f"{who}: HITS_STORE {store}: volume {mount.get('name')} is {kinds[0]}, not a "
                        "persistentVolumeClaim: the count would not outlive the pod"]
    if (pod.get("securityContext") or {}).get("fsGroup") is None:
        found.append(f"{who}: HITS_STORE {store}: the pod needs securityContext.fsGroup ({NONROOT_UID}) to write "
                     "to a new volume, whose root belongs to root")
    claim = c.objects.get(("PersistentVolumeClaim", claim_name))
    if claim is None:
        return found  # reported by check_workload
    modes = set((claim.get("spec") or {}).get("accessModes") or [])
    if "ReadWriteMany" in modes:
        return found  # several nodes may write (EFS); flock serialises them
    # One writer: a ReadWriteOnce volume attaches to one node (ReadWriteOncePod: to one pod).
    single = f"PersistentVolumeClaim {claim_name} is {'/'.join(sorted(modes)) or 'ReadWriteOnce'}, one writer"
    replicas = (c.deployment.get("spec") or {}).get("replicas", 1)
    if replicas != 1:
        found.append(f"{who}: replicas {replicas}, but {single}: a pod on another node would wait for it forever")
    strategy = ((c.deployment.get("spec") or {}).get("strategy") or {}).get("type", "RollingUpdate")
    if strategy != "Recreate":
        found.append(f"{who}: strategy {strategy}, but {single}: the new pod would wait for the volume the old "
                     "one holds, and the rollout would hang (use Recreate)")
    for scaler in _scalers(c.objects, c.deployment["metadata"]["name"]):
        high = (scaler["spec"].get("maxReplicas", 0) if scaler["kind"] == "HorizontalPodAutoscaler"
                else scaler["spec"].get("maxReplicaCount", 100))
        if high > 1:
            found.append(f"{who}: {_name(scaler)} scales it up to {high} replicas, but {single}")
    return found


def check_scalers(objects: dict[tuple[str, str], dict[str, Any]], app: App) -> list[str]:
    """Scalers, Services, PodDisruptionBudgets and Ingresses against what they name."""
    found = []
    scaled: dict[str, list[str]] = {}
    deployments = [d for d in objects.values() if d.get("kind") == "Deployment"]
    for (kind, name), o in objects.items():
        spec = o.get("spec") or {}
        if kind in ("ScaledObject", "HorizontalPodAutoscaler"):
            target = spec.get("scaleTargetRef") or {}
            target_kind = target.get("kind", "Deployment")
            deployment = objects.get((target_kind, target.get("name")))
            if deployment is None or target.get("apiVersion", "apps/v1") != "apps/v1":
                found.append(f"{kind}/{name}: scaleTargetRef names no apps/v1 {target_kind} {target.get('name')!r}")
                continue
            scaled.setdefault(target["name"], []).append(f"{kind}/{name}")
            container = _containers(deployment)[0]
            env, _ = _environment({}, container, objects, "", app)
            for i, trigger in enumerate(spec.get("triggers") or []):
                metadata, where = trigger.get("metadata") or {}, f"{kind}/{name}: triggers[{i}]"
                source = env.get("CALC_SOURCE")
                if trigger.get("type") == "rabbitmq":
                    if source is not None and not source.startswith("amqp"):
                        found.append(f"{where}: scales on RabbitMQ, but the worker's CALC_SOURCE is {source}")
                    if metadata.get("queueName") != env.get("CALC_QUEUE", "calc"):
                        found.append(f"{where}: queueName {metadata.get('queueName')!r} is not the worker's "
                                     f"CALC_QUEUE {env.get('CALC_QUEUE', 'calc')!r}")
                if trigger.get("type") == "aws-sqs-queue":
                    if metadata.get("queueURL") != source:
                        found.append(f"{where}: queueURL {metadata.get('queueURL')!r} is not the worker's "
                                     f"CALC_SOURCE {source!r}")
                    if metadata.get("awsRegion") != env.get("AWS_REGION"):
                        found.append(f"{where}: awsRegion {metadata.get('awsRegion')!r} is not the worker's "
                                     f"AWS_REGION {env.get('AWS_REGION')!r}")
            for metric in spec.get("metrics") or []:
                labels = ((((metric.get("external") or {}).get("metric") or {}).get("selector") or {})
                          .get("matchLabels") or {})
                if "queue" in labels and labels["queue"] != env.get("CALC_QUEUE", "calc"):
                    found.append(f"{kind}/{name}: the metric's queue {labels['queue']!r} is not the worker's CALC_QUEUE")
                resource = metric.get("resource") or {}
                if metric.get("type") == "Resource" and (resource.get("target") or {}).get("type") == "Utilization":
                    found += [f"{kind}/{name}: scales on {resource.get('name')} utilisation, but container "
                              f"{c.get('name')} requests no {resource.get('name')} to measure it against"
                              for c in _containers(deployment)
                              if resource.get("name") not in ((c.get("resources") or {}).get("requests") or {})]
            if kind == "HorizontalPodAutoscaler" and spec.get("minReplicas", 1) > spec.get("maxReplicas", 0):
                found.append(f"{kind}/{name}: minReplicas must be <= maxReplicas")
        if kind == "Service":
            selector = spec.get("selector") or {}
            pods = [d for d in deployments if all(_pod_labels(d).get(k) == v for k, v in selector.items())]
            if not selector or not pods:
                found.append(f"Service/{name}: selector {selector} matches no Deployment's pods")
            for port in spec.get("ports") or []:
                target = port.get("targetPort", port.get("port"))
                known = {p.get(f) for d in pods for c in _containers(d) for p in c.get("ports") or []
                         for f in ("name", "containerPort")}
                if pods and target not in known:
                    found.append(f"Service/{name}: targetPort {target!r} is no container port")
        if kind == "PodDisruptionBudget":
            found += _check_budget(o, objects, deployments)
        if kind == "Ingress":
            rules = [path.get("backend") for rule in spec.get("rules") or []
                     for path in (rule.get("http") or {}).get("paths") or []]
            for backend in [spec.get("defaultBackend"), *rules]:
                service = (backend or {}).get("service")
                if service is None:
                    continue
                target = objects.get(("Service", service.get("name")))
                port = service.get("port") or {}
                ports = (target or {}).get("spec", {}).get("ports") or []
                if target is None:
                    found.append(f"Ingress/{name}: backend names no Service {service.get('name')!r}")
                elif not any(("name" in port and p.get("name") == port["name"])
                             or ("number" in port and p.get("port") == port["number"]) for p in ports):
                    found.append(f"Ingress/{name}: backend port {port} is no port of Service/{service.get('name')}")
    for target, scalers in scaled.items():
        if len(scalers) > 1:
            found.append(f"Deployment/{target} has {len(scalers)} autoscalers ({', '.join(scalers)}); they would fight")
    return found


def _check_budget(o: dict[str, Any], objects: dict[tuple[str, str], dict[str, Any]],
                  deployments: list[dict[str, Any]]) -> list[str]:
    """A PodDisruptionBudget covers a Deployment's pods and still lets a node drain evict one."""
    name, spec = _name(o), o.get("spec") or {}
    found = []
    if ("minAvailable" in spec) == ("maxUnavailable" in spec):
        found.append(f"{name}: set exactly one of minAvailable and maxUnavailable")
    pods = [d for d in deployments if _selects(spec.get("selector") or {}, _pod_labels(d))]
    if not pods:
        found.append(f"{name}: selector {spec.get('selector')} matches no Deployment's pods")
    for deployment in pods:
        fewest = max(_replica_range(objects, deployment)[0], 1)

        def count(value: Any) -> int:  # percentages round up, as the disruption controller does
            text = str(value)
            return -(-int(text[:-1]) * fewest // 100) if text.endswith("%") else int(text)

        if "maxUnavailable" in spec and count(spec["maxUnavailable"]) < 1:
            blocked = f"maxUnavailable {spec['maxUnavailable']}"
        elif "minAvailable" in spec and "maxUnavailable" not in spec and count(spec["minAvailable"]) >= fewest:
            blocked = f"minAvailable {spec['minAvailable']} with {fewest} replica(s)"
        else:
            continue
        found.append(f"{name}: {blocked} of {_name(deployment)}: a node drain could never evict a pod "
                     "(use maxUnavailable: 1)")
    return found


def check_objects(documents: list[dict[str, Any]], app: App, image: Dockerfile | None = None) -> list[str]:
    found = []
    objects: dict[tuple[str, str], dict[str, Any]] = {}
    for o in documents:
        key = (o.get("kind"), (o.get("metadata") or {}).get("name"))
        if not all(key) or not o.get("apiVersion"):
            found.append(f"{_name(o)}: needs apiVersion, kind and metadata.name")
            continue
        if key in objects:
            found.append(f"{_name(o)} is declared twice")
        objects[key] = o
    for o in objects.values():
        if str(o["apiVersion"]).startswith("keda.sh/"):
            found += check_keda(o, objects, app)
        else:
            found += check_schema(o)
        if o["kind"] == "Deployment":
            found += check_workload(o, objects, app, image)
    return found + check_scalers(objects, app)


# --- The Dockerfile. --------------------------------------------------------------------------


def _user_id(user: str) -> int | None:
    """USER's uid: a number, or distroless' `nonroot`."""
    name = user.split(":", 1)[0]
    return NONROOT_UID if name == "nonroot" else int(name) if name.isdigit() else None


def check_dockerfile(image: Dockerfile, deployment: dict[str, Any] | None, app: App) -> list[str]:
    found = []
    path, stages, final = image.path, image.stages, image.final
    froms = [stage.image for stage in stages]
    if not froms[0].startswith("rust:"):
        found.append(f"{path.name}: the first stage must build with a rust: image, not {froms[:1]}")
    if froms[-1] != "gcr.io/distroless/cc-debian12:nonroot":
        found.append(f"{path.name}: the final image must be gcr.io/distroless/cc-debian12:nonroot, not {froms[-1]}")
    bins = set(re.findall(r'name\s*=\s*"([^"]+)"', (app.crate / "Cargo.toml").read_text()))
    built = re.findall(r"--bin\s+(\S+)", " ".join(run for stage in stages for run in stage.runs))
    if not built or any(b not in bins for b in built):
        found.append(f"{path.name}: builds {built}, not a [[bin]] of {app.crate.relative_to(ROOT)} ({sorted(bins)})")
    for stage in stages:
        for copied in stage.copies:
            if copied.source_stage is None:
                found += [f"{path.name}: COPY {source}: no such path in the repository"
                          for source in copied.sources if not (ROOT / source).exists()]
    command = final.entrypoint
    if command is None:
        found.append(f"{path.name}: ENTRYPOINT must be exec form (a JSON array), so the process is PID 1 and "
                     "gets SIGTERM")
    elif built and Path(command[0]).name != built[0]:
        found.append(f"{path.name}: ENTRYPOINT runs {command[0]}, not the binary it builds ({built[0]})")
    users = [final.user] if final.user is not None else []
    if users not in (["nonroot"], ["nonroot:nonroot"], [str(NONROOT_UID)], [f"{NONROOT_UID}:{NONROOT_UID}"]):
        found.append(f"{path.name}: the final stage must run as USER nonroot ({NONROOT_UID}), not {users}")
    health = final.healthcheck if final.healthcheck is not None and final.healthcheck.test != ["NONE"] else None
    probe = health.argv if health is not None else None
    if health is not None and probe is None:
        # Distroless has no shell: a shell-form HEALTHCHECK could never run.
        found.append(f"{path.name}: HEALTHCHECK CMD must be exec form (a JSON array): the image has no shell")
    elif probe is not None and command is not None and probe[0] != command[0]:
        found.append(f"{path.name}: HEALTHCHECK runs {probe[0]}, not the image's binary {command[0]} (no other "
                     "program is in a distroless image)")
    signal = (final.stopsignal or "").upper()
    if signal not in ("", "SIGTERM", "TERM", "15"):
        found.append(f"{path.name}: STOPSIGNAL {signal}: the drain starts on SIGTERM, and the kubelet sends "
                     "the image's STOPSIGNAL")
    exposed = {int(p.split("/")[0]) for p in final.expose}
    if deployment is not None:
        pod = deployment["spec"]["template"]["spec"]
        ports = {p["containerPort"] for c in pod["containers"] for p in c.get("ports") or []}
        if exposed != ports:
            found.append(f"{path.name}: EXPOSE {sorted(exposed)} is not the Deployment's ports {sorted(ports)}")
        image_uid = _user_id(users[-1]) if users else None
        for c in pod["containers"]:
            uid = (c.get("securityContext") or {}).get("runAsUser", (pod.get("securityContext") or {}).get("runAsUser"))
            if uid is not None and uid != (image_uid or NONROOT_UID):
                found.append(f"{path.name}: the image runs as {image_uid or NONROOT_UID}, the Deployment's "
                             f"container {c.get('name')} as {uid}")
    if app.image_checks is not None:
        found += [f"{path.name}: {p}" for p in app.image_checks(image, exposed)]
    return found


def hits_image(image: Dockerfile, exposed: set[int]) -> list[str]:
    """hits-server's CMD parses and listens on the port the image EXPOSEs."""
    cmd = image.final.cmd
    options, problems = hits_server_options(cmd or [])
    found = [f"CMD {cmd}: {p} (hits-server would exit 2)" for p in problems]
    port = int(options["--addr"].rpartition(":")[2]) if not problems else None
    if port is not None and port not in exposed:
        found.append(f"CMD listens on {port}, which it does not EXPOSE ({sorted(exposed)})")
    probe = image.final.healthcheck.argv if image.final.healthcheck is not None else None
    if probe is not None and port is not None and probe[1:2] == ["healthcheck"]:
        # `hits-server healthcheck [--addr HOST:PORT]`, 127.0.0.1:8000 by default.
        addr = "127.0.0.1:8000"
        for i, arg in enumerate(probe[2:], start=2):
            if arg.startswith("--addr="):
                addr = arg.split("=", 1)[1]
            elif arg == "--addr" and i + 1 < len(probe):
                addr = probe[i + 1]
        if addr.rpartition(":")[2] != str(port):
            found.append(f"HEALTHCHECK probes {addr}, but CMD listens on port {port}")
    return found


# --- Everything. -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def template_max_x() -> float:
    return float(stack.load_template()["Parameters"]["MaxX"]["Default"])


APPS = (
    App(name="calc-worker", deployment="calc-worker", dockerfile=ROOT / "deploy/calc-worker/Dockerfile",
        crate=ROOT / "functions/calc-worker", container_checks=calc_worker_container,
        external_secrets={"calc-worker-amqp": {"url"}}),
    App(name="hits", deployment="hits-server", dockerfile=ROOT / "deploy/hits-server/Dockerfile",
        crate=ROOT / "functions/hits", container_checks=hits_container, image_checks=hits_image,
        cpu_limit=False),
)


def app_for(root: Path) -> App:
    """The app whose manifests `root` holds: by the directory's name, else by base/'s Deployment."""
    for app in APPS:
        if root.name == app.name:
            return app
    try:
        names = {d["metadata"]["name"] for d in own_render(root / "base") if d.get("kind") == "Deployment"}
    except (Problem, yaml.YAMLError, OSError, KeyError):
        names = set()
    for app in APPS:
        if app.deployment in names:
            return app
    raise Problem(f"{root}: not the manifests of an app in APPS ({', '.join(a.name for a in APPS)})")


def check(root: Path | None = None, dockerfile: Path | None = None, use_kubectl: bool | None = None,
          app: App | None = None) -> list[str]:
    """Every problem of the manifests under `root` (base/ and overlays/*/) and their Dockerfile;
    without `root`, of every app in APPS."""
    if root is None:
        return [f"{a.name}/{p}" for a in APPS for p in check(a.manifests, use_kubectl=use_kubectl, app=a)]
    app = app or app_for(root)
    dockerfile = dockerfile or app.dockerfile
    found = []
    image = None
    if dockerfile.is_file():
        try:
            image = read_dockerfile(dockerfile)
        except DockerfileError as e:
            found.append(str(e))
    elif app.dockerfile_required:
        found.append(f"{dockerfile}: no such Dockerfile")
    else:
        note = f"{app.name}: {dockerfile} does not exist (yet): its checks are skipped"
        if note not in SKIPPED:
            SKIPPED.append(note)
    overlays = root / "overlays"
    directories = [root / "base", *sorted(p for p in (overlays.iterdir() if overlays.is_dir() else []) if p.is_dir())]
    base_deployment = None

    def rendered(directory: Path) -> list[dict[str, Any]] | list[str]:
        """The directory's objects, or its problems (strings)."""
        try:
            return missing_paths(directory) or render(directory, use_kubectl)
        except (Problem, yaml.YAMLError) as e:
            return [str(e)]

    # `kubectl kustomize` takes a third of a second a directory: all of them at once.
    with concurrent.futures.ThreadPoolExecutor() as pool:
        renderings = list(pool.map(rendered, directories))
    for directory, documents in zip(directories, renderings):
        label = directory.relative_to(root)
        if any(isinstance(d, str) for d in documents):
            found += [f"{label}: {m}" for m in documents]
            continue
        found += [f"{label}: {p}" for p in check_objects(documents, app, image)]
        if directory.name == "base":
            base_deployment = next((d for d in documents if d.get("kind") == "Deployment"), None)
    return found + (check_dockerfile(image, base_deployment, app) if image is not None else [])


# --- Self-tests. -----------------------------------------------------------------------------

CALC_WORKER, HITS = APPS


class TheManifests(unittest.TestCase):
    def test_pass_every_check(self) -> None:
        problems = check()
        self.assertEqual(problems, [], "\n" + "\n".join(problems))

    def test_pass_with_this_scripts_own_rendering_too(self) -> None:
        problems = check(use_kubectl=False)
        self.assertEqual(problems, [], "\n" + "\n".join(problems))

    @unittest.skipUnless(shutil.which("kubectl"), "kubectl is not on PATH")
    def test_own_rendering_is_kubectl_kustomizes(self) -> None:
        key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
        for app in APPS:
            for directory in [app.manifests / "base", *sorted((app.manifests / "overlays").iterdir())]:
                with self.subTest(app=app.name, directory=directory.name):
                    self.assertEqual(sorted(own_render(directory), key=key), sorted(kubectl_render(directory), key=key))

    def test_every_app_directory_is_checked(self) -> None:
        self.assertEqual(sorted(p.name for p in K8S.iterdir() if p.is_dir()), sorted(a.name for a in APPS))

    def test_the_dockerfiles(self) -> None:
        for app in APPS:
            with self.subTest(app=app.name):
                if not app.dockerfile.is_file() and not app.dockerfile_required:
                    self.skipTest(f"{app.dockerfile.relative_to(ROOT)} does not exist yet: its checks are skipped")
                self.assertTrue(app.dockerfile.is_file(), app.dockerfile)


# kustomize's own documented examples (scripts/testdata/kustomize/README.md): each renders its
# overlay/ (else itself) to its expected.yaml.
KUSTOMIZE_TESTDATA = ROOT / "scripts/testdata/kustomize"
KUSTOMIZE_CASES = sorted(p for p in KUSTOMIZE_TESTDATA.iterdir() if p.is_dir())


def _case_directory(case: Path) -> Path:
    return case / "overlay" if (case / "overlay").is_dir() else case


def _by_kind_and_name(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(documents, key=lambda o: (str(o.get("kind")), str((o.get("metadata") or {}).get("name"))))


class TheRendering(unittest.TestCase):
    """This script's own kustomize subset, on the cases the manifests use."""

    def test_a_delete_patch_removes_the_object(self) -> None:
        kinds = {o["kind"] for o in own_render(HITS.manifests / "overlays/file-store")}
        self.assertNotIn("HorizontalPodAutoscaler", kinds)
        self.assertIn("HorizontalPodAutoscaler", {o["kind"] for o in own_render(HITS.manifests / "base")})

    def test_a_null_removes_a_field(self) -> None:
        documents = own_render(HITS.manifests / "overlays/file-store")
        deployment = next(d for d in documents if d["kind"] == "Deployment")
        budget = next(d for d in documents if d["kind"] == "PodDisruptionBudget")
        self.assertEqual(deployment["spec"]["strategy"], {"type": "Recreate"})
        self.assertEqual(budget["spec"]["maxUnavailable"], 1)
        self.assertNotIn("minAvailable", budget["spec"])

    def test_image_names_and_tags(self) -> None:
        self.assertEqual(_split_image("registry:5000/team/hits-server:v1"), ("registry:5000/team/hits-server", "v1", ""))
        self.assertEqual(_split_image("hits-server@sha256:abc"), ("hits-server", "", "sha256:abc"))
        self.assertEqual(_split_image("hits-server:v1@sha256:abc"), ("hits-server", "v1", "sha256:abc"))
        self.assertEqual(_split_image("hits-server"), ("hits-server", "", ""))

    def test_kustomizes_documented_examples_render_as_documented(self) -> None:
        self.assertGreaterEqual(len(KUSTOMIZE_CASES), 4)
        for case in KUSTOMIZE_CASES:
            with self.subTest(case=case.name):
                self.assertEqual(_by_kind_and_name(own_render(_case_directory(case))),
                                 _by_kind_and_name(load_documents(case / "expected.yaml")))

    @unittest.skipUnless(shutil.which("kubectl"), "kubectl is not on PATH")
    def test_kustomizes_documented_examples_are_what_kubectl_kustomize_renders(self) -> None:
        for case in KUSTOMIZE_CASES:
            with self.subTest(case=case.name):
                self.assertEqual(_by_kind_and_name(kubectl_render(_case_directory(case))),
                                 _by_kind_and_name(load_documents(case / "expected.yaml")))

    def test_what_it_does_not_render_is_refused(self) -> None:
        base = KUSTOMIZE_TESTDATA / "inline-patch/base"
        patch = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "deploy"}}
        pod = lambda spec: {**patch, "spec": {"template": {"spec": spec}}}  # noqa: E731
        for kustomization, document, expected in [
            ({"namePrefix": "a-"}, None, "['namePrefix'] needs kubectl kustomize"),
            ({"patches": [{"path": "p.yaml", "target": {"kind": "Deployment"}}]}, patch, "only `path:` patches"),
            ({"patches": [{"patch": "{}"}]}, None, "only `path:` patches"),
            ({"images": [{"name": "nginx", "tagSuffix": "-x"}]}, None, "image {'name': 'nginx', 'tagSuffix': '-x'}"),
            ({"patches": [{"path": "p.yaml"}]}, {**patch, "$patch": "replace"}, "$patch: replace"),
            ({"patches": [{"path": "p.yaml"}]}, pod({"containers": [{"name": "nginx", "$patch": "replace"}]}),
             "$patch: replace"),
            ({"patches": [{"path": "p.yaml"}]}, pod({"$setElementOrder/containers": [{"name": "nginx"}]}),
             "['$setElementOrder/containers']"),
            ({"patches": [{"path": "p.yaml"}]}, pod({"topologySpreadConstraints": []}), "patching "
             "topologySpreadConstraints"),
            ({"patches": [{"path": "p.yaml"}]}, {**patch, "metadata": {"name": "other"}}, "which is not among"),
        ]:
            with self.subTest(expected=expected), tempfile.TemporaryDirectory() as tmp:
                overlay = Path(tmp) / "overlay"
                shutil.copytree(base, Path(tmp) / "base")
                overlay.mkdir()
                (overlay / "kustomization.yaml").write_text(yaml.safe_dump({"resources": ["../base"], **kustomization}))
                if document is not None:
                    (overlay / "p.yaml").write_text(yaml.safe_dump(document))
                with self.assertRaises(Problem) as caught:
                    own_render(overlay)
                self.assertIn(expected, str(caught.exception))

    def test_hits_server_options_as_the_server_parses_them(self) -> None:
        self.assertEqual(hits_server_options([]), (HITS_SERVER_OPTIONS, []))
        options, problems = hits_server_options(["--addr=[::]:9000", "--shutdown-timeout", "2.5"])
        self.assertEqual((options["--addr"], options["--shutdown-timeout"], problems), ("[::]:9000", "2.5", []))
        self.assertIn("unknown argument '--port'", hits_server_options(["--port", "1"])[1][0])
        self.assertIn("needs a value", hits_server_options(["--addr"])[1][0])
        for bad in ("localhost", "localhost:8000", "0.0.0.0:0", "::1:8000", "[0.0.0.0]:8000"):
            self.assertIn("is not IP:PORT", hits_server_options(["--addr", bad])[1][0], bad)
        self.assertEqual(hits_server_options(["--addr", "10.0.0.1:80"])[1], [])
        self.assertIn("not a number", hits_server_options(["--shutdown-timeout", "-1"])[1][0])

    def test_hits_store_forms_as_the_counter_crate_parses_them(self) -> None:
        for good in ("memory", "", "file:/var/lib/hits/count", "dynamodb:hits-Counter-1", "dynamodb:hits-Counter-1#2/3",
                     "s3:bucket/counts/hits"):
            self.assertIsNone(hits_store_problem(good), good)
        for bad in ("redis:x", "file:", "dynamodb:a", "dynamodb:has space", "dynamodb:t-1#3/3", "dynamodb:t-1#0/11",
                    "dynamodb:t-1#1", "dynamodb:t-1#a/b", "dynamodb:#0/2", "s3:bucket", "s3:/key", "s3:b/", "mem"):
            self.assertIsNotNone(hits_store_problem(bad), bad)


class TheDockerfileReader(unittest.TestCase):
    """scripts/dockerfile.py, the one reader of the Dockerfiles (image.rs runs it too)."""

    def test_joins_continued_lines_and_drops_comments_inside_them_as_docker_does(self) -> None:
        image = parse_dockerfile("# syntax=docker/dockerfile:1\nFROM a\nRUN one \\\n  # inside\n\n  two\n# c\nUSER 1\n")
        self.assertEqual([(i.line, i.op, i.args) for i in image.final.instructions], [(3, "RUN", "one two"), (8, "USER", "1")])

    def test_reads_the_final_stage_of_the_hits_dockerfile(self) -> None:
        final = read_dockerfile(HITS.dockerfile).final
        self.assertEqual((final.image, final.user, final.env, final.expose, final.stopsignal),
                         ("gcr.io/distroless/cc-debian12:nonroot", "65532:65532", [("HITS_STORE", "memory")],
                          ["8000"], "SIGTERM"))
        self.assertEqual([(c.source_stage, c.sources, c.dest) for c in final.copies],
                         [("builder", ["/hits-server"], "/usr/local/bin/hits-server")])
        assert final.healthcheck is not None
        self.assertEqual((final.healthcheck.argv, final.healthcheck.interval, final.healthcheck.timeout,
                          final.healthcheck.start_period, final.healthcheck.retries),
                         (["/usr/local/bin/hits-server", "healthcheck"], 10.0, 3.0, 5.0, 3))

    def test_healthcheck_options_are_go_durations_with_dockers_defaults(self) -> None:
        check = parse_dockerfile("FROM a\nHEALTHCHECK --interval=1m30s --retries=5 CMD [\"x\"]\n").final.healthcheck
        assert check is not None
        self.assertEqual((check.test, check.interval, check.timeout, check.start_period, check.retries),
                         (["CMD", "x"], 90.0, 30.0, 0.0, 5))
        self.assertEqual([go_duration(t) for t in ("500ms", "1.5h", "0", "10", "1s2", "")],
                         [0.5, 5400.0, 0.0, None, None, None])
        shell = parse_dockerfile("FROM a\nHEALTHCHECK CMD curl -f localhost\n").final.healthcheck
        self.assertEqual((shell.test, shell.argv) if shell else None, (["CMD-SHELL", "curl -f localhost"], None))
        self.assertEqual(parse_dockerfile("FROM a\nHEALTHCHECK NONE\n").final.healthcheck.test, ["NONE"])  # type: ignore[union-attr]

    def test_env_in_both_forms_and_exec_form_only_as_a_json_array_of_strings(self) -> None:
        final = parse_dockerfile("FROM a\nENV A=1 B=\"two words\" C='x y'\nENV D one two\n"
                                 "ENTRYPOINT [\"/x\", 1]\nCMD [\"--a\"]\n").final
        self.assertEqual(final.env, [("A", "1"), ("B", "two words"), ("C", "x y"), ("D", "one two")])
        self.assertEqual((final.entrypoint, final.cmd), (None, ["--a"]))
        self.assertIsNone(parse_dockerfile("FROM a\nCMD x --a\n").final.cmd)

    def test_stages_by_name_with_their_copies(self) -> None:
        image = parse_dockerfile("ARG V=1\nFROM --platform=$BUILDPLATFORM rust:1 AS builder\nRUN make\n"
                                 "FROM scratch\nCOPY --from=builder --chmod=755 /a /b /dest/\nCOPY [\"x y\", \"/z\"]\n"
                                 "WORKDIR /w\nWORKDIR sub\n")
        self.assertEqual([(s.image, s.name, s.platform) for s in image.stages],
                         [("rust:1", "builder", "$BUILDPLATFORM"), ("scratch", None, None)])
        self.assertEqual(image.stages[0].runs, ["make"])
        self.assertEqual([(c.source_stage, c.sources, c.dest) for c in image.final.copies],
                         [("builder", ["/a", "/b"], "/dest/"), (None, ["x y"], "/z")])
        self.assertEqual(image.final.workdir, "/w/sub")

    def test_refuses_what_docker_refuses_or_it_does_not_read(self) -> None:
        for text, expected in [
            ("RUN x\n", "RUN before the first FROM"),
            ("FROM a\nHEALTHCHECK --interval=10 CMD [\"x\"]\n", "--interval=10 is no duration"),
            ("FROM a\nHEALTHCHECK --every=1s CMD [\"x\"]\n", "has no option --every"),
            ("FROM a\nHEALTHCHECK [\"x\"]\n", "needs CMD"),
            ("# escape=`\nFROM a\n", "parser directive 'escape'"),
            ("FROM a\nRUN <<EOF\nx\nEOF\n", "heredoc"),
            ("FROM a\nENV A=$B\n", "`$` substitution"),
            ("FROM a AS b\nFROM b\n", "FROM the stage b"),
            ("FROM a\nRUN x \\\n", "ends inside a continuation"),
            ("", "no FROM"),
        ]:
            with self.subTest(text=text):
                with self.assertRaises(DockerfileError) as caught:
                    parse_dockerfile(text, "Dockerfile")
                self.assertIn(expected, str(caught.exception))

    def test_prints_the_stages_as_json_for_image_rs(self) -> None:
        done = subprocess.run([sys.executable, str(ROOT / "scripts/dockerfile.py"), str(HITS.dockerfile)],
                              capture_output=True, text=True, check=False)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(json.loads(done.stdout), read_dockerfile(HITS.dockerfile).to_json())
        self.assertEqual(json.loads(done.stdout)["stages"][-1]["cmd"],
                         ["--addr", "0.0.0.0:8000", "--shutdown-timeout", "25"])
        with tempfile.TemporaryDirectory() as tmp:
            broken = Path(tmp) / "Dockerfile"
            broken.write_text("FROM a\nHEALTHCHECK --interval=x CMD [\"y\"]\n")
            done = subprocess.run([sys.executable, str(ROOT / "scripts/dockerfile.py"), str(broken)],
                                  capture_output=True, text=True, check=False)
        self.assertEqual((done.returncode, done.stdout), (os.EX_DATAERR, ""))
        self.assertEqual(done.stderr, f"dockerfile.py: {broken}:2: HEALTHCHECK --interval=x is no duration "
                                      "(10s, 1m30s, 500ms)\n")

    def test_a_broken_dockerfile_is_a_problem_of_the_checks(self) -> None:
        text = HITS.dockerfile.read_text()
        line = 1 + [n for n, l in enumerate(text.splitlines()) if l.startswith("HEALTHCHECK")][0]
        with tempfile.TemporaryDirectory() as tmp:
            broken = Path(tmp) / "Dockerfile"
            broken.write_text(text.replace("--timeout=3s", "--timeout=3"))
            problems = check(HITS.manifests, broken, app=HITS)
        self.assertEqual([p for p in problems if "HEALTHCHECK" in p],
                         [f"{broken}:{line}: HEALTHCHECK --timeout=3 is no duration (10s, 1m30s, 500ms)"])


class BrokenCopies:
    """Each test breaks one thing in a copy of an app's manifests (and Dockerfile) and expects the
    checks to say so."""

    APP: App

    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="test-k8s-"))
        self.root = self.tmp / self.APP.name
        shutil.copytree(self.APP.manifests, self.root)
        self.dockerfile = self.tmp / "Dockerfile"
        if self.APP.dockerfile.is_file():
            shutil.copy(self.APP.dockerfile, self.dockerfile)

    def tearDown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def edit(self, relative: str, change: Callable[[dict[str, Any]], None]) -> None:
        path = self.root / relative
        documents = load_documents(path)
        for document in documents:
            change(document)
        path.write_text(yaml.safe_dump_all(documents, sort_keys=False), encoding="utf-8")

    def assertCaught(self, expected: str) -> None:  # noqa: N802 (unittest's style)
        # Rendered as in `--check` (kubectl when present); TheManifests shows both renderings agree.
        problems = check(self.root, self.dockerfile, app=self.APP)
        self.assertTrue(  # type: ignore[attr-defined]  (a mixin of unittest.TestCase)
            any(expected in p for p in problems), f"no problem mentions {expected!r}: {problems}")

    @staticmethod
    def container(document: dict[str, Any]) -> dict[str, Any]:
        return document["spec"]["template"]["spec"]["containers"][0]


class BrokenCopiesAreCaught(BrokenCopies, unittest.TestCase):
    APP = CALC_WORKER

    def test_a_scaled_object_aimed_at_another_deployment(self) -> None:
        self.edit("overlays/rabbitmq-keda/scaledobject.yaml", lambda d: d["spec"]["scaleTargetRef"].update(name="calc"))
        self.assertCaught("scaleTargetRef names no apps/v1 Deployment 'calc'")

    def test_an_hpa_aimed_at_another_deployment(self) -> None:
        self.edit("overlays/hpa/hpa.yaml", lambda d: d["spec"]["scaleTargetRef"].update(name="worker"))
        self.assertCaught("HorizontalPodAutoscaler/calc-worker: scaleTargetRef names no apps/v1 Deployment 'worker'")

    def test_a_probe_on_a_port_the_container_does_not_have(self) -> None:
        self.edit("base/deployment.yaml", lambda d: self.container(d)["livenessProbe"]["httpGet"].update(port=9090))
        self.assertCaught("livenessProbe port 9090 is not a container port")

    def test_a_misspelt_field_fails_the_schema(self) -> None:
        self.edit("base/deployment.yaml", lambda d: self.container(d).update(imagePulPolicy="Always"))
        self.assertCaught("'imagePulPolicy' was unexpected")

    def test_a_secret_key_nobody_provides(self) -> None:
        self.edit("overlays/rabbitmq-keda/triggerauthentication.yaml",
                  lambda d: d["spec"]["secretTargetRef"][0].update(key="uri"))
        self.assertCaught("Secret calc-worker-amqp has no key 'uri'")

    def test_a_config_map_that_is_not_there(self) -> None:
        self.edit("base/deployment.yaml", lambda d: self.container(d)["envFrom"][0]["configMapRef"].update(name="calc"))
        self.assertCaught("envFrom names no ConfigMap 'calc'")

    def test_min_above_max(self) -> None:
        self.edit("overlays/sqs-keda/scaledobject.yaml", lambda d: d["spec"].update(minReplicaCount=30))
        self.assertCaught("minReplicaCount 30 must be <= maxReplicaCount 20")

    def test_a_trigger_without_its_queue_name(self) -> None:
        self.edit("overlays/rabbitmq-keda/scaledobject.yaml", lambda d: d["spec"]["triggers"][0]["metadata"].pop("queueName"))
        self.assertCaught("rabbitmq needs metadata.queueName")

    def test_trigger_metadata_that_is_not_a_string(self) -> None:
        self.edit("overlays/rabbitmq-keda/scaledobject.yaml", lambda d: d["spec"]["triggers"][0]["metadata"].update(value=20))
        self.assertCaught("metadata.value must be a string")

    def test_a_queue_url_other_than_the_workers(self) -> None:
        self.edit("overlays/sqs-keda/scaledobject.yaml", lambda d: d["spec"]["triggers"][0]["metadata"].update(
            queueURL="https://sqs.eu-west-2.amazonaws.com/123456789012/other"))
        self.assertCaught("is not the worker's CALC_SOURCE")

    def test_a_queue_name_other_than_the_workers(self) -> None:
        self.edit("base/configmap.yaml", lambda d: d["data"].update(CALC_QUEUE="jobs"))
        self.assertCaught("queueName 'rpc_queue' is not the worker's CALC_QUEUE 'jobs'")

    def test_a_grace_period_shorter_than_the_drain(self) -> None:
        self.edit("base/deployment.yaml", lambda d: d["spec"]["template"]["spec"].update(terminationGracePeriodSeconds=10))
        self.assertCaught("for the drain to finish before SIGKILL")

    def test_a_writable_root_filesystem(self) -> None:
        self.edit("base/deployment.yaml", lambda d: self.container(d)["securityContext"].update(readOnlyRootFilesystem=False))
        self.assertCaught("readOnlyRootFilesystem must be true")

    def test_a_max_x_other_than_the_templates(self) -> None:
        self.edit("base/configmap.yaml", lambda d: d["data"].update(CALC_MAX_X="20"))
        self.assertCaught("CALC_MAX_X 20 is not the template's MaxX 10.0")

    def test_a_resource_path_that_does_not_exist(self) -> None:
        self.edit("overlays/hpa/kustomization.yaml", lambda d: d["resources"].append("service.yaml"))
        self.assertCaught("resource service.yaml does not exist")

    def test_two_autoscalers_on_one_deployment(self) -> None:
        shutil.copy(self.root / "overlays/hpa/hpa.yaml", self.root / "overlays/rabbitmq-keda/hpa.yaml")
        self.edit("overlays/rabbitmq-keda/kustomization.yaml", lambda d: d["resources"].append("hpa.yaml"))
        self.assertCaught("has 2 autoscalers")

    def test_a_dockerfile_exposing_another_port_or_binary(self) -> None:
        text = self.APP.dockerfile.read_text()
        self.dockerfile.write_text(text.replace("EXPOSE 8080", "EXPOSE 9090").replace(
            "--bin calc-worker-server", "--bin calc-server"))
        problems = check(self.root, self.dockerfile)
        self.assertTrue(any("EXPOSE [9090] is not the Deployment's ports [8080]" in p for p in problems), problems)
        self.assertTrue(any("builds ['calc-server'], not a [[bin]]" in p for p in problems), problems)
        self.dockerfile.write_text(text.replace('ENTRYPOINT ["/usr/local/bin/calc-worker-server"]',
                                                "ENTRYPOINT /usr/local/bin/calc-worker-server"))
        self.assertTrue(any("exec form" in p for p in check(self.root, self.dockerfile)))



# A Dockerfile as deploy/hits-server/Dockerfile is specified (the real one, once written, is
# checked by TheManifests): the Dockerfile checks are tested on it whether or not that exists.
HITS_DOCKERFILE_SAMPLE = """\
# syntax=docker/dockerfile:1
FROM --platform=$BUILDPLATFORM rust:1-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY functions functions
RUN cargo build --release --locked -p hits --bin hits-server \\
    && install -m 0755 target/release/hits-server /hits-server
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /hits-server /usr/local/bin/hits-server
USER 65532:65532
ENV HITS_STORE=memory
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=2s CMD ["/usr/local/bin/hits-server", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/hits-server"]
CMD ["--addr", "0.0.0.0:8000", "--shutdown-timeout", "25"]
"""


class BrokenHitsCopiesAreCaught(BrokenCopies, unittest.TestCase):
    APP = HITS
    DEPLOYMENT = "base/deployment.yaml"
    FILE_STORE = "overlays/file-store/deployment-file-store.yaml"

    def test_a_liveness_probe_on_a_wrong_path(self) -> None:
        self.edit(self.DEPLOYMENT, lambda d: self.container(d)["livenessProbe"]["httpGet"].update(path="/health"))
        self.assertCaught("livenessProbe path '/health' is not /healthz")

    def test_a_readiness_probe_that_counts(self) -> None:
        self.edit(self.DEPLOYMENT, lambda d: self.container(d)["readinessProbe"]["httpGet"].update(path="/hits"))
        self.assertCaught("readinessProbe path '/hits' is not /healthz")

    def test_a_server_listening_on_another_port_than_the_probes(self) -> None:
        self.edit(self.DEPLOYMENT, lambda d: self.container(d).update(args=["--addr", "0.0.0.0:9000"]))
        self.assertCaught("hits-server listens on 9000 (args), which is no containerPort")
        self.assertCaught("livenessProbe port 'http' is 8000, but hits-server listens on 9000")

    def test_a_server_listening_on_loopback(self) -> None:
        self.edit(self.DEPLOYMENT, lambda d: self.container(d).update(args=["--addr=127.0.0.1:8000"]))
        self.assertCaught("listens on 127.0.0.1 only")

    def test_arguments_the_server_refuses(self) -> None:
        self.edit(self.DEPLOYMENT, lambda d: self.container(d).update(args=["--port", "8000"]))
        self.assertCaught("args: unknown argument '--port' (hits-server would exit 2)")

    def test_the_root_user(self) -> None:
        self.edit(self.DEPLOYMENT, lambda d: d["spec"]["template"]["spec"]["securityContext"].update(runAsUser=0))
        self.assertCaught("runAsUser 0 is root")
        self.edit(self.DEPLOYMENT, lambda d: (d["spec"]["template"]["spec"]["securityContext"].pop("runAsNonRoot"),
                                              self.container(d)["securityContext"].pop("runAsNonRoot")))
        self.assertCaught("runAsNonRoot must be true")

    def test_a_writable_root_filesystem(self) -> None:
        self.edit(self.DEPLOYMENT, lambda d: self.container(d)["securityContext"].update(readOnlyRootFilesystem=False))
        self.assertCaught("readOnlyRootFilesystem must be true")

    def test_a_file_store_without_a_volume(self) -> None:
        self.edit(self.FILE_STORE, lambda d: self.container(d).pop("volumeMounts"))
        self.assertCaught("HITS_STORE file:/var/lib/hits/count: /var/lib/hits is on no mounted volume")

    def test_a_file_store_in_the_base_without_a_volume(self) -> None:
        self.edit(self.DEPLOYMENT, lambda d: self.container(d)["env"][0].update(value="file:/data/count"))
        self.assertCaught("base: Deployment/hits-server: container hits-server: HITS_STORE file:/data/count: "
                          "/data is on no mounted volume")

    def test_a_file_store_on_an_empty_dir(self) -> None:
        self.edit(self.FILE_STORE, lambda d: d["spec"]["template"]["spec"].update(
            volumes=[{"name": "count", "emptyDir": {}}]))
        self.assertCaught("volume count is emptyDir, not a persistentVolumeClaim")

    def test_a_file_store_whose_claim_is_not_rendered(self) -> None:
        self.edit("overlays/file-store/kustomization.yaml", lambda d: d["resources"].remove("pvc.yaml"))
        self.assertCaught("volume count names no PersistentVolumeClaim 'hits-count'")

    def test_a_file_store_with_two_replicas(self) -> None:
        self.edit(self.FILE_STORE, lambda d: d["spec"].update(replicas=2))
        self.assertCaught("replicas 2, but PersistentVolumeClaim hits-count is ReadWriteOnce, one writer")

    def test_a_file_store_updated_rolling(self) -> None:
        self.edit(self.FILE_STORE, lambda d: d["spec"].update(strategy={"type": "RollingUpdate"}))
        self.assertCaught("strategy RollingUpdate, but PersistentVolumeClaim hits-count is ReadWriteOnce")

    def test_a_file_store_keeping_the_autoscaler(self) -> None:
        self.edit("overlays/file-store/kustomization.yaml",
                  lambda d: d["patches"].remove({"path": "hpa-delete.yaml"}))
        self.assertCaught("HorizontalPodAutoscaler/hits-server scales it up to 10 replicas, but")

    def test_a_file_store_budget_no_drain_can_pass(self) -> None:
        self.edit("overlays/file-store/kustomization.yaml", lambda d: d["patches"].remove({"path": "pdb-drain.yaml"}))
        self.assertCaught("minAvailable 1 with 1 replica(s) of Deployment/hits-server: a node drain could never evict")

    def test_a_file_store_without_fs_group(self) -> None:
        self.edit(self.DEPLOYMENT, lambda d: d["spec"]["template"]["spec"]["securityContext"].pop("fsGroup"))
        self.assertCaught("needs securityContext.fsGroup")

    def test_a_service_selector_matching_no_pods(self) -> None:
        self.edit("base/service.yaml", lambda d: d["spec"]["selector"].update({"app.kubernetes.io/name": "hits"}))
        self.assertCaught("Service/hits-server: selector {'app.kubernetes.io/name': 'hits'} matches no "
                          "Deployment's pods")

    def test_a_budget_selector_matching_no_pods(self) -> None:
        self.edit("base/pdb.yaml",
                  lambda d: d["spec"]["selector"]["matchLabels"].update({"app.kubernetes.io/name": "hits"}))
        self.assertCaught("PodDisruptionBudget/hits-server: selector")

    def test_a_budget_allowing_no_eviction(self) -> None:
        self.edit("base/pdb.yaml", lambda d: d["spec"].update(minAvailable="100%"))
        self.assertCaught("minAvailable 100% with 2 replica(s)")

    def test_a_grace_period_shorter_than_the_drain(self) -> None:
        self.edit(self.DEPLOYMENT, lambda d: d["spec"]["template"]["spec"].update(terminationGracePeriodSeconds=20))
        self.assertCaught("terminationGracePeriodSeconds (20) must exceed the preStop sleep (5 s) + "
                          "--shutdown-timeout (25 s) = 30 s")

    def test_the_alb_overlays_longer_sleep_without_a_longer_grace_period(self) -> None:
        self.edit("overlays/ingress/deployment-alb.yaml",
                  lambda d: d["spec"]["template"]["spec"].update(terminationGracePeriodSeconds=35))
        self.assertCaught("overlays/ingress: Deployment/hits-server: container hits-server: "
                          "terminationGracePeriodSeconds (35) must exceed the preStop sleep (15 s)")

    def test_no_pre_stop_sleep_behind_a_service(self) -> None:
        self.edit(self.DEPLOYMENT, lambda d: self.container(d).pop("lifecycle"))
        self.assertCaught("sends it requests, but it has no lifecycle.preStop.sleep")

    def test_a_store_the_server_refuses(self) -> None:
        self.edit(self.DEPLOYMENT, lambda d: self.container(d)["env"][0].update(value="redis:x"))
        self.assertCaught("HITS_STORE 'redis:x': unknown store")

    def test_an_hpa_on_cpu_without_a_cpu_request(self) -> None:
        self.edit(self.DEPLOYMENT, lambda d: self.container(d)["resources"]["requests"].pop("cpu"))
        self.assertCaught("scales on cpu utilisation, but container hits-server requests no cpu")

    def test_a_liveness_probe_quicker_than_readiness(self) -> None:
        self.edit(self.DEPLOYMENT,
                  lambda d: self.container(d)["livenessProbe"].update(periodSeconds=2, failureThreshold=1))
        self.assertCaught("livenessProbe gives up after 2 s, before readinessProbe (10 s)")

    def test_a_spread_over_other_pods(self) -> None:
        self.edit(self.DEPLOYMENT, lambda d: d["spec"]["template"]["spec"]["topologySpreadConstraints"][0]
                  ["labelSelector"]["matchLabels"].update({"app.kubernetes.io/name": "hits"}))
        self.assertCaught("topologySpreadConstraints[0].labelSelector does not select the pod's own labels")

    def test_an_ingress_on_a_port_the_service_lacks(self) -> None:
        self.edit("overlays/ingress/ingress.yaml", lambda d: d["spec"]["rules"][0]["http"]["paths"][0]["backend"]
                  ["service"]["port"].update(name="web"))
        self.assertCaught("backend port {'name': 'web'} is no port of Service/hits-server")

    def test_a_token_mounted(self) -> None:
        self.edit(self.DEPLOYMENT, lambda d: d["spec"]["template"]["spec"].pop("automountServiceAccountToken"))
        self.assertCaught("automountServiceAccountToken must be false")

    def test_a_user_and_port_other_than_the_real_dockerfiles(self) -> None:
        if not self.dockerfile.is_file():
            self.skipTest(f"{HITS.dockerfile.relative_to(ROOT)} does not exist")
        self.edit(self.DEPLOYMENT, lambda d: d["spec"]["template"]["spec"]["securityContext"].update(runAsUser=1000))
        self.assertCaught("Dockerfile: the image runs as 65532, the Deployment's container hits-server as 1000")
        self.edit(self.DEPLOYMENT, lambda d: self.container(d)["ports"][0].update(containerPort=8080))
        self.assertCaught("Dockerfile: EXPOSE [8000] is not the Deployment's ports [8080]")

    def test_a_dockerfile_other_than_the_deployment(self) -> None:
        self.dockerfile.write_text(HITS_DOCKERFILE_SAMPLE)
        problems = check(self.root, self.dockerfile, app=self.APP)
        self.assertEqual(problems, [], "the sample Dockerfile passes: " + "\n".join(problems))
        for change, expected in [
            (("EXPOSE 8000", "EXPOSE 9000"), "EXPOSE [9000] is not the Deployment's ports [8000]"),
            (("USER 65532:65532", "USER root"), "the final stage must run as USER nonroot"),
            (("USER 65532:65532", "USER 1000"),
             "the image runs as 1000, the Deployment's container hits-server as 65532"),
            (('CMD ["/usr/local/bin/hits-server", "healthcheck"]', "CMD /usr/local/bin/hits-server healthcheck"),
             "HEALTHCHECK CMD must be exec form"),
            (('"0.0.0.0:8000", "--shutdown', '"0.0.0.0:9000", "--shutdown'),
             "CMD listens on 9000, which it does not EXPOSE"),
            (("--bin hits-server", "--bin hits-srv"), "builds ['hits-srv'], not a [[bin]] of functions/hits"),
            (('"0.0.0.0:8000", "--shutdown', '"0.0.0.0:9000", "--shutdown'),
             "HEALTHCHECK probes 127.0.0.1:8000, but CMD listens on port 9000"),
            (('CMD ["/usr/local/bin/hits-server", "healthcheck"]', 'CMD ["/bin/curl", "localhost:8000/healthz"]'),
             "HEALTHCHECK runs /bin/curl, not the image's binary"),
            (("ENTRYPOINT", "STOPSIGNAL SIGKILL\nENTRYPOINT"), "STOPSIGNAL SIGKILL: the drain starts on SIGTERM"),
            (('"--shutdown-timeout", "25"]', '"--shutdown-timeout", "25", "--port", "1"]'),
             "CMD ['--addr', '0.0.0.0:8000', '--shutdown-timeout', '25', '--port', '1']: unknown argument '--port'"),
        ]:
            with self.subTest(expected=expected):
                self.dockerfile.write_text(HITS_DOCKERFILE_SAMPLE.replace(*change))
                problems = check(self.root, self.dockerfile, app=self.APP)
                self.assertTrue(any(expected in p for p in problems), f"no problem mentions {expected!r}: {problems}")

    def test_a_deployment_without_hits_store_gets_the_images(self) -> None:
        self.dockerfile.write_text(HITS_DOCKERFILE_SAMPLE.replace("HITS_STORE=memory", "HITS_STORE=file:/data/count"))
        self.edit(self.DEPLOYMENT, lambda d: self.container(d)["env"].pop(0))
        self.assertCaught("base: Deployment/hits-server: container hits-server: HITS_STORE file:/data/count: "
                          "/data is on no mounted volume")

    def test_a_deployment_without_args_gets_the_images_cmd(self) -> None:
        self.dockerfile.write_text(HITS_DOCKERFILE_SAMPLE.replace("0.0.0.0:8000", "0.0.0.0:9000"))
        self.edit(self.DEPLOYMENT, lambda d: self.container(d).pop("args"))
        self.assertCaught("hits-server listens on 9000 (Dockerfile's CMD), which is no containerPort")
        self.dockerfile.write_text(HITS_DOCKERFILE_SAMPLE.replace('"25"]', '"40"]'))
        self.assertCaught("--shutdown-timeout (40 s) = 45 s")


def main(argv: list[str]) -> int:
    if argv[:1] == ["--check"]:
        root = Path(argv[1]).resolve() if len(argv) > 1 else None
        try:
            problems = check(root)
        except Problem as e:
            problems = [str(e)]
        for problem in problems:
            print(f"test_k8s.py: {problem}", file=sys.stderr)
        for note in SKIPPED:
            print(f"test_k8s.py: skipped: {note}", file=sys.stderr)
        where = root or ", ".join(str(a.manifests.relative_to(ROOT)) for a in APPS)
        print(f"test_k8s.py: {where}: {len(problems)} problem(s)"
              f" ({'kubectl kustomize' if shutil.which('kubectl') else 'own rendering'})")
        return 1 if problems else 0
    result = unittest.main(argv=[sys.argv[0], *argv], exit=False, verbosity=2).result
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
