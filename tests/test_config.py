"""Settings resolve flag > environment > TOML file > default, and are all documented."""

from pathlib import Path

import pytest

from ogasearch.config import SETTINGS, load_config
from ogasearch.errors import ConfigError

README = Path(__file__).resolve().parents[1] / "README.md"


def test_defaults() -> None:
    cfg = load_config(env={})
    assert cfg.base_url == "https://opengameart.org"
    assert cfg.data_dir == Path("ogasearch-data")
    assert cfg.delay is None
    assert cfg.art_type_list == ["2D Art"]


def test_precedence(tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text('concurrency = 5\ntimeout = 3.5\ncontact = "file@example.org"\n')
    env = {"OGASEARCH_CONCURRENCY": "7", "OGASEARCH_CONFIG": str(toml)}
    cfg = load_config({"contact": "flag@example.org"}, env=env)
    assert cfg.concurrency == 7  # env beats file
    assert cfg.timeout == 3.5  # file beats default
    assert cfg.contact == "flag@example.org"  # flag beats everything


def test_toml_in_data_dir_is_read(tmp_path: Path) -> None:
    (tmp_path / "ogasearch.toml").write_text("retries = 9\n")
    assert load_config({"data_dir": str(tmp_path)}, env={}).retries == 9
    assert load_config(env={"OGASEARCH_DATA_DIR": str(tmp_path)}).retries == 9


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        ({"base_url": "ftp://x"}, {}, "base_url"),
        ({}, {"OGASEARCH_CONCURRENCY": "lots"}, "OGASEARCH_CONCURRENCY"),
        ({"concurrency": 0}, {}, "concurrency"),
        ({"delay": -1.0}, {}, "delay"),
    ],
)
def test_bad_values_are_clear_errors(flags: dict, env: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(flags, env=env)


def test_bad_toml(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("concurrency = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(env={}, config_file=bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("speed = 3\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        load_config(env={}, config_file=unknown)


def test_robots_ttl_is_capped_at_a_day() -> None:
    assert load_config({"robots_ttl": 10 * 86400.0}, env={}).robots_ttl == 86400.0


def test_every_setting_is_documented_in_readme() -> None:
    text = README.read_text()
    missing = [s.name for s in SETTINGS if f"`{s.name}`" not in text]
    assert not missing, f"settings missing from README.md: {missing}"
