"""The production profile (``make run-prod``) exposes only HAProxy's gateway port; replicas stay on loopback."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from dvcbot import PROJECT_ROOT
from dvcbot.settings import Settings
from dvcbot.supervisor import lock_store_env, replica_services, services
from dvcbot.training import rasa_env

RASA_PY = PROJECT_ROOT / ".venv-rasa" / "bin" / "python"


def option(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def test_replicas_listen_on_loopback_and_haproxy_on_the_configured_addresses(tmp_path: Path) -> None:
    settings = Settings(redis_url="redis://:s%40cret@127.0.0.1:6380/3", gateway_host="0.0.0.0",
                        database_url="postgresql://postgres@127.0.0.1:5432/dvcbot_prod")
    svcs = {s.name: s for s in replica_services(settings, Path("models/m.tar.gz"), "tok", 2, workdir=tmp_path)}
    assert set(svcs) >= {"actions-1", "actions-2", "gateway-1", "gateway-2", "lb", "rasa-1", "rasa-2"}
    assert not [n for n in svcs if n.startswith("notify-")]  # singletons are not replicated
    for n in (1, 2):
        assert option(svcs[f"rasa-{n}"].cmd, "--interface") == "127.0.0.1"
        assert option(svcs[f"rasa-{n}"].cmd, "--auth-token") == "tok"
        assert option(svcs[f"gateway-{n}"].cmd, "--host") == "127.0.0.1"  # only HAProxy faces the network
        assert svcs[f"actions-{n}"].env["SANIC_HOST"] == "127.0.0.1"
        assert svcs[f"rasa-{n}"].env["DVCBOT_RASA_LOCK_STORE"] == "redis"
        assert svcs[f"gateway-{n}"].env["DVCBOT_REDIS_URL"] == settings.redis_url
    config = (tmp_path / "haproxy.cfg").read_text()
    binds = re.findall(r"bind (\S+)", config)
    assert binds == ["0.0.0.0:8000", "127.0.0.1:5005", "127.0.0.1:5055"]  # Rasa and actions stay on loopback
    assert set(re.findall(r"server \S+ (\S+):\d+", config)) == {"127.0.0.1"}
    assert "tok" not in config


def test_the_rasa_lock_store_follows_the_redis_url() -> None:
    assert lock_store_env("redis://:s%40cret@redis-host:6380/3") == {
        "DVCBOT_RASA_LOCK_STORE": "redis", "DVCBOT_RASA_LOCK_HOST": "redis-host", "DVCBOT_RASA_LOCK_PORT": "6380",
        "DVCBOT_RASA_LOCK_DB": "3", "DVCBOT_RASA_LOCK_PASSWORD": "s@cret"}
    assert lock_store_env(None)["DVCBOT_RASA_LOCK_STORE"] == "in_memory"


# Rasa's SQL tracker store that remembers active conversations (tests/rasa/test_tracker_store.py checks that Rasa
# builds it from endpoints.yml)
TRACKER_STORE = "nlu.tracker_store.RememberingSQLTrackerStore"

# Rasa itself reads endpoints.yml (its ${VAR} expansion and its lock-store factory), in the Rasa venv
READ_ENDPOINTS = """
import json
from rasa.core.lock_store import LockStore
from rasa.core.tracker_store import TrackerStore
from rasa.utils.endpoints import read_endpoint_config
store = LockStore.create(read_endpoint_config("endpoints.yml", "lock_store"))
tracker = read_endpoint_config("endpoints.yml", "tracker_store")
out = {"lock_store": type(store).__name__, "tracker": tracker.type}
if hasattr(store, "red"):
    store.red.set("dvcbot:profile-test", "1", ex=5)  # really connected to the configured Redis
    out["redis"] = store.red.connection_pool.connection_kwargs["db"]
print(json.dumps(out))
"""


def read_endpoints(env: dict[str, str]) -> dict[str, object]:
    result = subprocess.run([str(RASA_PY), "-c", READ_ENDPOINTS], cwd=PROJECT_ROOT, env={**rasa_env(), **env},
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    data: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


@pytest.mark.skipif(not RASA_PY.exists(), reason="Rasa venv missing (make setup)")
def test_one_endpoints_file_in_memory_locks_without_redis(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'dvcbot.db'}")
    (rasa,) = [s for s in services(settings, Path("m.tar.gz"), "tok") if s.name == "rasa"]
    assert option(rasa.cmd, "--endpoints") == "endpoints.yml"
    env = {k: v for k, v in rasa.env.items() if k.startswith("DVCBOT_")}
    assert read_endpoints(env) == {"lock_store": "InMemoryLockStore", "tracker": TRACKER_STORE}


@pytest.mark.redis
@pytest.mark.skipif(not RASA_PY.exists(), reason="Rasa venv missing (make setup)")
def test_one_endpoints_file_redis_locks_for_replicas(redis_url: str, tmp_path: Path) -> None:
    settings = Settings(redis_url=redis_url, database_url="postgresql://postgres@127.0.0.1:5432/dvcbot_prod")
    svcs = {s.name: s for s in replica_services(settings, Path("m.tar.gz"), "tok", 2, workdir=tmp_path)}
    for name in ("rasa-1", "rasa-2"):
        assert option(svcs[name].cmd, "--endpoints") == "endpoints.yml"  # the same file as `make run`
    env = {k: v for k, v in svcs["rasa-1"].env.items() if k.startswith("DVCBOT_")}
    db = int(redis_url.rsplit("/", 1)[1]) if redis_url.rsplit("/", 1)[1].isdigit() else 0
    assert read_endpoints(env) == {"lock_store": "RedisLockStore", "tracker": TRACKER_STORE, "redis": db}
