"""`studio active --push` says what annotators will get: which batch tasks open with the model's answer, and after
the push how many were pushed with a pre-selected answer, how many order-only, and the threshold."""

from argparse import Namespace
from types import SimpleNamespace

import pandas as pd

from studio.cli.base import COMMANDS


def test_active_push_prints_what_annotators_get(capsys):
    batch = pd.DataFrame({"task_id": [7, 9], "label": ["a", "b"], "top1": [0.45, 0.91], "confidence": [0.1, 0.85],
                          "text": ["x", "y"], "rank": [0, 1]})
    scored = SimpleNamespace(batch=batch, strategy="diverse_margin", model_version="fast-s1")
    pushed = []

    def push_pool(scored_pool, **kwargs):
        pushed.append(scored_pool)
        return {"pushed": 120, "old_predictions_removed": 3, "preselected": 80, "order_only": 40, "threshold": 0.8}

    kind = SimpleNamespace(kind=SimpleNamespace(name="single_label"))
    ws = SimpleNamespace(latest_snapshot=lambda project_id: SimpleNamespace(id="s1", schema=kind),
                         project_or_stored=lambda: (SimpleNamespace(id=1), None),
                         cfg=SimpleNamespace(active=SimpleNamespace(preannotate_threshold=0.8)),
                         active=SimpleNamespace(score_pool=lambda snapshot, **kwargs: scored, push_pool=push_pool))
    args = Namespace(strategy="diverse_margin", n=2, scorer=None, push=True, by_confidence=False)
    assert COMMANDS["active"][0](ws, args) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = lines[1].split()
    assert header[:6] == ["rank", "task_id", "label", "top1", "margin", "pre-selected"]  # "confidence" is the margin
    assert lines[2].split()[5] == "no" and lines[3].split()[5] == "yes"  # 0.45 < 0.8 <= 0.91
    assert len(pushed) == 1
    assert "Pushed 120 predictions of fast-s1 in the diverse_margin order" in out
    assert "80 tasks open with the model's answer pre-selected" in out and "top-1 probability ≥ 0.80" in out
    assert "40 are order-only, nothing pre-selected" in out and "Removed 3 predictions of older versions" in out
