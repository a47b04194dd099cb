"""load_settings: flag > environment > config file > default, typed, strict about typos."""

from __future__ import annotations

from pathlib import Path

import pytest

from spendgate.settings import SETTINGS, ProviderConfig, Settings, SettingsError, load_settings


@pytest.fixture(autouse=True)
def _empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every test runs where no stray spendgate.toml can be picked up by accident.
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_with_nothing_set() -> None:
    settings = load_settings({}, {})
    assert settings == Settings()
    assert settings.db == "sqlite:///./spendgate.db"
    assert settings.redis_url is None
    assert settings.openai_base_url == "https://api.openai.com/v1"
    assert settings.anthropic_base_url == "https://api.anthropic.com"
    assert settings.prices is None
    assert settings.port == 4100
    assert settings.providers == {}
    assert settings.credentials == {}


def test_every_setting_has_a_matching_default_in_settings() -> None:
    defaults = Settings()
    for setting in SETTINGS:
        assert getattr(defaults, setting.name) == setting.default, setting.name


@pytest.mark.parametrize(
    ("name", "env", "file_line", "file_value", "env_value", "env_typed", "flag_value"),
    [
        (
            "db",
            "SPENDGATE_DB",
            'db = "sqlite:///file.db"',
            "sqlite:///file.db",
            "sqlite:///env.db",
            None,
            "sqlite:///f.db",
        ),
        ("port", "SPENDGATE_PORT", "port = 5003", 5003, "5002", 5002, 5001),
        (
            "openai_base_url",
            "SPENDGATE_OPENAI_BASE_URL",
            'openai_base_url = "http://file/v1"',
            "http://file/v1",
            "http://env/v1",
            None,
            "http://flag/v1",
        ),
        (
            "redis_url",
            "SPENDGATE_REDIS_URL",
            'redis_url = "redis://file"',
            "redis://file",
            "redis://env",
            None,
            "redis://f",
        ),
        ("flush_interval", "SPENDGATE_FLUSH_INTERVAL", "flush_interval = 2.5", 2.5, "1.5", 1.5, 0.5),
    ],
)
def test_precedence_flag_env_file_default(
    tmp_path: Path,
    name: str,
    env: str,
    file_line: str,
    file_value: object,
    env_value: str,
    env_typed: object,
    flag_value: object,
) -> None:
    config = write(tmp_path / "c.toml", file_line + "\n")
    default = next(s.default for s in SETTINGS if s.name == name)
    assert getattr(load_settings({}, {}), name) == default
    assert getattr(load_settings({}, {}, config), name) == file_value
    assert getattr(load_settings({}, {env: env_value}, config), name) == (env_typed or env_value)
    assert getattr(load_settings({name: flag_value}, {env: env_value}, config), name) == flag_value
    assert len({repr(v) for v in (default, file_value, env_typed or env_value, flag_value)}) == 4


