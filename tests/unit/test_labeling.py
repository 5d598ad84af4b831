import pytest

from studio.errors import LabelingConfigError
from studio.labeling import load_labeling_config, parse_labeling_config, with_choices
from tests.conftest import REPO


def test_shipped_configs_parse():
    single = load_labeling_config(REPO / "labeling_configs" / "text_classification.xml")
    multi = load_labeling_config(REPO / "labeling_configs" / "multilabel_classification.xml")
    ner = load_labeling_config(REPO / "labeling_configs" / "ner.xml")
    assert (single.task, single.text_field, single.from_name) == ("single_label", "text", "intent")
    assert multi.task == "multi_label" and multi.kind.name == "multi_label"
    assert multi.classes[:2] == ("billing", "cards")
    assert ner.task == "spans" and ner.kind.target_column == "spans" and "person" in ner.classes


def test_names_come_from_the_xml_not_hard_coded():
    xml = ('<View><Text name="body" value="$review"/><Choices name="sentiment" toName="body" choice="multiple">'
           '<Choice value="pos"/><Choice value="neg"/></Choices></View>')
    schema = parse_labeling_config(xml)
    assert (schema.text_field, schema.from_name, schema.to_name, schema.classes) == (
        "review", "sentiment", "body", ("pos", "neg"))
    result = schema.result(["pos", "neg"])
    assert schema.labels_from_result(result) == ["pos", "neg"]
    assert schema.labels_from_result([{"from_name": "other", "value": {"choices": ["x"]}}]) == []


def test_with_choices_fills_classes_and_escapes():
    xml = (REPO / "labeling_configs" / "text_classification.xml").read_text()
    filled = parse_labeling_config(with_choices(xml, ["a", 'b "quoted" & <c>']))
    assert filled.classes == ("a", 'b "quoted" & <c>')


@pytest.mark.parametrize("xml, message", [
    ('<View><Text name="t" value="$t"/></View>', "no classification tag"),
    ('<View><Choices name="c" toName="t"><Choice value="a"/></Choices></View>', "no <Text>"),
    ("<View><Text", "not valid Label Studio XML"),
    ("", "empty"),
    ('<View><Text name="t" value="t"/><Choices name="c" toName="t"><Choice value="a"/></Choices></View>',
     "expected a task field"),
])
def test_unusable_configs_say_what_is_missing(xml, message):
    with pytest.raises(LabelingConfigError, match=message):
        parse_labeling_config(xml)
