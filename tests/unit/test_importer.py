import json
from pathlib import Path

import pandas as pd
import pytest

from studio.errors import DataError, EmptyDataError
from studio.importer import IMPORT_KEY, build_tasks, label_column_for, not_yet_imported, read_table
from studio.labeling import parse_labeling_config

XML = ('<View><Text name="t" value="$body"/><Choices name="c" toName="t">'
       '<Choice value="a"/><Choice value="b"/></Choices></View>')


@pytest.fixture
def schema():
    return parse_labeling_config(XML)


def without_key(data: dict) -> dict:
    return {k: v for k, v in data.items() if k != IMPORT_KEY}


def test_each_row_gets_a_stable_import_key_so_a_rerun_imports_only_what_is_missing(schema):
    table = pd.DataFrame({"body": ["x", "y", "x", "x"], "label": ["a", "b", "a", "b"]})
    keys = [t["data"][IMPORT_KEY] for t in build_tasks(table, schema, text_column="body", label_column="label")]
    again = [t["data"][IMPORT_KEY] for t in build_tasks(table, schema, text_column="body", label_column="label")]
    assert keys == again and len(set(keys)) == 4  # the same file, the same keys; a repeated row stays distinct
    assert keys[0].endswith("-0") and keys[2].endswith("-1") and keys[3].endswith("-0")  # another label: new
    tasks = build_tasks(table, schema, text_column="body", label_column="label")
    assert [t["data"]["body"] for t in not_yet_imported(tasks, set(keys[:2]))] == ["x", "x"]


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
    with pytest.raises(DataError, match="bad.jsonl, line 2 is not JSON"):
        read_table(tmp_path / "bad.jsonl")
    (tmp_path / "list.jsonl").write_text('{"text": "a"}\n[1, 2]\n')
    with pytest.raises(DataError, match=r"list.jsonl, line 2 is a JSON list, not an object \(\[1, 2\]\)"):
        read_table(tmp_path / "list.jsonl")

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
    assert without_key(tasks[0]["data"]) == {"body": "x", "source": "s1"}
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



# -- named entities (spans projects) ----------------------------------------------------------------------------
NER_XML = (Path(__file__).resolve().parents[2] / "labeling_configs" / "ner.xml").read_text()
CONLL = """-DOCSTART- O

Alice\tB-person
Smith\tI-person
flew\tO
to\tO
Paris\tB-location

Nothing\tO
here\tO
"""


@pytest.fixture
def ner():
    return parse_labeling_config(NER_XML)


def _span_items(task, key="annotations"):
    return [item["value"] for item in task[key][0]["result"]]


def test_conll_file_imports_sentences_with_their_entities(tmp_path, ner):
    for suffix in (".conll", ".bio", ".iob"):
        (tmp_path / f"data{suffix}").write_text(CONLL, encoding="utf-8")
        table = read_table(tmp_path / f"data{suffix}")
        assert list(table.columns) == ["text", "spans"] and table["text"].tolist() == [
            "Alice Smith flew to Paris", "Nothing here"], suffix
    assert label_column_for(table, ner) == "spans"  # the default for a spans project
    tasks = build_tasks(table, ner, label_column="spans", annotator_email="p@x")
    assert [without_key(t["data"]) for t in tasks] == [{"text": "Alice Smith flew to Paris"},
                                                     {"text": "Nothing here"}]
    first = tasks[0]["annotations"][0]
    assert first["completed_by"] == {"email": "p@x"}
    assert first["result"] == [
        {"from_name": "label", "to_name": "text", "type": "labels",
         "value": {"start": 0, "end": 11, "text": "Alice Smith", "labels": ["person"]}},
        {"from_name": "label", "to_name": "text", "type": "labels",
         "value": {"start": 20, "end": 25, "text": "Paris", "labels": ["location"]}}]
    # A sentence without entities is an answer ("no entities"), not an unlabeled task.
    assert tasks[1]["annotations"] == [{"result": [], "completed_by": {"email": "p@x"}}]
    drafts = build_tasks(table, ner, label_column="spans", labels_as="predictions", model_version="import-data")
    assert "annotations" not in drafts[0]
    assert drafts[0]["predictions"][0]["model_version"] == "import-data"
    assert _span_items(drafts[0], "predictions") == _span_items(tasks[0])


def test_conll_under_another_suffix_needs_the_format(tmp_path):
    (tmp_path / "data.txt").write_text(CONLL, encoding="utf-8")
    with pytest.raises(DataError, match="(?s)suffix '.txt'.*format='conll'"):
        read_table(tmp_path / "data.txt")
    assert read_table(tmp_path / "data.txt", format="conll")["text"].tolist()[1] == "Nothing here"
    with pytest.raises(DataError, match="format 'conl' is not known. Did you mean 'conll'"):
        read_table(tmp_path / "data.txt", format="conl")