def test_flag_none_means_not_given(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", "port = 6000\n")
    assert load_settings({"port": None, "db": None}, {}, config).port == 6000


def test_empty_env_var_does_not_override_file(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", 'db = "sqlite:///file.db"\n')
    assert load_settings({}, {"SPENDGATE_DB": ""}, config).db == "sqlite:///file.db"


def test_env_values_are_typed() -> None:
    settings = load_settings({}, {"SPENDGATE_PORT": "8080", "SPENDGATE_UPSTREAM_TIMEOUT": "30"})
    assert settings.port == 8080
    assert settings.upstream_timeout == 30.0
    assert isinstance(settings.upstream_timeout, float)


def test_toml_int_accepted_for_a_float_setting(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", "upstream_timeout = 30\n")
    settings = load_settings({}, {}, config)
    assert settings.upstream_timeout == 30.0
    assert isinstance(settings.upstream_timeout, float)


@pytest.mark.parametrize(
    ("flags", "environ", "file_text", "setting", "origin"),
    [
        ({}, {"SPENDGATE_PORT": "eighty"}, "", "port", "SPENDGATE_PORT"),
        ({}, {"SPENDGATE_FLUSH_INTERVAL": "soon"}, "", "flush_interval", "SPENDGATE_FLUSH_INTERVAL"),
        ({"port": "x"}, {}, "", "port", "command line"),
        ({}, {}, 'port = "abc"\n', "port", "c.toml"),
        ({}, {}, "port = true\n", "port", "c.toml"),
        ({}, {}, "port = 4100.5\n", "port", "c.toml"),
        ({}, {}, "db = 5\n", "db", "c.toml"),
        ({}, {}, 'db = ["sqlite:///a.db"]\n', "db", "c.toml"),
        ({}, {}, 'connect_timeout = "fast"\n', "connect_timeout", "c.toml"),
    ],
)
def test_type_errors_name_the_setting_and_where_it_came_from(
    tmp_path: Path, flags: dict, environ: dict, file_text: str, setting: str, origin: str
) -> None:
    config = write(tmp_path / "c.toml", file_text)
    with pytest.raises(SettingsError) as excinfo:
        load_settings(flags, environ, config)
    message = str(excinfo.value)
    assert setting in message
    assert origin in message


def test_unknown_keys_in_file_refused(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", 'db = "sqlite:///x.db"\nportt = 1\n')
    with pytest.raises(SettingsError, match="portt"):
        load_settings({}, {}, config)


def test_malformed_toml_refused(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", "port = = 3\n")
    with pytest.raises(SettingsError, match=r"c\.toml"):
        load_settings({}, {}, config)


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings({}, {}, tmp_path / "nope.toml")
    with pytest.raises(SettingsError):
        load_settings({}, {}, tmp_path)  # a directory is not a config file


def test_spendgate_toml_in_cwd_read_without_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "project"
    work.mkdir()
    write(work / "spendgate.toml", 'db = "sqlite:///from-cwd.db"\nport = 4200\n')
    monkeypatch.chdir(work)
    settings = load_settings({}, {})
    assert settings.db == "sqlite:///from-cwd.db"
    assert settings.port == 4200
    # ... and a flag or env still win over it
    assert load_settings({"port": 1}, {"SPENDGATE_DB": "sqlite:///env.db"}).db == "sqlite:///env.db"
    assert load_settings({"port": 1}, {}).port == 1


def test_explicit_config_wins_over_cwd_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "project"
    work.mkdir()
    write(work / "spendgate.toml", "port = 4200\n")
    other = write(tmp_path / "other.toml", "port = 4300\n")
    monkeypatch.chdir(work)
    assert load_settings({}, {}, other).port == 4300


def test_bad_cwd_file_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "project"
    work.mkdir()
    write(work / "spendgate.toml", "bogus = 1\n")
    monkeypatch.chdir(work)
    with pytest.raises(SettingsError, match="bogus"):
        load_settings({}, {})


# --- [providers.NAME] -------------------------------------------------------------------
PROVIDERS_TOML = """
[providers.groq]
base_url = "https://api.groq.com/openai/v1/"
api_key_env = "GROQ_API_KEY"
price_provider = "groq"

[providers.local]
base_url = "http://127.0.0.1:11434/v1"
"""


def test_provider_tables(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", PROVIDERS_TOML)
    settings = load_settings({}, {}, config)
    assert settings.providers == {
        "groq": ProviderConfig(
            name="groq",
            base_url="https://api.groq.com/openai/v1",  # trailing slash dropped
            api_key_env="GROQ_API_KEY",
            price_provider="groq",
        ),
        "local": ProviderConfig(name="local", base_url="http://127.0.0.1:11434/v1"),
    }


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[providers.groq]\napi_key_env = "GROQ_API_KEY"\n', "base_url"),
        ("[providers.groq]\nbase_url = 5\n", "base_url"),
        ('[providers.groq]\nbase_url = "https://x"\napi_key = "sk-oops"\n', "api_key"),
        ('[providers.openai]\nbase_url = "https://x"\n', "openai"),
        ('[providers.anthropic]\nbase_url = "https://x"\n', "anthropic"),
        ('providers = "groq"\n', "providers"),
        ('[providers]\ngroq = "https://x"\n', "groq"),
        ('[providers.groq]\nbase_url = "https://x"\napi_key_env = 5\n', "api_key_env"),
        ('[providers.groq]\nbase_url = "https://x"\nprice_provider = ["groq"]\n', "price_provider"),
    ],
)
def test_provider_tables_refused(tmp_path: Path, text: str, needle: str) -> None:
    config = write(tmp_path / "c.toml", text)
    with pytest.raises(SettingsError) as excinfo:
        load_settings({}, {"GROQ_API_KEY": "gsk-1"}, config)
    assert needle in str(excinfo.value)


def test_non_string_api_key_env_refused_with_real_environ(tmp_path: Path) -> None:
    # os.environ (not a dict) raises TypeError on a non-string key: must be a SettingsError.
    config = write(tmp_path / "c.toml", '[providers.groq]\nbase_url = "https://x"\napi_key_env = 5\n')
    with pytest.raises(SettingsError):
        load_settings({}, None, config)


# --- credentials ------------------------------------------------------------------------
def test_credentials_only_from_known_variables(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", PROVIDERS_TOML)
    environ = {
        "OPENAI_API_KEY": "sk-openai",
        "ANTHROPIC_API_KEY": "sk-ant",
        "GROQ_API_KEY": "gsk-groq",
        "MISTRAL_API_KEY": "not-configured",
        "AWS_SECRET_ACCESS_KEY": "never",
        "HOME": "/root",
    }
    settings = load_settings({}, environ, config)
    assert dict(settings.credentials) == {
        "OPENAI_API_KEY": "sk-openai",
        "ANTHROPIC_API_KEY": "sk-ant",
        "GROQ_API_KEY": "gsk-groq",
    }
    # ... and they never show up in a printed Settings
    assert "sk-openai" not in repr(settings)


def test_credentials_without_providers_and_empty_values(tmp_path: Path) -> None:
    settings = load_settings({}, {"OPENAI_API_KEY": "", "ANTHROPIC_API_KEY": "sk-ant", "GROQ_API_KEY": "g"})
    assert dict(settings.credentials) == {"ANTHROPIC_API_KEY": "sk-ant"}


def test_with_overrides_ignores_none() -> None:
    settings = Settings().with_overrides(port=9000, db=None)
    assert settings.port == 9000
    assert settings.db == Settings().db


def test_every_setting_has_a_field_and_every_field_a_setting() -> None:
    from dataclasses import fields

    from spendgate.settings import SETTINGS, Settings

    table = {s.name: s for s in SETTINGS}
    structured = {"providers", "credentials", "body_attribution", "reconcile", "finance"}
    assert set(table) == {f.name for f in fields(Settings)} - structured
    defaults = Settings()
    for name, setting in table.items():
        assert getattr(defaults, name) == setting.default, name
        assert setting.env == f"SPENDGATE_{name.upper()}", name
