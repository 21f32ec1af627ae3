"""The deployment files parse and validate with real tools (no container engine runs here)."""

from __future__ import annotations

import asyncio
import configparser
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from relay import metrics
from tests.fixtures.common import free_port

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
UNIT = ROOT / "deploy" / "systemd" / "relay.service"


def _policies_generator():
    spec = importlib.util.spec_from_file_location("gen_k8s_policies", ROOT / "scripts" / "gen-k8s-policies.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    assert "policies.yaml" in kustomization["resources"]


def test_kubernetes_policies_configmap_is_the_policy_files():
    """deploy/kubernetes/policies.yaml holds every policies/*.yaml byte for byte, and the relay's
    settings name a policy that is in it (scripts/gen-k8s-policies.py --write regenerates it)."""
    gen = _policies_generator()
    text = (K8S / "policies.yaml").read_text(encoding="utf-8")
    assert text == gen.render(), "run scripts/gen-k8s-policies.py --write"
    [configmap] = [d for d in yaml.safe_load_all(text) if d]
    assert configmap["kind"] == "ConfigMap" and configmap["metadata"]["name"] == "relay-policies"
    files = {p.name: p.read_text(encoding="utf-8") for p in (ROOT / "policies").glob("*.yaml")}
    assert files and configmap["data"] == files
    relay_toml = next(d for _, d in k8s_documents() if d["metadata"]["name"] == "relay-config")["data"]["relay.toml"]
    [policy] = re.findall(r'^policy = "/etc/relay/policies/([^"]+)"$', relay_toml, re.M)
    assert policy in configmap["data"]


def test_the_policies_check_fails_when_a_policy_changes(tmp_path, monkeypatch):
    gen = _policies_generator()
    policies = tmp_path / "policies"
    policies.mkdir()
    for path in (ROOT / "policies").glob("*.yaml"):
        (policies / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    manifest = tmp_path / "policies.yaml"
    manifest.write_text((K8S / "policies.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setattr(gen, "POLICIES", policies)
    monkeypatch.setattr(gen, "MANIFEST", manifest)
    assert gen.main(["--check"]) == 0
    edited = policies / "minimal.yaml"
    edited.write_text(edited.read_text(encoding="utf-8").replace("mode: enforce", "mode: monitor"), encoding="utf-8")
    assert gen.main(["--check"]) == 1
    assert gen.main(["--write"]) == 0 and gen.main(["--check"]) == 0
    assert "mode: monitor" in yaml.safe_load(manifest.read_text(encoding="utf-8"))["data"]["minimal.yaml"]


def test_systemd_unit_is_hardened(tmp_path):
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(UNIT)
    service = unit["Service"]
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "DynamicUser": "yes",
                       "PrivateTmp": "yes", "ProtectHome": "yes"}.items():
        assert service.get(key) == value, key
    assert service["ExecStart"].split()[1:3] == ["serve", "--config"]
    assert service.get("ExecReload", "").endswith("-HUP $MAINPID")
    assert _verify_unit(UNIT.read_text(encoding="utf-8"), tmp_path) == ""


def _verify_unit(text: str, directory: Path) -> str:
    """``systemd-analyze verify`` of the unit ``text``, with ExecStart's program replaced by /bin/true
    (/opt/relay is not installed here); its complaints (it exits 0 on ignored lines, so stderr counts)."""
    exe = shutil.which("systemd-analyze")
    assert exe, "systemd-analyze (Debian package systemd; scripts/system-deps.sh) is needed to verify the unit"
    unit = directory / "relay.service"
    unit.write_text(re.sub(r"^ExecStart=\S+", "ExecStart=/bin/true", text, count=1, flags=re.M), encoding="utf-8")
    result = subprocess.run([exe, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60)
    return f"exit {result.returncode}: {result.stderr.strip()}" if result.returncode or result.stderr.strip() else ""


def test_systemd_credentials_example_verifies_and_verify_sees_mistakes(tmp_path):
    text = UNIT.read_text(encoding="utf-8")
    # the commented LoadCredential= examples verify too once uncommented, %d specifier included
    enabled = re.sub(r"^#((?:LoadCredential|Environment)=)", r"\1", text, flags=re.M)
    assert enabled.count("\nLoadCredential=") == 2 and "RELAY_DKIM_KEY=%d/dkim.pem" in enabled
    assert "RELAY_TLS_KEY=%d/tls.key" in enabled
    assert _verify_unit(enabled, tmp_path) == ""
    # and the check sees a mistake
    assert "protect system value" in _verify_unit(text.replace("ProtectSystem=strict", "ProtectSystem=stricter"),
                                                  tmp_path)


def test_dockerfile_runs_as_non_root_with_libmagic_and_healthcheck():
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "libmagic1" in text and "\nUSER relay" in text and "HEALTHCHECK" in text
    assert "pip wheel" in text and "pip install --no-cache-dir /wheels/*.whl" in text
    assert "COPY deploy/healthcheck.py /usr/local/lib/relay/healthcheck.py" in text
    assert 'CMD ["python", "/usr/local/lib/relay/healthcheck.py"]' in text and "127.0.0.1:9100" not in text


def test_container_healthcheck_follows_relay_metrics():
    """deploy/healthcheck.py (the image's HEALTHCHECK) asks the address RELAY_METRICS names, against a real
    /healthz: a wildcard address is checked on loopback, a port nothing serves and metrics off are unhealthy."""

    async def check(value: str) -> tuple[int, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
        env.update({"RELAY_METRICS": value, "PYTHONPATH": str(ROOT)})
        proc = await asyncio.create_subprocess_exec(sys.executable, str(ROOT / "deploy" / "healthcheck.py"), env=env,
                                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        return proc.returncode, err.decode()

    async def go() -> list[tuple[int, str]]:
        server = await metrics.serve_http("127.0.0.1", 0, None)
        port = server.sockets[0].getsockname()[1]
        try:
            return [await check(value) for value in
                    (f"0.0.0.0:{port}", f"127.0.0.1:{port}", f"127.0.0.1:{free_port()}", "", "nonsense")]
        finally:
            server.close()
            await server.wait_closed()

    wildcard, loopback, nothing, off, bad = asyncio.run(asyncio.wait_for(go(), 90))
    assert wildcard == (0, "") and loopback == (0, "")
    assert nothing[0] == 1 and "/healthz" in nothing[1] and "Traceback" not in nothing[1]
    assert off == (1, "healthcheck: RELAY_METRICS is empty, so there is no /healthz to check\n")
    assert bad[0] == 1 and "RELAY_METRICS" in bad[1] and "Traceback" not in bad[1]
