from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gateway.config import ConfigError, Seconds, load_config, parse_duration, sqlite_path
from gateway.testing.support import REPO, write_config


def test_the_shipped_config_has_the_three_regions_and_sg_by_default() -> None:
    config = load_config(REPO / "config.yaml", environ={})
    assert set(config.regions.regions) == {"eu", "sg", "us"}
    assert config.regions.default == "sg"
    assert config.regions.for_host("API.EU.amity.co:443").name == "eu"
    assert config.regions.for_host("api.amity.co").name == "sg"
    assert config.regions.for_host("api.us.amity.co").name == "us"
    assert config.regions.for_host("unknown.example").name == "sg"
    assert config.regions.for_host(None).name == "sg"
    assert config.tokens.admin_rotation_grace == Seconds(86400)
    assert config.tokens.auth_token_ttl == Seconds(600)
    assert config.proxy.max_body_bytes == 1 << 30


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("10m", 600), ("24h", 86400), ("1d", 86400), ("365d", 365 * 86400),
     ("0", 0), (0, 0), ("50ms", 0.05)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["1", "1w", "-1d", "1.5h", "", "ten minutes", 30, True, None])
def test_bad_durations_are_refused(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"serverz": {}}, ["serverz"]),
        ({"server": {"http": {"host": "127.0.0.1", "port": "eighty"}}},
         ["server.http.port", "'eighty'", "integer"]),
        ({"server": {"http": {"host": "127.0.0.1", "port": 70000}}}, ["server.http.port", "70000"]),
        ({"server": {"colour": "blue"}}, ["server.colour"]),
        ({"tokens": {"leeway": "1w"}}, ["tokens.leeway", "'1w'", "duration"]),
        ({"tokens": {"admin_token_ttl": "forever"}}, ["tokens.admin_token_ttl", "forever"]),
        ({"proxy": {"read_timeout": "-1s"}}, ["proxy.read_timeout"]),
        ({"store": {"url": "mysql://x"}}, ["store.url", "mysql://x"]),
        ({"server": {"trusted_proxies": ["10.0.0.0/33"]}}, ["server.trusted_proxies[0]"]),
        ({"server": {"cors_origins": ["https://a.example/path"]}}, ["server.cors_origins[0]"]),
        ({"server": {"cors_origins": ["app.example.com"]}}, ["server.cors_origins[0]"]),
        ({"server": {"workers": 0}}, ["server.workers"]),
        ({"server": {"hold_writes_from": -1}}, ["server.hold_writes_from"]),
        ({"regions": {"default": "mars", "sg": {"hosts": [], "upstreams": ["http://a"]}}},
         ["regions.default", "mars"]),
        ({"regions": {"default": "sg", "sg": {"hosts": [], "upstreams": ["ftp://a"]}}},
         ["regions.sg.upstreams[0]", "ftp://a"]),
        ({"regions": {"default": "sg", "sg": {"hosts": [], "upstreams": []}}},
         ["regions.sg.upstreams"]),
        ({"regions": {"default": "sg", "sg": {"upstreams": ["http://a"], "weight": 1}}},
         ["regions.sg.weight"]),
        ({"policies": ["does-not-exist.yaml"]}, ["policies[0]", "does-not-exist.yaml"]),
        ({"mtls": {"client_cert_header": 5}}, []),  # ints are accepted as strings
    ],
)
def test_bad_values_name_the_key_and_value(
    tmp_path: Path, overrides: dict[str, object], names: list[str]
) -> None:
    path = write_config(tmp_path, overrides)
    if not names:
        load_config(path, environ={})
        return
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    for name in names:
        assert name in str(caught.value)


def test_missing_and_unparsable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml", environ={})
    broken = tmp_path / "broken.yaml"
    broken.write_text("server: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken, environ={})
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listy, environ={})


def test_environment_overrides_two_level_keys_only(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    config = load_config(path, environ={
        "GATEWAY_STORE_URL": "sqlite:////tmp/elsewhere.db",
        "GATEWAY_TOKENS_LEEWAY": "5s",
        "GATEWAY_SERVER_WORKERS": "3",
        "GATEWAY_SERVER_NOSUCHKEY": "1",  # ignored
        "GATEWAY_NOSECTION_KEY": "1",  # ignored
        "GATEWAY_CONFIG": "/nowhere",  # not a section key: ignored
    })
    assert config.store.url == "sqlite:////tmp/elsewhere.db"
    assert sqlite_path(config) == Path("/tmp/elsewhere.db")
    assert config.tokens.leeway == Seconds(5)
    assert config.server.workers == 3
    with pytest.raises(ConfigError, match=r"tokens\.leeway"):
        load_config(path, environ={"GATEWAY_TOKENS_LEEWAY": "soon"})


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    folder = tmp_path / "deploy"
    folder.mkdir()
    config = load_config(write_config(folder), environ={})
    assert sqlite_path(config) == folder / "var" / "gateway.db"
    assert config.server.https is not None
    assert Path(config.server.https.cert) == folder / "certs" / "server.pem"
    assert Path(config.mtls.ca_cert) == folder / "certs" / "ca.pem"  # a default, resolved too
    assert Path(config.tokens.signing_keys) == folder / "certs" / "keys"


def test_a_listener_can_be_disabled(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    raw = yaml.safe_load(path.read_text())
    raw["server"]["https"] = None
    path.write_text(yaml.safe_dump(raw))
    assert load_config(path, environ={}).server.https is None
    raw["server"]["http"] = None
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"at least one of http or https"):
        load_config(path, environ={})
