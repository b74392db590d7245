#!/usr/bin/env python3
"""Checks the MPIJob documents of a manifest against the MPIJob CRD's schema.

  docker/k8s/check_mpijob.py <mpi-operator.yaml> docker/k8s/ntk-serve-mpijob.yaml

<mpi-operator.yaml> is deploy/v2beta1/mpi-operator.yaml of kubeflow/mpi-operator
(its CustomResourceDefinition mpijobs.kubeflow.org carries the full
openAPIV3Schema, pod templates included). Every field of every kind
MPIJob / apiVersion kubeflow.org/v2beta1 document must be in the schema
(no unknown fields), with the schema's type and enum, and every required
field present. Other documents (Service, PVC) are only parsed. Exit 0 when
all is well, 1 with one line per problem otherwise. Needs PyYAML only.
"""
import sys

import yaml

TYPES = {"string": str, "boolean": bool, "object": dict, "array": list}


def check(value, schema, path, problems):
    if schema.get("x-kubernetes-int-or-string"):
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            problems.append(f"{path}: expected an integer or a string")
        return
    kind = schema.get("type")
    if kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "number":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif kind in TYPES:
        ok = isinstance(value, TYPES[kind])
    else:
        ok = True
    if not ok:
        problems.append(f"{path}: expected {kind}, got {type(value).__name__}")
        return
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{path}: {value!r} not one of {schema['enum']}")
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for name in schema.get("required", []):
            if name not in value:
                problems.append(f"{path}.{name}: required")
        for key, sub in value.items():
            if props is not None and key in props:
                check(sub, props[key], f"{path}.{key}", problems)
            elif isinstance(extra, dict):
                check(sub, extra, f"{path}.{key}", problems)
            elif props is not None or extra is False:
                problems.append(f"{path}.{key}: unknown field")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            check(item, schema["items"], f"{path}[{i}]", problems)


def main(crd_path, manifest_path):
    crds = [d for d in yaml.safe_load_all(open(crd_path))
            if d and d.get("kind") == "CustomResourceDefinition"
            and d["metadata"]["name"] == "mpijobs.kubeflow.org"]
    if not crds:
        print(f"{crd_path}: no CRD mpijobs.kubeflow.org")
        return 1
    version = [v for v in crds[0]["spec"]["versions"] if v["name"] == "v2beta1"][0]
    schema = version["schema"]["openAPIV3Schema"]
    problems, jobs = [], 0
    for i, doc in enumerate(yaml.safe_load_all(open(manifest_path))):
        if doc and doc.get("kind") == "MPIJob" and doc.get("apiVersion") == "kubeflow.org/v2beta1":
            jobs += 1
            # metadata is ObjectMeta (validated by the API server, not the CRD).
            body = {k: v for k, v in doc.items() if k != "metadata"}
            check(body, schema, f"document {i} ({doc['metadata']['name']})", problems)
    for p in problems:
        print(p)
    print(f"{manifest_path}: {jobs} MPIJob document(s), {len(problems)} problem(s)")
    return 1 if problems or jobs == 0 else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
