import pytest

from relay.config import HostPort, Settings, describe
from relay.errors import ConfigError


def test_defaults_are_loopback_only():
    s = Settings.load(environ={})
    assert s.listen == HostPort("127.0.0.1", 10025)
    assert s.allows("127.0.0.1") and s.allows("::1") and s.allows("::ffff:127.0.0.1")
    assert not s.allows("10.0.0.1") and not s.allows("not-an-ip")


def test_environment_overrides_file(tmp_path):
    cfg = tmp_path / "relay.toml"
    cfg.write_text('listen = "127.0.0.1:2525"\nmax_message_size = "10MiB"\nupstream = "127.0.0.1:2626"\n')
    s = Settings.load(cfg, environ={"RELAY_UPSTREAM": "[::1]:25"})
    assert s.listen.port == 2525
    assert s.max_message_size == 10 * 1024 * 1024
    assert s.upstream == HostPort("::1", 25)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RELAY_LISTEN": "nohost"}, "environment RELAY_LISTEN: expected host:port"),
        ({"RELAY_MAX_MESSAGE_SIZE": "big"}, "RELAY_MAX_MESSAGE_SIZE: expected a size"),
        ({"RELAY_ALLOWED_CLIENTS": "10.0.0.300/8"}, "is not a network in CIDR form"),
        ({"RELAY_CLAMD": "http://x"}, "expected tcp://host:port or unix:///path"),
        ({"RELAY_QUARANTINE": "mysql://x"}, "expected sqlite:///path"),
        ({"RELAY_WORKERS": "0"}, "expected an integer of at least 1"),
        ({"RELAY_UPSTREAM_TLS": "maybe"}, "expected one of: off, opportunistic, required"),
        ({"RELAY_TLS_CERT": "/c.pem"}, "tls_cert and tls_key: give both or neither"),
    ],
)
def test_bad_values_name_the_key(env, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        Settings.load(environ=env)


def test_unknown_key_in_file_is_an_error(tmp_path):
    cfg = tmp_path / "relay.toml"
    cfg.write_text('listn = "127.0.0.1:2525"\n')
    with pytest.raises(ConfigError, match=r"key 'listn': unknown setting \(did you mean listen\?\)"):
        Settings.load(cfg, environ={})


def test_every_setting_is_described():
    rows = describe()
    assert {r[0] for r in rows} >= {"listen", "upstream", "clamd", "policy", "quarantine", "allowed_clients"}
    assert all(r[3] for r in rows)
