"""Generation-kind quality checks: each check flags the row built to fail it and leaves the clean rows alone."""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import pytest

from studio.errors import ConfigError, DataError
from studio.gen_checks import ISSUE_COLUMNS, GenerationQualityConfig, available_generation_checks
from studio.gen_checks.disagreement import expert_disagreement
from studio.gen_checks.outliers import robust_z
from studio.gen_checks.pii import card_network, find_personal_data, iban_valid, luhn_valid
from studio.gen_checks.text import find_placeholders, normalise_prompt
from studio.generation_quality import (VALIDATION_PROBLEMS, run_generation_checks, summarise_issues,
                                       validate_prompt, validate_response)

DIM = 256


def bag_embed(texts):
    """Deterministic bag-of-words embedder: each lower-cased word a fixed random direction, summed, normalised.
    Texts sharing most words are close; texts sharing none are near-orthogonal."""
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in str(text).lower().replace("?", " ").replace(".", " ").split():
            out[i] += np.random.default_rng(zlib.crc32(word.encode())).standard_normal(DIM)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms > 0, norms, 1)


TOPICS = ["invoice", "refund", "password", "delivery", "newsletter", "account", "payment", "voucher", "warranty",
          "address", "subscription", "complaint", "tracking", "coupon", "membership", "receipt", "exchange",
          "battery", "screen", "charger", "ticket", "booking", "luggage", "seat", "insurance", "pension"]
VERBS = ["find", "change", "cancel", "check", "update", "renew", "close", "open", "move", "print", "share",
         "verify", "reset", "report", "recover", "transfer", "review", "download", "upload", "confirm", "split",
         "merge", "pause", "resume", "delete", "restore"]


