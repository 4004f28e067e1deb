"""deploy/kubernetes/: every manifest against the Kubernetes API schemas (kubernetes-validate
bundles them: no network), and what hwsigner reads in them (``serve.ini``, ``serve``'s flags)
against hwsigner itself."""

from __future__ import annotations

import configparser
from pathlib import Path
from typing import Any

import pytest

from hwsigner.cli.parser import build_parser
from hwsigner.cli.serveconfig import IDENTITY_KEYS, ROLE_KEYS, TOKEN_KEY, section_values

from .helpers import REPO

yaml = pytest.importorskip("yaml")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

MANIFESTS = sorted((REPO / "deploy" / "kubernetes").glob("*.yaml"))
KUBERNETES = "1.30.0"  # native sidecars (restartPolicy: Always in initContainers) need 1.29


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifests_match_the_kubernetes_schemas(path: Path) -> None:
    for doc in documents(path):
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_the_validator_refuses_a_wrong_manifest() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "i", "colour": "red"}]}}  # fmt: skip
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, KUBERNETES, strict=True)


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_serve_configs_and_flags_are_hwsigner_s(path: Path) -> None:
    served = 0
    for doc in documents(path):
        if doc["kind"] == "ConfigMap" and "serve.ini" in doc["data"]:
            parser = configparser.ConfigParser(interpolation=None, default_section="\0")
            parser.optionxform = str  # type: ignore[assignment,method-assign]
            parser.read_string(doc["data"]["serve.ini"])
            for section in parser.sections():
                keys = IDENTITY_KEYS if section == "identity" else {**ROLE_KEYS, TOKEN_KEY: None}
                section_values(path.name, parser[section], section, keys)  # raises on a mistake
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            args = container.get("args", [])
            if args[:1] == ["serve"]:
                parsed = build_parser(args).parse_args(args)
                assert parsed.config == "/etc/hwsigner/serve.ini"
                served += 1
    assert served == 1
