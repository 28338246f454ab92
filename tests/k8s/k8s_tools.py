"""Offline Kubernetes tooling for tests/k8s_chart.rs, run with the test-tools venv's python.

Every subcommand prints one JSON document on stdout; the Rust tests make the assertions.

  lint CHART [VALUES...]                  helm lint --strict for Kubernetes 1.30 (Helm Go SDK via
                                          helm-python-sdk)
  render CHART NAME NAMESPACE [VALUES...]  helm template: {"ok", "manifests": {path: text}} or
                                          {"ok": false, "error_type", "error"}
  validate KUBE_VERSION MANIFEST...       every document of multi-document YAML files, strictly:
                                          core kinds with kubernetes-validate; Prometheus Operator
                                          kinds against a JSON Schema of the CRD (see below)
  dockerfile FILE                         the Dockerfile as BuildKit's parser reads it
  versions                                the versions of the tools above

Values files are merged in order, later files winning, as `helm -f a.yaml -f b.yaml` does.

Prometheus Operator kinds (ServiceMonitor, PodMonitor, PrometheusRule) are not among
kubernetes-validate's schemas. Their schema comes from PyPI cloudcoil-models-prometheus-operator:
pydantic models generated from the operator's CRD openAPI schemas. The JSON Schema of each model
is made strict the way kubernetes-validate --strict is (no properties beyond the declared ones),
then the document is validated against it with jsonschema, and also parsed by the model itself.
"""

import json
import sys
from importlib import metadata

import helm_python as helm
import jsonschema
import kubernetes_validate
import yaml

CRD_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}


def emit(document):
    json.dump(document, sys.stdout)
    sys.stdout.write("\n")


def merge(base, override):
    """Helm's coalescing of values files: maps merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_values(paths):
    values = {}
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            values = merge(values, helm.values_from_yaml(handle.read()))
    return values


def lint(chart, *value_files):
    report = helm.lint(
        chart, load_values(value_files), strict=True, kube_version="v1.30.0"
    )
    emit(report)


def render(chart, name, namespace, *value_files):
    try:
        with helm.Chart.load(chart) as loaded:
            manifests = loaded.render(
                values=load_values(value_files), name=name, namespace=namespace
            )
    except helm.HelmError as error:
        emit({"ok": False, "error_type": type(error).__name__, "error": str(error)})
        return
    emit({"ok": True, "manifests": manifests})


def strict(schema):
    """Forbids undeclared properties in every object schema that declares its properties."""
    if isinstance(schema, dict):
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        for value in schema.values():
            strict(value)
    elif isinstance(schema, list):
        for value in schema:
            strict(value)
    return schema


def crd_models():
    from cloudcoil.models.prometheus_operator import v1

    return {
        ("monitoring.coreos.com/v1", "ServiceMonitor"): v1.ServiceMonitor,
        ("monitoring.coreos.com/v1", "PodMonitor"): v1.PodMonitor,
        ("monitoring.coreos.com/v1", "PrometheusRule"): v1.PrometheusRule,
    }


def validate(kube_version, *manifests):
    documents = []
    for manifest in manifests:
        with open(manifest, encoding="utf-8") as handle:
            documents += [(manifest, doc) for doc in yaml.safe_load_all(handle) if doc]
    models = None
    schemas = {}
    results = []
    for manifest, document in documents:
        kind = (document.get("apiVersion"), document.get("kind"))
        result = {
            "file": manifest,
            "apiVersion": kind[0],
            "kind": kind[1],
            "name": (document.get("metadata") or {}).get("name"),
            "errors": [],
        }
        if kind in CRD_KINDS:
            models = models or crd_models()
            model = models[kind]
            result["validator"] = (
                "cloudcoil-models-prometheus-operator "
                + metadata.version("cloudcoil-models-prometheus-operator")
                + " CRD schema, strict"
            )
            if kind not in schemas:
                schemas[kind] = jsonschema.Draft202012Validator(
                    strict(model.model_json_schema(by_alias=True))
                )
            validator = schemas[kind]
            for error in validator.iter_errors(document):
                path = "/".join(str(part) for part in error.absolute_path)
                result["errors"].append(f"{path}: {error.message}")
            try:
                model.model_validate(document)
            except Exception as error:  # pydantic's ValidationError, reported as text
                result["errors"].append(str(error))
        else:
            result["validator"] = (
                f"kubernetes-validate {kubernetes_validate.__version__} "
                f"--strict, Kubernetes {kube_version}"
            )
            try:
                kubernetes_validate.validate(document, kube_version, strict=True)
            except kubernetes_validate.ValidationError as error:
                path = "/".join(str(part) for part in error.path)
                result["errors"].append(f"{path}: {error.message}")
            except kubernetes_validate.SchemaNotFoundError:
                result["errors"].append(
                    f"no schema for {kind[0]} {kind[1]} in Kubernetes {kube_version}"
                )
        results.append(result)
    emit(results)


def dockerfile(path):
    import dockerfile as parser

    emit(
        [
            {"cmd": command.cmd, "flags": list(command.flags), "value": list(command.value),
             "json": command.json, "original": command.original}
            for command in parser.parse_file(path)
        ]
    )


def versions():
    emit(
        {
            package: metadata.version(package)
            for package in (
                "helm-python-sdk",
                "kubernetes-validate",
                "cloudcoil-models-prometheus-operator",
                "jsonschema",
                "dockerfile",
            )
        }
        | {"helm": helm.helm_sdk_version()}
    )


COMMANDS = {
    "lint": lint,
    "render": render,
    "validate": validate,
    "dockerfile": dockerfile,
    "versions": versions,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(COMMANDS)} ARGS...")
    COMMANDS[sys.argv[1]](*sys.argv[2:])