def test_broken_conll_line_names_the_line(tmp_path):
    (tmp_path / "bad.conll").write_text("Alice\tB-person\nflew\tO\n\nParis\tB_location\n", encoding="utf-8")
    with pytest.raises(DataError, match="bad.conll, line 4: .*ends in tag 'B_location'"):
        read_table(tmp_path / "bad.conll")
    (tmp_path / "short.conll").write_text("Alice B-person\nflew\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 2: 'flew' has one field"):
        read_table(tmp_path / "short.conll")


def test_conll_entity_types_must_be_in_the_config(tmp_path, ner):
    (tmp_path / "caps.conll").write_text("Alice\tB-PER\nin\tO\nParis\tB-LOC\n\nBob\tB-person\n",
                                         encoding="utf-8")
    with pytest.raises(DataError, match="(?s)Labels not in the labeling config: LOC, PER\\..*it has: person"):
        build_tasks(read_table(tmp_path / "caps.conll"), ner, label_column="spans")


def test_conll_file_is_refused_for_a_classification_project(tmp_path, schema):
    (tmp_path / "data.conll").write_text(CONLL, encoding="utf-8")
    table = read_table(tmp_path / "data.conll")
    with pytest.raises(DataError, match="holds named entities.*task kind 'single_label'"):
        label_column_for(table, schema, source_format="conll")
    # Classification keeps its behaviour: labels only when a column is named.
    assert label_column_for(pd.DataFrame({"text": ["x"], "label": ["a"]}), schema) is None
    assert label_column_for(pd.DataFrame({"text": ["x"], "label": ["a"]}), schema, requested="label") == "label"


def test_jsonl_and_parquet_with_character_spans(tmp_path, ner):
    rows = [{"text": "Bob lives in Rome", "spans": [{"start": 0, "end": 3, "label": "person"},
                                                   [13, 17, "location"]]},
            {"text": "no entities", "spans": []},
            {"text": "not labeled yet"},
            {"text": "Acme sells Widgets", "spans": json.dumps([{"start": 11, "end": 18, "labels": ["product"]}])}]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    table = read_table(tmp_path / "d.jsonl")
    assert label_column_for(table, ner) == "spans"
    tasks = build_tasks(table, ner, label_column="spans")
    assert _span_items(tasks[0]) == [{"start": 0, "end": 3, "text": "Bob", "labels": ["person"]},
                                     {"start": 13, "end": 17, "text": "Rome", "labels": ["location"]}]
    assert tasks[1]["annotations"][0]["result"] == []
    assert "annotations" not in tasks[2] and without_key(tasks[2]["data"]) == {"text": "not labeled yet"}
    assert _span_items(tasks[3]) == [{"start": 11, "end": 18, "text": "Widgets", "labels": ["product"]}]
    # parquet hands list cells back as numpy arrays of dicts
    pd.DataFrame({"text": ["Bob lives in Rome"], "spans": [[{"start": 0, "end": 3, "label": "person"}]]}).to_parquet(
        tmp_path / "d.parquet")
    assert _span_items(build_tasks(read_table(tmp_path / "d.parquet"), ner, label_column="spans")[0]) == [
        {"start": 0, "end": 3, "text": "Bob", "labels": ["person"]}]
    # no spans column: the texts arrive unlabeled
    assert label_column_for(pd.DataFrame({"text": ["x"]}), ner) is None


def test_span_past_the_end_of_the_text_stops_the_import(ner):
    table = pd.DataFrame({"text": ["Bob is here", "Rome"],
                          "spans": [[{"start": 0, "end": 3, "label": "person"}],
                                    [{"start": 0, "end": 9, "label": "location"}]]})
    with pytest.raises(DataError, match="(?s)1 row\\(s\\).*row 2: .*Nothing was imported") as caught:
        build_tasks(table, ner, label_column="spans")
    assert "row 1" not in str(caught.value)
    malformed = pd.DataFrame({"text": ["Bob"], "spans": ['[{"start": 0, "label": "person"}]']})
    with pytest.raises(DataError, match="row 1, span 0: .*lacks 'start' or 'end'"):
        build_tasks(malformed, ner, label_column="spans")


def test_cells_become_text_and_json_not_python_reprs(schema):
    table = pd.DataFrame({"body": [b"raw bytes", None], "when": [pd.NaT, pd.Timestamp("2026-01-01")],
                          "score": [float("nan"), 1.5]})
    tasks = build_tasks(table, schema, text_column="body")
    assert [t["data"]["body"] for t in tasks] == ["raw bytes", ""]
    assert tasks[0]["data"]["when"] is None and tasks[0]["data"]["score"] is None
    assert tasks[1]["data"]["score"] == 1.5
    with pytest.raises(DataError, match="not UTF-8 text"):
        build_tasks(pd.DataFrame({"body": [b"\xff\xfe"]}), schema, text_column="body")
