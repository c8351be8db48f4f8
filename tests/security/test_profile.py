"""The production profile (``make run-prod``) exposes only HAProxy's gateway port; replicas stay on loopback."""

from __future__ import annotations

import re
from pathlib import Path

from dvcbot.settings import Settings
from dvcbot.supervisor import lock_store_env, replica_services


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