def clean_rows(n: int = 26) -> list[dict]:
    """n tasks, each its own topic; the response restates the prompt's words and adds a few steps. Prompts vary
    in length (6-9 words) and responses too (40-60 words), so robust spreads are not zero."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        topic, verb = TOPICS[i], VERBS[i]
        extra = " ".join(f"{topic}{k}" for k in range(int(rng.integers(0, 4))))  # words of this row only
        prompt = f"how can I {verb} my {topic} {extra}".strip()
        steps = " ".join(f"step {k} {verb} the {topic} section carefully" for k in range(int(rng.integers(6, 9))))
        rows.append({"task_id": 100 + i, "prompt": prompt, "response": f"To {verb} your {topic}: {steps}.",
                     "annotator": "ann"})
    return rows


def run(rows, checks=None, **cfg):
    return run_generation_checks(pd.DataFrame(rows), bag_embed, checks=checks, config=GenerationQualityConfig(**cfg))


def flagged_ids(report, check):
    return set(report.issues.loc[report.issues["check"] == check, "task_id"])


# --- the table ----------------------------------------------------------------------------------------------------

def test_clean_rows_raise_no_flags_and_the_table_has_stable_columns():
    report = run(clean_rows(), checks=[c for c in available_generation_checks() if c != "datalab"])
    assert list(report.issues.columns) == ISSUE_COLUMNS
    assert report.issues.empty, report.issues.to_string()
    summary = report.summary()
    assert set(summary["check"]) >= {"exact_duplicate_prompt", "unrelated_response", "personal_data"}
    assert (summary["flagged"] == 0).all()


def test_an_empty_frame_gives_an_empty_report():
    empty = pd.DataFrame(columns=["task_id", "prompt", "response", "annotator"])
    report = run_generation_checks(empty, bag_embed)
    assert report.issues.empty and list(report.issues.columns) == ISSUE_COLUMNS
    assert report.n_tasks == 0 and report.warnings
    assert len(summarise_issues(report)) >= len(available_generation_checks())


def test_inputs_are_validated():
    rows = clean_rows(3)
    with pytest.raises(DataError, match="annotator"):
        run_generation_checks(pd.DataFrame(rows).drop(columns="annotator"), bag_embed)
    twice = rows + [{**rows[0], "prompt": "another prompt", "annotator": "b"}]
    with pytest.raises(DataError, match="different prompts"):
        run_generation_checks(pd.DataFrame(twice), bag_embed)
    with pytest.raises(ConfigError, match="near_duplicate_prompt"):
        run_generation_checks(pd.DataFrame(rows), bag_embed, checks=["near_duplicate_promt"])
    with pytest.raises(ConfigError, match="embed"):
        run_generation_checks(pd.DataFrame(rows), None, checks=["unrelated_response"])
    # Text-only checks need no embedder at all.
    assert run_generation_checks(pd.DataFrame(rows), None, checks=["personal_data", "length_outlier"]).issues.empty
    with pytest.raises(ConfigError, match="near_duplicate_threshold"):
        GenerationQualityConfig(near_duplicate_threshold=1.5)


# --- duplicates ---------------------------------------------------------------------------------------------------

def test_exact_duplicates_ignore_case_whitespace_and_punctuation():
    rows = clean_rows()
    messy = "  " + rows[0]["prompt"].upper().replace(" ", "  ,") + "?!"
    rows.append({**rows[0], "task_id": 1, "prompt": messy})
    assert normalise_prompt(messy) == rows[0]["prompt"].lower()
    report = run(rows, checks=["exact_duplicate_prompt"])
    assert flagged_ids(report, "exact_duplicate_prompt") == {100, 1}
    row = report.issues.set_index("task_id").loc[1]
    assert row["related"] == (100,) and row["score"] == 1.0 and row["annotator"] == ""


def test_near_duplicates_form_groups_and_conflicting_responses_are_found():
    rows = clean_rows()
    base = "where is the parcel I ordered last week from your online shop"
    rows += [
        # A group of three near-duplicates (one word differs); same answer for all three.
        {"task_id": 1, "prompt": base, "response": "Your parcel is on its way, track it under my orders.",
         "annotator": "ann"},
        {"task_id": 2, "prompt": base.replace("last", "this"),
         "response": "Your parcel is on its way, track it under my orders please.", "annotator": "ann"},
        {"task_id": 3, "prompt": base.replace("shop", "store"),
         "response": "Your parcel is on its way, you can track it under my orders.", "annotator": "ann"},
        # A near-duplicate pair answered two different ways.
        {"task_id": 4, "prompt": "can I pay the annual fee of my gym membership in monthly instalments",
         "response": "Yes, choose instalments at checkout and confirm the monthly plan.", "annotator": "ann"},
        {"task_id": 5, "prompt": "can I pay the annual fee of my gym membership in two instalments",
         "response": "Unfortunately refunds for broken headphones take ten days.", "annotator": "ann"},
    ]
    report = run(rows, checks=["near_duplicate_prompt", "conflicting_responses"], near_duplicate_threshold=0.85)
    assert flagged_ids(report, "near_duplicate_prompt") == {1, 2, 3, 4, 5}
    near = report.issues[report.issues["check"] == "near_duplicate_prompt"].set_index("task_id")
    assert set(near.loc[1, "related"]) == {2, 3}  # the whole group, not just the closest pair
    assert set(near.loc[4, "related"]) == {5}
    assert flagged_ids(report, "conflicting_responses") == {4, 5}
    assert report.info["near_duplicate_prompt"]["groups"] == 2


# --- lengths and relatedness --------------------------------------------------------------------------------------

def test_length_outliers_report_their_direction():
    rows = clean_rows()
    rows[3]["response"] = "Yes."
    rows[7]["response"] = " ".join(["word"] * 2000)
    rows[9]["prompt"] = " ".join(["please help me"] * 40)
    report = run(rows, checks=["length_outlier"])
    issues = report.issues.set_index(["task_id", "field"])
    assert set(issues.index) == {(103, "response"), (107, "response"), (109, "prompt")}
    assert "too short" in issues.loc[(103, "response"), "detail"]
    assert "too long" in issues.loc[(107, "response"), "detail"]
    assert "too long" in issues.loc[(109, "prompt"), "detail"]
    assert issues.loc[(103, "response"), "annotator"] == "ann" and issues.loc[(109, "prompt"), "annotator"] == ""
    assert ((issues["score"] > 0.5) & (issues["score"] <= 1)).all()


def test_robust_z_falls_back_when_most_values_are_equal():
    z, center, _ = robust_z(np.array([5.0] * 20 + [1.0]))
    assert center == 5.0 and z[-1] < -3.5 and np.all(z[:-1] == 0)
    assert np.all(robust_z(np.ones(5))[0] == 0)


def test_a_response_about_something_else_is_unrelated():
    rows = clean_rows()
    rows[5]["response"] = ("Our headquarters moved to a larger building downtown with a rooftop garden, a gym "
                           "and a cafeteria serving vegetarian lunches every weekday afternoon.")
    report = run(rows, checks=["unrelated_response"])
    assert flagged_ids(report, "unrelated_response") == {105}
    row = report.issues.iloc[0]
    assert row["field"] == "pair" and row["annotator"] == "ann" and 0.5 < row["score"] <= 1


def test_too_few_rows_skip_the_statistical_checks_with_a_warning():
    report = run(clean_rows(5), checks=["unrelated_response", "length_outlier", "datalab"])
    assert report.issues.empty
    assert any("unrelated_response" in w for w in report.warnings)
    assert any("datalab" in w for w in report.warnings)


# --- personal data ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, kind", [
    ("write to jane.doe@mailbox.org tomorrow", "email"),
    ("call me on +44 20 7946 0958 after six", "phone"),
    ("my number: (415) 555-2671", "phone"),
    ("charge my card 4111 1111 1111 1111 please", "payment_card"),
    ("amex 3782 822463 10005", "payment_card"),
    ("pay to GB82 WEST 1234 5698 7654 32", "iban"),
    ("IBAN DE89370400440532013000", "iban"),
    ("my bank account number is 12345678", "account_number"),
])
def test_personal_data_is_found(text, kind):
    assert [f.kind for f in find_personal_data(text)] == [kind]


@pytest.mark.parametrize("text", [
    "Call us on {{Customer Support Phone Number}} or write to {{Customer Support Email}}",
    "reach [Customer Support Phone Number] via {{Live Chat}}",
    "card 4111 1111 1111 1112",  # 16 digits, Luhn-invalid: not a card
    "cancel purchase 113542617735902",  # an order id: no issuer prefix
    "order number 123-4567 arrived on 2024-01-31 at 10:30",
    "pay to GB00 WEST 1234 5698 7654 32",  # wrong check digits
    "questions? support@company.com",  # a role mailbox, not a person
    "refund of 1499 dollars for order 00123842",
])
def test_placeholders_order_ids_and_invalid_numbers_are_not_personal_data(text):
    assert find_personal_data(text) == []


def test_named_slots_are_masked_but_a_value_in_braces_is_still_read():
    text = "Call {{Customer Support Phone Number}}; your card {{4111 1111 1111 1111}} is on file"
    found = find_personal_data(text)
    assert [f.kind for f in found] == ["payment_card"]
    assert text[found[0].start:found[0].end] == "4111 1111 1111 1111"  # offsets index the original text


def test_card_and_iban_validity():
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert card_network("5555555555554444") == "Mastercard" and card_network("1135426177359021") == ""
    assert iban_valid("gb82 west 1234 5698 7654 32") and not iban_valid("GB82WEST1234569876543")


def test_personal_data_rows_name_the_field_and_mask_the_value():
    rows = clean_rows()
    rows[2]["response"] += " Or phone our team at {{Customer Support Phone Number}}."
    rows[4]["prompt"] = "my card 4111 1111 1111 1111 was charged twice"
    rows[6]["response"] += " Mail jane.doe@mailbox.org for details."
    report = run(rows, checks=["personal_data"])
    issues = report.issues.set_index("task_id")
    assert set(issues.index) == {104, 106}
    assert issues.loc[104, "field"] == "prompt" and issues.loc[104, "score"] == 1.0
    assert "4111 1111 1111 1111" not in issues.loc[104, "detail"] and "Visa" in issues.loc[104, "detail"]
    assert issues.loc[106, "field"] == "response" and issues.loc[106, "annotator"] == "ann"


# --- experts ------------------------------------------------------------------------------------------------------

def test_expert_disagreement_on_one_prompt():
    rows = clean_rows()
    agree = rows[0]["response"]
    rows += [{**rows[0], "response": agree + " Thanks.", "annotator": "bob"},
             {**rows[1], "response": "Bananas are yellow and monkeys climb tall trees in the jungle.",
              "annotator": "bob"}]
    report = run(rows, checks=["expert_disagreement"])
    assert flagged_ids(report, "expert_disagreement") == {101}
    frame = pd.DataFrame(rows)
    table = expert_disagreement(frame, bag_embed(frame["response"].tolist())).set_index("task_id")
    assert set(table.index) == {100, 101}
    assert table.loc[100, "embedding_disagreement"] < 0.1 < table.loc[101, "embedding_disagreement"]
    assert table.loc[100, "lexical_disagreement"] < table.loc[101, "lexical_disagreement"]


def test_one_annotator_only_gives_no_disagreement_and_runs_every_check():
    report = run(clean_rows())
    assert report.info["expert_disagreement"]["tasks_with_several_responses"] == 0
    assert "expert_disagreement" not in set(report.issues["check"])
    assert set(report.checks) == set(available_generation_checks())
    assert report.issues["score"].between(0, 1).all()


# --- cleanlab Datalab ---------------------------------------------------------------------------------------------

def test_datalab_findings_use_the_issue_row_format():
    rows = clean_rows()
    rows.append({**rows[0], "task_id": 1})  # an exact copy: cleanlab's near-duplicate
    report = run(rows, checks=["datalab"])
    assert {100, 1} <= flagged_ids(report, "datalab_near_duplicate")
    assert set(report.issues["check"]) <= {"datalab_near_duplicate", "datalab_outlier", "datalab_non_iid"}
    assert set(report.datalab_summary["issue_type"]) == {"near_duplicate", "outlier", "non_iid"}
    assert "non_iid_p_value" in report.info["datalab"]
    assert set(report.summary()["check"]) == {"datalab_near_duplicate", "datalab_outlier", "datalab_non_iid"}


# --- validation helpers -------------------------------------------------------------------------------------------

def test_validation_helpers_return_known_problem_keys():
    assert validate_response("  \n") == [("empty_response", "3 whitespace character(s) only")]
    assert [k for k, _ in validate_response("Reset it", prompt=" reset IT ")] == ["response_equals_prompt"]
    problems = dict(validate_response("Hi [NAME], call {{Support Phone}} or <agent_name>. See [the docs](x)."))
    assert problems["unfilled_placeholder"] == "[NAME], {{Support Phone}}, <agent_name>"
    assert validate_response("Call {{Support Phone}}", allowed_placeholders={"{{Support Phone}}"}) == []
    assert [k for k, _ in validate_response("bad \ud800 text")] == ["invalid_unicode"]
    assert [k for k, _ in validate_response(b"caf\xe9")] == ["invalid_unicode"]
    assert [k for k, _ in validate_response("ring\x07 bell\ttab")] == ["control_characters"]
    assert validate_response("<b>Bold</b> and a line<br> break are fine.") == []
    assert [k for k, _ in validate_prompt("x" * 50, max_chars=20)] == ["prompt_too_long"]
    assert [k for k, _ in validate_prompt("one two three", max_tokens=2, count_tokens=lambda s: len(s.split()))] \
        == ["prompt_too_long"]
    assert validate_prompt("short enough", max_chars=100, max_tokens=100) == []
    assert [k for k, _ in validate_prompt("")] == ["empty_prompt"]
    every_key = {"empty_response", "empty_prompt", "response_equals_prompt", "unfilled_placeholder",
                 "prompt_too_long", "invalid_unicode", "control_characters"}
    assert set(VALIDATION_PROBLEMS) == every_key


def test_placeholder_styles():
    found = find_placeholders("{{A B}} {name} ${id} [ORDER_ID] [Customer Name] [your email] <Your Name> [1] [sic]")
    assert [style for style, _ in found] == ["double_brace", "single_brace", "dollar_brace", "square_bracket",
                                             "square_bracket", "square_bracket", "angle_bracket"]


# --- the real encoder ---------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_real_encoder_on_customer_support_rows(tmp_path):
    from tests.conftest import SHARED_DATA

    path = SHARED_DATA / "customer_support_sft" / "customer_support_sft.csv.gz"
    if not path.exists():
        pytest.skip(f"{path} is not here")
    from studio.embeddings import encode

    df = pd.read_csv(path, keep_default_na=False).iloc[::90].head(50).reset_index(drop=True)
    frame = pd.DataFrame({"task_id": np.arange(len(df)), "prompt": df["instruction"], "response": df["response"],
                          "annotator": "bitext"})
    # Inject one of each problem the checks must see through real embeddings.
    frame.loc[len(frame)] = [900, df["instruction"][0].upper() + "!!", df["response"][0], "bitext"]
    frame.loc[3, "response"] = frame.loc[40, "response"]  # an answer to another question
    frame.loc[7, "response"] += " You can also reach me on +1 (415) 555-2671."
    report = run_generation_checks(frame, lambda texts: encode(texts, cache_dir=tmp_path))
    assert {0, 900} <= flagged_ids(report, "exact_duplicate_prompt")
    assert 3 in flagged_ids(report, "unrelated_response")
    assert flagged_ids(report, "personal_data") == {7}  # the data set's {{slots}} are not flagged
    assert report.issues["score"].between(0, 1).all()
