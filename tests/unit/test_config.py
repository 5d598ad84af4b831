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


SUPPORT = ('[projects.support]\ntitle = "Customer support answers"\nlabeling_config = "labeling_configs/sft.xml"\n'
           '[projects.support.demo]\nfile = "data/demo/customer_support_demo.csv"\ntext_column = "prompt"\n'
           'label_column = "response"\nannotated = 150\n')


def test_the_primary_project_is_labelstudio_and_demo_and_further_ones_are_projects_tables(tmp_path):
    file = tmp_path / "studio.toml"
    file.write_text('[labelstudio]\nproject_key = "banking"\nproject_title = "Banking"\nproject_id = 4\n'
                    '[demo]\nannotated = 10\n' + SUPPORT + '[projects.ner]\ntitle = "Entities"\n')
    cfg = load_config(file, environ={})
    assert list(cfg.projects) == ["banking", "support", "ner"]  # the primary first, then in file order
    primary, support, ner = cfg.projects.values()
    assert primary.primary and (primary.title, primary.project_id, primary.demo.annotated) == ("Banking", 4, 10)
    assert primary.labeling_config == "labeling_configs/text_classification.xml" and primary.section == "labelstudio"
    assert not support.primary and support.section == "projects.support" and support.project_id == 0
    assert (support.demo.enabled, support.demo.file, support.demo.text_column, support.demo.label_column,
            support.demo.annotated) == (True, "data/demo/customer_support_demo.csv", "prompt", "response", 150)
    assert support.demo.annotator == "support-demo@demo.local"  # not the banking77 annotator
    assert ner.demo.enabled is False  # no demo table: no demo data
    assert cfg.project().key == "banking" and cfg.project("ner") is not None
    # The primary project is read live from [labelstudio]: callers (and tests) set its id after loading.
    cfg.labelstudio.project_id = 9
    assert cfg.project("banking").project_id == 9
    again = StudioConfig.from_dict(cfg.to_dict(), root=tmp_path)
    assert again.projects["support"] == support


def test_a_config_without_projects_tables_has_one_project_as_before(tmp_path):
    cfg = StudioConfig.from_dict({"labelstudio": {"project_title": "X"}}, root=tmp_path)
    assert list(cfg.projects) == ["intents"] and cfg.project().title == "X" and cfg.project().demo is cfg.demo


def test_the_shipped_studio_toml_has_the_support_project():
    from tests.conftest import REPO

    cfg = load_config(REPO / "studio.toml", environ={})
    support = cfg.project("support")
    assert list(cfg.projects) == ["intents", "support"] and support.title == "Customer support answers"
    assert support.labeling_config == "labeling_configs/sft.xml"
    assert (support.demo.file, support.demo.text_column, support.demo.label_column, support.demo.annotated) == (
        "data/demo/customer_support_demo.csv", "prompt", "response", 150)


@pytest.mark.parametrize("toml, message", [
    ('[projects.support]\ntitel = "S"\n', r"\[projects.support\] has no key 'titel'. Did you mean 'title'"),
    ('[projects.support]\nlabeling_config = "x.xml"\n', r"\[projects.support\] has no title"),
    ('[projects.support]\ntitle = "S"\n[projects.support.demo]\nfiel = "a.csv"\n',
     r"\[projects.support.demo\] names no file"),
    ('[projects.support]\ntitle = "S"\n[projects.support.demo]\nfile = "a.csv"\nanotated = 3\n',
     r"\[projects.support.demo\] has no key 'anotated'. Did you mean 'annotated'"),
    ('[projects.support]\ntitle = "S"\n[projects.support.demo]\nfile = "a.csv"\nannotated = -1\n',
     r"\[projects.support.demo\] annotated = -1 is invalid"),
    ('[projects.support]\ntitle = "S"\nproject_id = "seven"\n', r"\[projects.support\] project_id = 'seven' is not"),
    ('[projects.Support]\ntitle = "S"\n', "cannot name a project"),
    ('[projects.intents]\ntitle = "S"\n', "has the key of the primary project"),
    ('[projects.support]\ntitle = "Banking77 intents"\n', "name the same Label Studio project"),
    ('[projects]\nsupport = 3\n', r"\[projects.support\] must be a table"),
    ('[labelstudio]\nproject_key = "My Project"\n', r"\[labelstudio\] project_key = 'My Project' is invalid"),
])
def test_bad_project_tables_name_the_table_the_key_and_the_fix(tmp_path, toml, message):
    file = tmp_path / "studio.toml"
    file.write_text(toml)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(file, environ={})
    assert "Fix: " in str(err.value)
    if "projects." in message:  # the project tables have no STUDIO_* overrides, so the fix does not offer one
        assert "STUDIO_" not in str(err.value)


def test_environment_overrides_keep_working_for_the_primary_project_and_pick_the_project(tmp_path):
    file = tmp_path / "studio.toml"
    file.write_text(SUPPORT)
    cfg = load_config(file, environ={"STUDIO_LABELSTUDIO_PROJECT_TITLE": "Env title", "STUDIO_DEMO_ANNOTATED": "5",
                                     "STUDIO_LABELSTUDIO_PROJECT_KEY": "main", "STUDIO_PROJECT": "support"})
    assert list(cfg.projects) == ["main", "support"]
    assert cfg.projects["main"].title == "Env title" and cfg.projects["main"].demo.annotated == 5
    assert cfg.project().key == "support"  # STUDIO_PROJECT: the project opened when none is named
    with pytest.raises(ConfigError, match=r"STUDIO_PROJECT names no configured project 'suport'. Did you mean "
                                          r"'support'\? Configured projects: intents, support"):
        load_config(file, environ={"STUDIO_PROJECT": "suport"})
    with pytest.raises(ConfigError, match="have no environment overrides"):
        load_config(file, environ={"STUDIO_PROJECTS_SUPPORT_TITLE": "x"})


def test_an_unknown_project_key_lists_the_known_ones(tmp_path):
    file = tmp_path / "studio.toml"
    file.write_text(SUPPORT)
    cfg = load_config(file, environ={})
    with pytest.raises(ConfigError, match="--project names no configured project 'nope'. Configured projects: "
                                          "intents, support") as err:
        cfg.project("nope")
    assert "studio projects" in str(err.value)
