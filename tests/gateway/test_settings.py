"""Settings: YAML plus SWITCHYARD_* overrides; bad config fails naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchyard.gateway.settings import Capability, SettingsError, build_settings, load_settings

EXAMPLE = Path(__file__).parents[2] / "examples" / "gateway.yaml"

MINIMAL = """
models:
  - name: m1
    price_input_per_mtok: 1.5
    price_output_per_mtok: 2
    endpoints: [{url: "http://127.0.0.1:9/v1"}]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_example_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    settings = load_settings(EXAMPLE)
    assert [m.name for m in settings.models] == ["llama-3.1-8b", "gpt-4o-mini", "bge-small"]
    assert settings.model("bge-small").capabilities == (Capability.embeddings,)  # type: ignore[union-attr]
    assert settings.models[1].endpoints[0].api_key() == "sk-test"


def test_defaults_apply_to_a_minimal_file(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL))
    assert settings.server.port == 8080
    assert settings.upstream.max_attempts == 3
    assert settings.models[0].endpoints[0].base_url == "http://127.0.0.1:9/v1"


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHYARD_SERVER__PORT", "9123")
    monkeypatch.setenv("SWITCHYARD_UPSTREAM__MAX_ATTEMPTS", "5")
    settings = load_settings(write(tmp_path, MINIMAL + "server: {port: 7000}\n"))
    assert settings.server.port == 9123
    assert settings.upstream.max_attempts == 5


def test_cost_uses_prices_per_million_tokens(tmp_path: Path) -> None:
    model = load_settings(write(tmp_path, MINIMAL)).models[0]
    assert model.cost_usd(1_000_000, 500_000) == pytest.approx(1.5 + 1.0)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (MINIMAL.replace("1.5", "-1"), "models.0.price_input_per_mtok"),
        (MINIMAL.replace("http://127.0.0.1:9/v1", "not a url"), "models.0.endpoints.0.url"),
        (MINIMAL + "server: {port: 70000}\n", "server.port"),
        (MINIMAL + "server: {prot: 1}\n", "server.prot"),
        ("models: []\n", "models"),
        (
            MINIMAL.replace("endpoints: [{url", "endpoints: [{api_key_env: NOPE_NOT_SET, url"),
            "api_key_env",
        ),
    ],
)
def test_invalid_config_names_the_bad_field(tmp_path: Path, text: str, field: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(write(tmp_path, text))
    assert field in str(err.value)


def test_duplicate_model_names_are_refused() -> None:
    model = {"name": "a", "price_input_per_mtok": 0, "price_output_per_mtok": 0,
             "endpoints": [{"url": "http://x/v1"}]}  # fmt: skip
    with pytest.raises(SettingsError, match="repeated: a"):
        build_settings({"models": [model, model]})


def test_unreadable_or_non_yaml_file_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings(tmp_path / "missing.yaml")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_settings(write(tmp_path, "models: [unclosed"))
    with pytest.raises(SettingsError, match="mapping"):
        load_settings(write(tmp_path, "- a list\n"))
