import pytest

from studio.config import StudioConfig, load_config
from studio.errors import ConfigError


def test_defaults_and_paths(tmp_path):
    cfg = StudioConfig.from_dict({}, root=tmp_path)
    assert cfg.labelstudio.embedded and cfg.labelstudio.base_url == "http://127.0.0.1:8080"
    assert cfg.state_dir == tmp_path / "data" / "state"


def test_toml_and_env_override(tmp_path):
    file = tmp_path / "studio.toml"
    file.write_text('[labelstudio]\nport = 9001\nproject_title = "X"\n[app]\nport = 9002\n')
    cfg = load_config(file, environ={"STUDIO_LABELSTUDIO_PORT": "9100", "STUDIO_DEMO_ENABLED": "false"})
    assert cfg.labelstudio.port == 9100 and cfg.app.port == 9002 and cfg.labelstudio.project_title == "X"
    assert cfg.demo.enabled is False and cfg.root == tmp_path


def test_typo_gets_did_you_mean(tmp_path):
    file = tmp_path / "studio.toml"
    file.write_text("[labelstudio]\nprot = 9001\n")
    with pytest.raises(ConfigError, match="Did you mean 'port'"):
        load_config(file, environ={})


def test_bad_values_name_field_and_fix(tmp_path):
    with pytest.raises(ConfigError, match=r"\[labelstudio\] port = 70000 is invalid") as err:
        StudioConfig.from_dict({"labelstudio": {"port": 70000}})
    assert "STUDIO_LABELSTUDIO_PORT" in str(err.value)
    empty = tmp_path / "studio.toml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="not a valid int"):
        load_config(empty, environ={"STUDIO_LABELSTUDIO_PORT": "eighty"})
    with pytest.raises(ConfigError, match="Did you mean 'labelstudio'"):
        load_config(empty, environ={"STUDIO_LABELSTUIDO_PORT": "1"})
    with pytest.raises(ConfigError, match="http"):
        StudioConfig.from_dict({"labelstudio": {"url": "localhost:8080"}})


def test_missing_explicit_file_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[labelstudio\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, environ={})
