"""The deployment files parse and validate with real tools (no container engine runs here)."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"


def k8s_documents():
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs.extend((path.name, d) for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def test_compose_file_validates_with_docker_compose():
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose (Debian package) is needed to validate docker-compose.yml"
    result = subprocess.run([exe, "-f", str(ROOT / "docker-compose.yml"), "config"], capture_output=True,
                            text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    assert set(services) == {"relay", "clamav", "postgres", "mailpit"}
    # health-gated start order: the relay waits for healthy dependencies
    for dep in ("clamav", "postgres", "mailpit"):
        assert services["relay"]["depends_on"][dep]["condition"] == "service_healthy"
        assert "healthcheck" in services[dep]
    assert services["relay"]["environment"]["RELAY_QUARANTINE"].startswith("postgresql://")
    assert set(config["volumes"]) == {"clamav-db", "postgres-data"}


@pytest.mark.parametrize(("name", "doc"), k8s_documents(), ids=lambda v: v if isinstance(v, str) else v["kind"])
def test_kubernetes_manifest_validates_against_schema(name, doc):
    kubernetes_validate.validate(doc, "1.30.0", strict=True)


def test_kubernetes_relay_is_highly_available():
    by_kind = {}
    for _, doc in k8s_documents():
        by_kind.setdefault(doc["kind"], []).append(doc)
    relay = next(d for d in by_kind["Deployment"] if d["metadata"]["name"] == "relay")
    assert relay["spec"]["replicas"] >= 2
    container = relay["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    assert relay["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert any(d["metadata"]["name"] == "clamd" for d in by_kind["Deployment"])
    assert {"PodDisruptionBudget", "HorizontalPodAutoscaler", "Service", "ConfigMap", "Secret"} <= set(by_kind)
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (K8S / resource).exists()
    volumes = {v["name"]: v for v in relay["spec"]["template"]["spec"]["volumes"]}
    assert volumes["policies"]["configMap"]["name"] == "relay-policies"
    assert "kubectl create configmap relay-policies --from-file=policies/" in (K8S / "kustomization.yaml").read_text()


def test_systemd_unit_is_hardened():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(ROOT / "deploy" / "systemd" / "relay.service")
    service = unit["Service"]
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "DynamicUser": "yes",
                       "PrivateTmp": "yes", "ProtectHome": "yes"}.items():
        assert service.get(key) == value, key
    assert service["ExecStart"].split()[1:3] == ["serve", "--config"]
    assert service.get("ExecReload", "").endswith("-HUP $MAINPID")


def test_dockerfile_runs_as_non_root_with_libmagic_and_healthcheck():
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "libmagic1" in text and "\nUSER relay" in text and "HEALTHCHECK" in text
    assert "pip wheel" in text and "pip install --no-cache-dir /wheels/*.whl" in text
