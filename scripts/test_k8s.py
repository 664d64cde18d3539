#!/usr/bin/env python3
"""Offline checks of the calc worker's Kubernetes manifests and Dockerfile: no cluster, no network.

    python scripts/test_k8s.py           the self-tests (unittest): the real manifests pass every
                                         check, and mutated copies of them are caught
    python scripts/test_k8s.py --check [DIR]
                                         only the checks (default deploy/k8s/calc-worker); prints
                                         each problem and exits 1 if there is any

What is checked, for base/ and each overlays/*/ as kustomize renders it (`kubectl kustomize` when
kubectl is on PATH, else this script's rendering of the subset used here: resources, patches by
path as strategic merges, images):
  - every kustomization's `resources` and `patches` paths exist;
  - core kinds against the Kubernetes OpenAPI schemas (kubernetes-validate, bundled offline),
    strict: an unknown or misspelt field fails;
  - KEDA's ScaledObject and TriggerAuthentication field by field (CRDs have no bundled schema):
    apiVersion, known spec fields, triggers with their required metadata as strings, min <= max;
  - cross-references: scaler targets (ScaledObject, HPA, Service selectors) name the Deployment;
    probes name a container port, which CALC_HEALTH_ADDR listens on; ConfigMap, Secret and
    ServiceAccount references exist with their keys (Secrets made by hand: EXTERNAL_SECRETS);
    queue names and URLs agree between the worker's environment and its trigger; CALC_MAX_X is
    the template's MaxX and the drain fits in terminationGracePeriodSeconds;
  - the worker's policy: non-root, read-only root filesystem, no privilege escalation, all
    capabilities dropped, RuntimeDefault seccomp, requests and limits, readiness and liveness;
  - deploy/calc-worker/Dockerfile: the binary it builds exists in the crate, the final image is
    distroless nonroot with an exec-form ENTRYPOINT, and its port and user match the Deployment.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"

if __name__ == "__main__" and Path(sys.prefix).resolve() != VENV.resolve() and (VENV / "bin/python").exists():
    os.execv(str(VENV / "bin/python"), [str(VENV / "bin/python"), str(Path(__file__).resolve()), *sys.argv[1:]])

sys.path.insert(0, str(ROOT / "scripts"))
import yaml  # noqa: E402  (after the re-exec into the venv)

import stack  # noqa: E402

MANIFESTS = ROOT / "deploy/k8s/calc-worker"
DOCKERFILE = ROOT / "deploy/calc-worker/Dockerfile"
# The schemas' Kubernetes version (EKS's standard support covers it).
K8S_VERSION = "1.33"
# Secrets the README has you create by hand (credentials stay out of git): name -> keys.
EXTERNAL_SECRETS = {"calc-worker-amqp": {"url"}}
NONROOT_UID = 65532  # distroless `nonroot`
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: ~10x faster


class Problem(Exception):
    """A manifest that cannot be rendered."""


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


def strategic_merge(target: Any, patch: Any) -> Any:
    """The part of a strategic merge patch these manifests use: maps merge, null deletes, lists
    of named items (containers, env, volumes) merge by name, other lists are replaced."""
    if isinstance(target, dict) and isinstance(patch, dict):
        merged = dict(target)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = strategic_merge(merged[key], value)
            else:
                merged[key] = strategic_merge({}, value) if isinstance(value, dict) else value
        return merged
    named = lambda items: isinstance(items, list) and all(isinstance(i, dict) and "name" in i for i in items)  # noqa: E731
    if named(target) and named(patch):
        merged = list(target)
        for item in patch:
            index = next((i for i, old in enumerate(merged) if old["name"] == item["name"]), None)
            if index is None:
                merged.append(strategic_merge({}, item))
            else:
                merged[index] = strategic_merge(merged[index], item)
        return merged
    return copy.deepcopy(patch)


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
            objects[index] = strategic_merge(objects[index], document)
    for image in k.get("images") or []:
        for o in objects:
            for c in _containers(o):
                if re.split(r"[:@]", c.get("image", ""), maxsplit=1)[0] == image["name"]:
                    c["image"] = image.get("newName", image["name"]) + (
                        f"@{image['digest']}" if "digest" in image else f":{image.get('newTag', 'latest')}")
    return objects


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


def check_keda(o: dict[str, Any], objects: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
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
                found += _secret_key(objects, ref["name"], ref["key"], name)
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


def _secret_key(objects: dict[tuple[str, str], dict[str, Any]], secret: str, key: str, who: str) -> list[str]:
    if secret in EXTERNAL_SECRETS:
        keys = EXTERNAL_SECRETS[secret]
    elif ("Secret", secret) in objects:
        o = objects[("Secret", secret)]
        keys = set(o.get("data") or {}) | set(o.get("stringData") or {})
    else:
        return [f"{who}: names Secret {secret!r}, which is neither rendered nor in EXTERNAL_SECRETS"]
    return [] if key in keys else [f"{who}: Secret {secret} has no key {key!r} (it has {sorted(keys)})"]


def _environment(pod: dict[str, Any], container: dict[str, Any], objects: dict[tuple[str, str], dict[str, Any]],
                 who: str) -> tuple[dict[str, str | None], list[str]]:
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
            found += _secret_key(objects, ref.get("name"), ref.get("key"), f"{who}: env {item['name']}")
            env[item["name"]] = None
        else:
            env[item["name"]] = item.get("value", "")
    return env, found


def check_workload(o: dict[str, Any], objects: dict[tuple[str, str], dict[str, Any]], max_x: float) -> list[str]:
    found = []
    name, spec = _name(o), o.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or {}
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    if not selector or any(labels.get(k) != v for k, v in selector.items()):
        found.append(f"{name}: spec.selector.matchLabels {selector} must match the pod labels {labels}")
    account = pod.get("serviceAccountName")
    if account and ("ServiceAccount", account) not in objects:
        found.append(f"{name}: serviceAccountName {account!r} names no ServiceAccount")
    pod_security = pod.get("securityContext") or {}
    if (pod_security.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        found.append(f"{name}: securityContext.seccompProfile.type must be RuntimeDefault")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    for container in pod.get("containers") or []:
        who = f"{name}: container {container.get('name')}"
        security = container.get("securityContext") or {}
        if not (security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is True):
            found.append(f"{who}: runAsNonRoot must be true")
        if security.get("allowPrivilegeEscalation") is not False:
            found.append(f"{who}: allowPrivilegeEscalation must be false")
        if security.get("readOnlyRootFilesystem") is not True:
            found.append(f"{who}: readOnlyRootFilesystem must be true")
        if "ALL" not in ((security.get("capabilities") or {}).get("drop") or []):
            found.append(f"{who}: capabilities.drop must include ALL")
        resources = container.get("resources") or {}
        for part in ("requests", "limits"):
            missing = {"cpu", "memory"} - set(resources.get(part) or {})
            if missing:
                found.append(f"{who}: resources.{part} lacks {sorted(missing)}")
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
        env, problems = _environment(pod, container, objects, who)
        found += problems
        health = env.get("CALC_HEALTH_ADDR") or "0.0.0.0:8080"
        if probe_ports and int(health.rsplit(":", 1)[-1]) not in probe_ports:
            found.append(f"{who}: CALC_HEALTH_ADDR {health} is not the probes' port {sorted(probe_ports)}")
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


def check_scalers(objects: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    """Scalers and Services against the workloads they name."""
    found = []
    scaled: dict[str, list[str]] = {}
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
            env, _ = _environment({}, container, objects, "")
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
            if kind == "HorizontalPodAutoscaler" and spec.get("minReplicas", 1) > spec.get("maxReplicas", 0):
                found.append(f"{kind}/{name}: minReplicas must be <= maxReplicas")
        if kind == "Service":
            selector = spec.get("selector") or {}
            pods = [d for d in objects.values() if d.get("kind") == "Deployment" and all(
                ((d["spec"]["template"].get("metadata") or {}).get("labels") or {}).get(k) == v
                for k, v in selector.items())]
            if not selector or not pods:
                found.append(f"Service/{name}: selector {selector} matches no Deployment's pods")
            for port in spec.get("ports") or []:
                target = port.get("targetPort", port.get("port"))
                known = {p.get(f) for d in pods for c in _containers(d) for p in c.get("ports") or []
                         for f in ("name", "containerPort")}
                if pods and target not in known:
                    found.append(f"Service/{name}: targetPort {target!r} is no container port")
    for target, scalers in scaled.items():
        if len(scalers) > 1:
            found.append(f"Deployment/{target} has {len(scalers)} autoscalers ({', '.join(scalers)}); they would fight")
    return found


def check_objects(documents: list[dict[str, Any]], max_x: float) -> list[str]:
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
            found += check_keda(o, objects)
        else:
            found += check_schema(o)
        if o["kind"] == "Deployment":
            found += check_workload(o, objects, max_x)
    return found + check_scalers(objects)


# --- The Dockerfile. --------------------------------------------------------------------------


def check_dockerfile(path: Path, deployment: dict[str, Any] | None) -> list[str]:
    found = []
    lines = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8")).splitlines()
    instructions = [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
                    for line in (raw.strip() for raw in lines) if line and not line.startswith("#")]
    froms = [args.split()[0] for op, args in instructions if op == "FROM"]
    final = [(op, args) for op, args in instructions[max(i for i, (op, _) in enumerate(instructions) if op == "FROM"):]]
    if not froms or not froms[0].startswith("rust:"):
        found.append(f"{path.name}: the first stage must build with a rust: image, not {froms[:1]}")
    if froms and froms[-1] != "gcr.io/distroless/cc-debian12:nonroot":
        found.append(f"{path.name}: the final image must be gcr.io/distroless/cc-debian12:nonroot, not {froms[-1]}")
    bins = set(re.findall(r'name\s*=\s*"([^"]+)"', (ROOT / "functions/calc-worker/Cargo.toml").read_text()))
    built = re.findall(r"--bin\s+(\S+)", " ".join(args for op, args in instructions if op == "RUN"))
    if not built or any(b not in bins for b in built):
        found.append(f"{path.name}: builds {built}, not a [[bin]] of functions/calc-worker ({sorted(bins)})")
    for op, args in instructions:
        if op == "COPY" and "--from" not in args:
            found += [f"{path.name}: COPY {source}: no such path in the repository"
                      for source in args.split()[:-1] if not (ROOT / source).exists()]
    entrypoint = [args for op, args in final if op == "ENTRYPOINT"]
    try:
        command = json.loads(entrypoint[-1]) if entrypoint else None
    except json.JSONDecodeError:
        command = None
    if not isinstance(command, list):
        found.append(f"{path.name}: ENTRYPOINT must be exec form (a JSON array), so the worker gets SIGTERM")
    elif built and Path(command[0]).name != built[0]:
        found.append(f"{path.name}: ENTRYPOINT runs {command[0]}, not the binary it builds ({built[0]})")
    users = [args.strip() for op, args in final if op == "USER"]
    if users[-1:] not in (["nonroot"], [str(NONROOT_UID)], [f"{NONROOT_UID}:{NONROOT_UID}"]):
        found.append(f"{path.name}: the final stage must run as USER nonroot ({NONROOT_UID}), not {users[-1:]}")
    exposed = {int(p.split("/")[0]) for op, args in final if op == "EXPOSE" for p in args.split()}
    if deployment is not None:
        pod = deployment["spec"]["template"]["spec"]
        ports = {p["containerPort"] for c in pod["containers"] for p in c.get("ports") or []}
        if exposed != ports:
            found.append(f"{path.name}: EXPOSE {sorted(exposed)} is not the Deployment's ports {sorted(ports)}")
        uid = (pod.get("securityContext") or {}).get("runAsUser")
        if uid is not None and uid != NONROOT_UID:
            found.append(f"{path.name}: the image runs as {NONROOT_UID}, the Deployment as {uid}")
    return found


# --- Everything. -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def template_max_x() -> float:
    return float(stack.load_template()["Parameters"]["MaxX"]["Default"])


def check(root: Path = MANIFESTS, dockerfile: Path = DOCKERFILE, use_kubectl: bool | None = None) -> list[str]:
    """Every problem of the manifests under `root` (base/ and overlays/*/) and the Dockerfile."""
    found = []
    max_x = template_max_x()
    directories = [root / "base", *sorted(p for p in (root / "overlays").iterdir() if p.is_dir())]
    base_deployment = None
    for directory in directories:
        label = directory.relative_to(root)
        try:
            missing = missing_paths(directory)
            if missing:
                found += [f"{label}: {m}" for m in missing]
                continue
            documents = render(directory, use_kubectl)
        except (Problem, yaml.YAMLError) as e:
            found.append(f"{label}: {e}")
            continue
        found += [f"{label}: {p}" for p in check_objects(documents, max_x)]
        if directory.name == "base":
            base_deployment = next((d for d in documents if d.get("kind") == "Deployment"), None)
    return found + check_dockerfile(dockerfile, base_deployment)


# --- Self-tests. -----------------------------------------------------------------------------


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
        for directory in [MANIFESTS / "base", *sorted((MANIFESTS / "overlays").iterdir())]:
            with self.subTest(directory=directory.name):
                self.assertEqual(sorted(own_render(directory), key=key), sorted(kubectl_render(directory), key=key))


class BrokenCopiesAreCaught(unittest.TestCase):
    """Each test breaks one thing in a copy of the manifests and expects the checks to say so."""

    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="test-k8s-"))
        self.root = self.tmp / "calc-worker"
        shutil.copytree(MANIFESTS, self.root)
        self.dockerfile = self.tmp / "Dockerfile"
        shutil.copy(DOCKERFILE, self.dockerfile)

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
        problems = check(self.root, self.dockerfile)
        self.assertTrue(any(expected in p for p in problems), f"no problem mentions {expected!r}: {problems}")

    @staticmethod
    def container(document: dict[str, Any]) -> dict[str, Any]:
        return document["spec"]["template"]["spec"]["containers"][0]

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
        self.assertCaught("queueName 'calc' is not the worker's CALC_QUEUE 'jobs'")

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
        text = DOCKERFILE.read_text()
        self.dockerfile.write_text(text.replace("EXPOSE 8080", "EXPOSE 9090").replace(
            "--bin calc-worker-server", "--bin calc-server"))
        problems = check(self.root, self.dockerfile)
        self.assertTrue(any("EXPOSE [9090] is not the Deployment's ports [8080]" in p for p in problems), problems)
        self.assertTrue(any("builds ['calc-server'], not a [[bin]]" in p for p in problems), problems)
        self.dockerfile.write_text(text.replace('ENTRYPOINT ["/usr/local/bin/calc-worker-server"]',
                                                "ENTRYPOINT /usr/local/bin/calc-worker-server"))
        self.assertTrue(any("exec form" in p for p in check(self.root, self.dockerfile)))


def main(argv: list[str]) -> int:
    if argv[:1] == ["--check"]:
        root = Path(argv[1]).resolve() if len(argv) > 1 else MANIFESTS
        problems = check(root)
        for problem in problems:
            print(f"test_k8s.py: {problem}", file=sys.stderr)
        print(f"test_k8s.py: {root}: {len(problems)} problem(s)"
              f" ({'kubectl kustomize' if shutil.which('kubectl') else 'own rendering'})")
        return 1 if problems else 0
    result = unittest.main(argv=[sys.argv[0], *argv], exit=False, verbosity=2).result
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
