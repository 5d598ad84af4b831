import pandas as pd
import pytest

from studio.errors import DataError, EmptyDataError
from studio.importer import build_tasks, read_table
from studio.labeling import parse_labeling_config

XML = ('<View><Text name="t" value="$body"/><Choices name="c" toName="t">'
       '<Choice value="a"/><Choice value="b"/></Choices></View>')


@pytest.fixture
def schema():
    return parse_labeling_config(XML)


def test_formats_round_trip(tmp_path):
    frame = pd.DataFrame({"text": ["x", "y"], "label": ["a", ""]})
    frame.to_csv(tmp_path / "f.csv", index=False)
    frame.to_json(tmp_path / "f.jsonl", orient="records", lines=True)
    frame.to_parquet(tmp_path / "f.parquet")
    from datasets import Dataset
    Dataset.from_pandas(frame).save_to_disk(str(tmp_path / "hf"))
    for name in ("f.csv", "f.jsonl", "f.parquet", "hf"):
        assert read_table(tmp_path / name)["text"].tolist() == ["x", "y"], name


def test_bad_files_get_clear_errors(tmp_path):
    (tmp_path / "latin.csv").write_bytes("text\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        read_table(tmp_path / "latin.csv")
    (tmp_path / "bad.jsonl").write_text('{"text": "a"}\nnot json\n')
    with pytest.raises(DataError, match="could not be read"):
        read_table(tmp_path / "bad.jsonl")
    (tmp_path / "f.xlsx").write_text("x")
    with pytest.raises(DataError, match="does not read"):
        read_table(tmp_path / "f.xlsx")
    with pytest.raises(DataError, match="does not exist"):
        read_table(tmp_path / "missing.csv")
    (tmp_path / "folder").mkdir()
    with pytest.raises(DataError, match="save_to_disk"):
        read_table(tmp_path / "folder")


def test_build_tasks_annotations_predictions_and_extra_columns(schema):
    table = pd.DataFrame({"text": ["x", "y"], "label": ["a", ""], "source": ["s1", "s2"]})
    tasks = build_tasks(table, schema, label_column="label", annotator_email="p@x")
    assert tasks[0]["data"] == {"body": "x", "source": "s1"}
    assert tasks[0]["annotations"][0]["result"][0]["value"] == {"choices": ["a"]}
    assert tasks[0]["annotations"][0]["completed_by"] == {"email": "p@x"}
    assert "annotations" not in tasks[1]  # empty label: a task to label, not a label
    preds = build_tasks(table, schema, label_column="label", labels_as="predictions", model_version="v1")
    assert preds[0]["predictions"][0]["model_version"] == "v1"


def test_build_tasks_refuses_bad_input(schema):
    with pytest.raises(DataError, match="no column 'text'.*columns are: body"):
        build_tasks(pd.DataFrame({"body": ["x"]}), schema)
    with pytest.raises(DataError, match="Labels not in the labeling config: zzz"):
        build_tasks(pd.DataFrame({"text": ["x"], "label": ["zzz"]}), schema, label_column="label")
    with pytest.raises(EmptyDataError):
        build_tasks(pd.DataFrame({"text": []}), schema)
