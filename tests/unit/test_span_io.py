"""Span readers and writers: CoNLL files (real WNUT-17 sentences as literals), span cells of imported rows, and
Label Studio results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from studio.errors import DataError, EmptyDataError
from studio.span_io import conll_to_records, read_conll, spans_from_result, spans_from_value, spans_result
from studio.spans import bio_tag_names, spans_to_tags, tags_to_spans, word_offsets

# Eleven sentences of WNUT-17 (wnut17train.conll and emerging.test.annotated), "token<TAB>tag" pairs separated by
# spaces: multi-token entities, adjacent entities of one type, punctuation inside entities, a non-ASCII token.
WNUT = [
    ("@paulwalk\tO It\tO 's\tO the\tO view\tO from\tO where\tO I\tO 'm\tO living\tO for\tO two\tO weeks\tO "
     ".\tO Empire\tB-location State\tI-location Building\tI-location =\tO ESB\tB-location .\tO Pretty\tO "
     "bad\tO storm\tO here\tO last\tO evening\tO .\tO"),
    ("Really\tO hope\tO I\tO can\tO get\tO to\tO @glasgowfilm\tO for\tO Winter\tB-creative-work "
     "'s\tI-creative-work Bone\tI-creative-work -\tO need\tO to\tO get\tO on\tO with\tO job\tO "
     "applications\tO tonight\tO then\tO !\tO Trailer\tO :\tO http://bit.ly/bhUlum\tO"),
    ("What\tO Do\tO S.F.\tB-location Rabbis\tO Eat\tO Before\tO and\tO After\tO Yom\tO Kippur\tO ?\tO "
     "We\tO Asked\tO Five\tO to\tO Enlighten\tO Us\tO !\tO via\tO @SFoodie\tO http://bit.ly/aQrFUz\tO"),
    ("Analogy\tO time\tO !\tO Loyola\tB-location Chicago\tB-location :\tO Alexei\tB-person ::\tO "
     "Philadelphia\tB-group Eagles\tI-group :\tO Donovan\tB-person McNabb\tI-person (\tO even\tO b4\tO "
     "the\tO trade)\tO .\tO #nfl\tO #fb\tO"),
    ("Small\tO Biz\tO Tech\tO Tour\tO 2010\tO Launches\tO Five\tO City\tO Tour\tO MONTCLAIR\tB-location "
     "N.J.\tB-location ...:\tO The\tO all\tO day\tO event\tO features\tO America's...\tO "
     "http://tinyurl.com/28hd9fu\tO #fb\tO"),
    ("super\tB-product nintendo\tI-product sega\tB-product genesis\tI-product ,\tO when\tO i\tO was\tO "
     "dead\tO broke\tO man\tO i\tO couldn't\tO picture\tO this\tO !\tO #nowplaying\tO Juicy\tO by\tO "
     "Biggie\tO"),
    ("RT\tO @ravenalexis\tB-person Wanna\tO meet\tO me\tO ,\tO @jessejane\tB-person ,\tO "
     "@rileysteele\tB-person ,\tO and\tO @kayden_kross\tB-person ?\tO Come\tO to\tO the\tO "
     "Body\tB-creative-work Heat\tI-creative-work signing\tO at\tO Hustler\tB-location "
     "Hollywood\tI-location Sep\tO 23rd\tO 8-10pm\tO"),
    ("Living\tB-location Computer\tI-location Museum\tI-location +\tI-location Labs\tI-location ,\tO "
     "Skyview\tB-location Observatory\tI-location ,\tO Smith\tB-location Tower\tI-location and\tO "
     "Observation\tB-location Deck\tI-location ,\tO"),
    ("*\tO *\tO submission\tO title\tO *\tO *\tO :\tO PSG\tB-group tell\tO Inter\tB-group &\tO amp\tO ;\tO "
     "Juve\tB-group Verratti\tB-person will\tO cost\tO €\tO 100\tO M\tO"),
    ("[\tO Source\tO ]\tO (\tO "
     "https://www.reddit.com/r/ireland/comments/5lqzoe/found_this_kind_of_cool/\tO )\tO at\tO "
     "/\tB-location r\tI-location /\tI-location ireland\tB-location"),
    ("*\tO *\tO submission\tO title\tO *\tO *\tO :\tO Proposed\tO class\tO action\tO against\tO B\tB-group "
     ".\tI-group C\tI-group .\tI-group"),
]
# The entities of each sentence, as seqeval's get_entities reads the tags.
WNUT_ENTITIES = [
    [("location", "Empire State Building"), ("location", "ESB")],
    [("creative-work", "Winter 's Bone")],
    [("location", "S.F.")],
    [("location", "Loyola"), ("location", "Chicago"), ("person", "Alexei"), ("group", "Philadelphia Eagles"),
     ("person", "Donovan McNabb")],
    [("location", "MONTCLAIR"), ("location", "N.J.")],
    [("product", "super nintendo"), ("product", "sega genesis")],
    [("person", "@ravenalexis"), ("person", "@jessejane"), ("person", "@rileysteele"), ("person", "@kayden_kross"),
     ("creative-work", "Body Heat"), ("location", "Hustler Hollywood")],
    [("location", "Living Computer Museum + Labs"), ("location", "Skyview Observatory"), ("location", "Smith Tower"),
     ("location", "Observation Deck")],
    [("group", "PSG"), ("group", "Inter"), ("group", "Juve"), ("person", "Verratti")],
    [("location", "/ r /"), ("location", "ireland")],
    [("group", "B . C .")],
]
WNUT_TYPES = ["corporation", "creative-work", "group", "location", "person", "product"]


def write(tmp_path: Path, content: str | bytes, name: str = "data.conll") -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


@pytest.fixture()
def wnut_file(tmp_path: Path) -> Path:
    # WNUT's own layout: sentences end with a line holding a single tab.
    return write(tmp_path, "".join("\n".join(s.split(" ")) + "\n\t\n" for s in WNUT))


def test_wnut_sentences_read_and_give_their_entities(wnut_file: Path) -> None:
    sentences = read_conll(wnut_file)
    assert len(sentences) == len(WNUT)
    assert sentences[2][0][:3] == ["What", "Do", "S.F."] and sentences[2][1][:3] == ["O", "O", "B-location"]
    records = conll_to_records(sentences)
    for (tokens, _), record, expected in zip(sentences, records, WNUT_ENTITIES):
        assert record["text"] == " ".join(tokens)
        assert [(s["label"], s["text"]) for s in record["spans"]] == expected
        assert all(record["text"][s["start"]:s["end"]] == s["text"] for s in record["spans"])


def test_wnut_spans_survive_the_tag_round_trip(wnut_file: Path) -> None:
    names = bio_tag_names(WNUT_TYPES)
    for record in conll_to_records(read_conll(wnut_file)):
        offsets = word_offsets(record["text"])
        tags = [names[i] for i in spans_to_tags(offsets, record["spans"], WNUT_TYPES)]
        assert tags_to_spans(record["text"], offsets, tags) == record["spans"]


def test_conll_2003_columns_docstart_and_crlf(tmp_path: Path) -> None:
    path = write(tmp_path, "-DOCSTART- -X- -X- O\r\n\r\nEU NNP B-NP B-ORG\r\nrejects VBZ B-VP O\r\n"
                           "German JJ B-NP B-MISC\r\n\r\nPeter NNP B-NP B-PER\r\nBlackburn NNP I-NP I-PER")
    assert read_conll(path) == [(["EU", "rejects", "German"], ["B-ORG", "O", "B-MISC"]),
                                (["Peter", "Blackburn"], ["B-PER", "I-PER"])]


def test_tab_lines_keep_tokens_with_unicode_spaces_whole(tmp_path: Path) -> None:
    path = write(tmp_path, "caf\u00a0bar\tO\nx\x85y\tB-person\n")
    assert read_conll(path) == [(["caf\u00a0bar", "x\x85y"], ["O", "B-person"])]


def test_a_line_with_one_field_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "Peter\tB-PER\nBlackburn\tI-PER\n\nEU\n")
    with pytest.raises(DataError) as err:
        read_conll(path)
    message = str(err.value)
    assert "line 4" in message and "'EU'" in message and str(path) in message
    assert err.value.hint


def test_a_tag_that_is_not_bio_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "Peter B_PER\n")
    with pytest.raises(DataError, match=r"line 1: 'Peter B_PER' ends in tag 'B_PER'") as err:
        read_conll(path)
    assert "B-" in err.value.hint
    with pytest.raises(DataError, match="line 2"):
        read_conll(write(tmp_path, "Peter B-PER\nPan S-PER\n"))


def test_non_utf8_names_the_byte_offset(tmp_path: Path) -> None:
    path = write(tmp_path, b"ok\tO\n\nCaf\xe9\tO\n")
    with pytest.raises(DataError, match=r"byte 0xe9 at byte offset 9 \(line 3\)") as err:
        read_conll(path)
    assert "UTF-8" in err.value.hint


def test_empty_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(EmptyDataError):
        read_conll(write(tmp_path, ""))
    with pytest.raises(EmptyDataError):
        read_conll(write(tmp_path, "-DOCSTART- O\n\n\t\n"))
    with pytest.raises(DataError, match="does not exist"):
        read_conll(tmp_path / "nope.conll")


def test_conll_to_records_offsets_and_i_after_o() -> None:
    records = conll_to_records([(["I", "love", "New", "York", "!"], ["O", "O", "I-location", "I-location", "O"]),
                                (["a", "b"], ["B-x", "I-y"])])
    assert records[0] == {"text": "I love New York !",
                          "spans": [{"start": 7, "end": 15, "label": "location", "text": "New York"}]}
    assert [(s["start"], s["end"], s["label"]) for s in records[1]["spans"]] == [(0, 1, "x"), (2, 3, "y")]
    with pytest.raises(DataError, match="2 tokens but 1 tags"):
        conll_to_records([(["a", "b"], ["O"])])


TEXT = "Alice met Bob in Paris."


def test_spans_from_value_accepts_the_usual_shapes() -> None:
    alice = {"start": 0, "end": 5, "label": "person", "text": "Alice"}
    assert spans_from_value([{"start": 0, "end": 5, "label": "person"}], TEXT, row=0) == [alice]
    assert spans_from_value('[{"start": 0, "end": 5, "labels": ["person"]}]', TEXT, row=0) == [alice]
    assert spans_from_value([[0, 5, "person"], [17, 22, "location"]], TEXT, row=0)[1]["text"] == "Paris"
    assert spans_from_value(np.array([{"start": 0.0, "end": 5.0, "label": "person"}]), TEXT, row=0) == [alice]
    two = spans_from_value([{"start": 10, "end": 13, "labels": ["person", "alias"], "text": "Bob", "score": 0.5}],
                           TEXT, row=0)
    assert [(s["label"], s["score"]) for s in two] == [("person", 0.5), ("alias", 0.5)]
    # A stored text is kept as given, so validate_spans can report a mismatch.
    assert spans_from_value([{"start": 0, "end": 5, "label": "person", "text": "Alicia"}], TEXT, row=0)[0][
        "text"] == "Alicia"
    for empty in (None, float("nan"), "", " ", "[]", "null", []):
        assert spans_from_value(empty, TEXT, row=0) == []


@pytest.mark.parametrize(("value", "match"), [
    ("[{start: 0}]", "row 7: spans .* is not valid JSON"),
    ({"start": 0, "end": 5, "label": "person"}, "row 7: spans = .* is a dict"),
    ([{"start": 0, "end": 5}], "row 7, span 0: .* has no 'label'"),
    ([{"start": "0", "end": 5, "label": "person"}], "row 7, span 0: start = '0'"),
    ([{"end": 5, "label": "person"}], "row 7, span 0: .* lacks 'start'"),
    ([[0, 5]], "row 7, span 0"),
    ([{"start": 0, "end": 5, "labels": []}], "row 7, span 0: labels"),
])
def test_spans_from_value_names_the_row_when_malformed(value: object, match: str) -> None:
    with pytest.raises(DataError, match=match) as err:
        spans_from_value(value, TEXT, row=7)
    assert err.value.hint


def test_spans_from_value_suggests_renaming_an_alias() -> None:
    with pytest.raises(DataError) as err:
        spans_from_value([{"start": 0, "end": 5, "entity_group": "PER"}], TEXT, row=2)
    assert err.value.hint == "rename 'entity_group' to 'label'"


def test_readers_are_reachable_from_studio_spans() -> None:
    import studio.span_io
    import studio.spans

    assert studio.spans.spans_from_value is studio.span_io.spans_from_value
    assert studio.spans.read_conll is studio.span_io.read_conll
    with pytest.raises(AttributeError):
        studio.spans.no_such_function  # noqa: B018


def test_result_items_round_trip() -> None:
    spans = [{"start": 0, "end": 5, "label": "person", "text": "Alice", "score": 0.75},
             {"start": 17, "end": 22, "label": "location", "text": "Paris"}]
    result = spans_result(spans, from_name="ner", to_name="text")
    assert result[0] == {"from_name": "ner", "to_name": "text", "type": "labels", "score": 0.75,
                         "value": {"start": 0, "end": 5, "text": "Alice", "labels": ["person"]}}
    assert "score" not in result[1]
    assert spans_from_result(result, from_name="ner") == spans


def test_spans_from_result_reads_only_its_tag_and_splits_labels() -> None:
    result = [
        {"from_name": "ner", "to_name": "text", "type": "labels",
         "value": {"start": 10, "end": 13, "text": "Bob", "labels": ["person", "alias"]}},
        {"from_name": "other", "to_name": "text", "type": "labels",
         "value": {"start": 0, "end": 5, "text": "Alice", "labels": ["person"]}},
        {"from_name": "ner", "to_name": "text", "type": "choices", "value": {"choices": ["yes"]}},
        {"type": "relation", "from_id": "a", "to_id": "b"},
    ]
    assert spans_from_result(result, from_name="ner") == [
        {"start": 10, "end": 13, "label": "person", "text": "Bob"},
        {"start": 10, "end": 13, "label": "alias", "text": "Bob"}]
    assert "text" not in spans_from_result([{"from_name": "ner", "type": "labels",
                                             "value": {"start": 0, "end": 5, "labels": ["person"]}}],
                                           from_name="ner")[0]
    with pytest.raises(DataError, match="result item 0"):
        spans_from_result([{"from_name": "ner", "type": "labels", "value": {"labels": ["x"]}}], from_name="ner")
