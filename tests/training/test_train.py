"""In-process training: a real (tiny) model, the run folder, reload, the LR head init, data errors."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from studio.errors import ConfigError, DataError, EmptyDataError
from training.metrics import MODEL_NAMES, model_choice_line
from training.config import TrainConfig
from training.data import CuratedData, load_curated
from training.runs import RunRegistry

pytestmark = pytest.mark.training

REPO = Path(__file__).resolve().parents[2]


def tiny_config(model: str, **overrides) -> TrainConfig:
    return TrainConfig(base_model=model, epochs=2, batch_size=16, eval_batch_size=32, max_length=32, **overrides)


@pytest.fixture(scope="module")
def trained(tiny_model, curated, tmp_path_factory, helpers):
    """One real run, trained from a curated folder on disk (the app's path), plus its registry."""
    from training.train import run_training

    root = tmp_path_factory.mktemp("runs")
    folder = helpers.write_curated(curated, tmp_path_factory.mktemp("curated") / "v1")
    steps: list[tuple[int, int]] = []
    info = run_training(folder, config=tiny_config(tiny_model), runs_root=root,
                        progress=lambda d, t: steps.append((d, t)))
    return info, RunRegistry(root), steps


def test_run_folder_is_complete_and_registered(trained, curated, helpers):
    info, registry, steps = trained
    assert info.status == "succeeded" and info.id.startswith("run-") and info.id.endswith("-v0123456")
    files = {p.name for p in info.path.iterdir()}
    assert {"config.json", "data.json", "metrics.json", "labels.json", "README.md", "adapter"} <= files
    assert not [p for p in registry.root.iterdir() if p.name.startswith(".tmp-")]
    assert not (info.path / "checkpoints").exists()
    data = json.loads((info.path / "data.json").read_text())
    assert data["version_id"] == "v0123456789" and data["snapshot_id"] == "snap-1"
    assert data["counts"] == {"train": 90, "validation": 30, "test": 30}
    assert json.loads((info.path / "labels.json").read_text())["class_names"] == helpers.CLASSES
    metrics = json.loads((info.path / "metrics.json").read_text())
    test = metrics["test"]
    assert test["n"] == 30 and np.array(test["confusion_matrix"]).sum() == 30
    assert set(test["per_class"]) == set(helpers.CLASSES)
    assert metrics["selected"] in ("lora", "fast_head")
    assert {"validation", "test"} <= set(metrics["fast_head"]) and "validation" in metrics["lora"]
    line = model_choice_line(metrics)  # what the Train and Runs pages say: the kept model and both figures
    kept, other = ("fast_head", "lora") if metrics["selected"] == "fast_head" else ("lora", "fast_head")
    kept_f1 = metrics[kept]["validation"]["macro_f1"]
    assert line.startswith(f"Kept {MODEL_NAMES[kept]}: validation macro-F1 {kept_f1:.3f}")
    assert f"against {metrics[other]['validation']['macro_f1']:.3f} for {MODEL_NAMES[other]}" in line
    assert len(metrics["curve"]["eval"]) >= 1 and len(metrics["curve"]["loss"]) >= 1
    assert metrics["global_step"] == 12  # 90 rows / 16 = 6 steps per epoch, 2 epochs
    assert steps[-1] == (12, 12)
    assert 0 < metrics["trainable_parameters"] < metrics["total_parameters"] / 10  # LoRA + head only
    assert 0 < metrics["adapter_size_bytes"] < 2_000_000
    assert [r.id for r in registry.list()] == [info.id]
    assert registry.current() is None
    registry.promote(info.id)
    assert registry.current().id == info.id


def test_adapter_reloads_with_peft(trained, tiny_model):
    from peft import PeftModel

    from training.lora import build_classifier

    info, _, _ = trained
    model = PeftModel.from_pretrained(build_classifier(tiny_model, 3), str(info.path / "adapter"))
    saved = {n for n, _ in model.named_parameters() if "lora_" in n or "modules_to_save" in n}
    assert any("lora_A" in n for n in saved) and any("modules_to_save" in n and "head" in n for n in saved)


def test_reload_gives_identical_probabilities(trained, curated):
    from training.predict import load_predictor

    info, registry, _ = trained
    texts = curated.texts("test")
    first = load_predictor(info.path).predict_proba(texts, batch_size=7)
    second = load_predictor(info.id, runs_root=registry.root).predict_proba(texts)
    assert first.shape == (30, 3)
    np.testing.assert_allclose(first.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(first, second, atol=1e-6)
    # The reloaded model is the model that was evaluated: same test accuracy as recorded.
    recorded = json.loads((info.path / "metrics.json").read_text())["test"]["accuracy"]
    assert (first.argmax(1) == curated.targets("test")).mean() == pytest.approx(recorded, abs=1e-9)
    # ...and a fresh process, with only the run folder, agrees.
    code = ("import json,sys; from training.predict import load_predictor; "
            f"p=load_predictor({str(info.path)!r}); "
            "print(json.dumps(p.predict_proba(json.loads(sys.argv[1])).tolist()))")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(texts[:5])], cwd=REPO, capture_output=True,
                         text=True, check=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    np.testing.assert_allclose(np.array(json.loads(out.stdout.strip().splitlines()[-1])), first[:5], atol=1e-5)


def test_head_initialised_from_lr_reproduces_its_predictions(tiny_model, curated):
    import torch
    from transformers import AutoTokenizer

    from studio.embeddings import encode
    from training.head import fit_linear_head
    from training.lora import add_lora, build_classifier, set_head

    X = encode(curated.texts("train"), model=tiny_model, max_length=32).astype(np.float64)
    head = fit_linear_head(X, curated.targets("train"), num_classes=3, C=10.0)
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=10.0, max_iter=1000, random_state=0).fit(X, curated.targets("train"))
    np.testing.assert_allclose(head.predict_proba(X), lr.predict_proba(X), atol=1e-8)

    model = build_classifier(tiny_model, 3)
    set_head(model, head.weight, head.bias)
    model = add_lora(model, r=4, alpha=8, dropout=0.0, target_modules=["query", "value"]).eval()
    tok = AutoTokenizer.from_pretrained(tiny_model)
    texts = curated.texts("test")
    with torch.no_grad():
        logits = model(**tok(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")).logits
    X_test = encode(texts, model=tiny_model, max_length=32)
    np.testing.assert_allclose(logits.numpy(), lr.decision_function(X_test), atol=1e-3)
    assert (logits.numpy().argmax(1) == lr.predict(X_test)).all()


def test_binary_head_and_absent_class(tiny_model):
    from training.head import fit_linear_head

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 5))
    y = (X[:, 0] > 0).astype(int) * 2  # classes 0 and 2 of 3; class 1 never seen
    from sklearn.linear_model import LogisticRegression

    head = fit_linear_head(X, y, num_classes=3)
    lr = LogisticRegression(C=10.0, max_iter=1000).fit(X, y)
    probs = head.predict_proba(X)
    np.testing.assert_allclose(probs[:, [0, 2]], lr.predict_proba(X), atol=1e-8)
    assert probs[:, 1].max() < 1e-12


def test_multi_label_trains_and_predicts_sigmoids(tiny_model, tmp_path, helpers):
    from training.predict import load_predictor
    from training.train import run_training

    texts, y = helpers.make_texts(60, 5)
    onehot = np.eye(3)[y]
    onehot[::4, (y[::4] + 1) % 3] = 1.0  # a quarter of the rows carry a second label
    train = pd.DataFrame({"task_id": range(60), "text": texts, "labels": [list(r) for r in onehot]})
    data = CuratedData(train=train.iloc[:45], validation=train.iloc[45:], class_names=helpers.CLASSES,
                       task="multi_label", class_weights=[1.0, 2.0, 1.0], version_id="ml-version")
    info = run_training(data, config=tiny_config(tiny_model, max_steps=4), runs_root=tmp_path)
    metrics = json.loads((info.path / "metrics.json").read_text())
    assert metrics["summary"]["split"] == "validation" and len(metrics["validation"]["confusion_matrix"]) == 3
    probs = load_predictor(info.path).predict_proba(texts[:8])
    assert probs.shape == (8, 3) and ((probs > 0) & (probs < 1)).all()
    assert not np.allclose(probs.sum(axis=1), 1.0)  # independent sigmoids, not a softmax


@pytest.mark.parametrize("case", ["empty", "one_class", "bad_label", "label_names"])
def test_unusable_data_fails_before_training(tiny_model, curated, tmp_path, case):
    from training.train import run_training

    train = curated.train
    if case == "empty":
        train, error, match = train.iloc[:0], EmptyDataError, "0 rows"
    elif case == "one_class":
        train, error, match = train[train["label"] == 1], EmptyDataError, "only 1 class"
    elif case == "bad_label":
        train, error, match = train.assign(label=train["label"] + 5), DataError, "label 7"
    else:
        train, error, match = train.assign(label="billing"), DataError, "expected an integer class index"
    with pytest.raises(error, match=match):
        run_training(replace(curated, train=train), config=tiny_config(tiny_model), runs_root=tmp_path / "runs")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_load_curated_names_missing_pieces(curated, tmp_path, helpers):
    folder = helpers.write_curated(curated, tmp_path / "c")
    assert load_curated(folder).counts() == {"train": 90, "validation": 30, "test": 30}
    curated.train.drop(columns=["label"]).to_parquet(folder / "train.parquet")
    with pytest.raises(DataError, match="no 'label' column"):
        load_curated(folder)
    with pytest.raises(DataError, match="no manifest.json"):
        load_curated(tmp_path)


def test_cancel_in_process_leaves_no_run_and_keeps_current(tiny_model, curated, trained):
    from training.train import TrainingCancelled, run_training

    _, registry, _ = trained
    registry.promote(registry.list()[0].id)
    before = registry.current().id
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 3  # lets the fast head and a couple of steps through

    with pytest.raises(TrainingCancelled):
        run_training(curated, config=tiny_config(tiny_model), runs_root=registry.root, should_stop=stop)
    assert registry.current().id == before
    assert not [p for p in registry.root.iterdir() if p.name.startswith(".tmp-")]
    statuses = {r.status for r in registry.list()}
    assert statuses == {"succeeded", "cancelled"} and len(registry.list(include_failed=False)) == 1


def test_config_validation_names_the_field(tiny_model):
    with pytest.raises(ConfigError, match="lora_r = 0"):
        TrainConfig(lora_r=0)
    with pytest.raises(ConfigError, match="Did you mean 'learning_rate'"):
        TrainConfig.from_dict({"learning_rat": 0.1})
    cfg = TrainConfig.from_dict({"epochs": "3", "target_modules": "query,key"})
    assert cfg.epochs == 3.0 and cfg.target_modules == ["query", "key"]
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg

    from training.lora import add_lora, build_classifier

    with pytest.raises(ConfigError, match="q_proj"):
        add_lora(build_classifier(tiny_model, 3), r=4, alpha=8, dropout=0.0, target_modules=["q_proj"])


def test_registry_run_ids_and_failed_records(tmp_path):
    from datetime import datetime, timezone

    registry = RunRegistry(tmp_path)
    now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    first = registry.new_run_id("abcdef123456", now=now)
    assert first == "run-20250102-030405-abcdef12"
    registry.begin(first)
    assert registry.new_run_id("abcdef123456", now=now) == first + "-2"
    registry.abort(first, status="failed", error="boom")
    assert not (tmp_path / f".tmp-{first}").exists() and not (tmp_path / first).exists()
    assert registry.get(first).status == "failed" and registry.get(first).error == "boom"
    from studio.errors import TrainingError

    with pytest.raises(TrainingError, match="only a finished run"):
        registry.promote(first)
    with pytest.raises(TrainingError, match="No run 'nope'"):
        registry.get("nope")


def test_full_fine_tuning_saves_and_reloads(tiny_model, curated, tmp_path):
    from training.predict import load_predictor
    from training.train import run_training

    info = run_training(replace(curated, validation=curated.validation.iloc[:0]),
                        config=tiny_config(tiny_model, method="full", learning_rate=5e-4, max_steps=3),
                        runs_root=tmp_path)
    metrics = json.loads((info.path / "metrics.json").read_text())
    assert metrics["selected"] == "full" and metrics["trainable_parameters"] == metrics["total_parameters"]
    assert (info.path / "model" / "head.safetensors").exists() and not (info.path / "adapter").exists()
    probs = load_predictor(info.path).predict_proba(curated.texts("test"))
    assert (probs.argmax(1) == curated.targets("test")).mean() == pytest.approx(metrics["test"]["accuracy"])


# The hook on the top block fires from its output gradients only (its input needs none): that is the point.
@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
def test_lora_top_layers_only_trains_reloads_and_skips_lower_backward(tiny_model, curated, tmp_path):
    """lora_layers=1 on the 2-layer tiny BERT: adapters only in layer 1, no backward through layer 0,
    and the saved adapter reloads (peft) to the exact probabilities that were scored."""
    import torch
    from peft import PeftModel
    from transformers import AutoTokenizer

    from training.lora import add_lora, build_classifier
    from training.predict import load_predictor
    from training.train import run_training

    info = run_training(replace(curated, validation=curated.validation.iloc[:0]),
                        config=tiny_config(tiny_model, lora_layers=1, max_steps=4), runs_root=tmp_path)
    metrics = json.loads((info.path / "metrics.json").read_text())
    assert metrics["selected"] == "lora"
    assert json.loads((info.path / "config.json").read_text())["train"]["lora_layers"] == 1
    assert json.loads((info.path / "adapter" / "adapter_config.json").read_text())["layers_to_transform"] == [1]

    reloaded = PeftModel.from_pretrained(build_classifier(tiny_model, 3), str(info.path / "adapter"))
    lora = {n: p for n, p in reloaded.named_parameters() if "lora_" in n}
    assert lora and all(".layer.1." in n for n in lora), sorted(lora)
    assert any("lora_B" in n and p.abs().sum() > 0 for n, p in lora.items())  # trained, not the zero init

    first = load_predictor(info.path).predict_proba(curated.texts("test"))
    np.testing.assert_allclose(load_predictor(info.path).predict_proba(curated.texts("test")), first, atol=1e-6)
    recorded = metrics["test"]["accuracy"]
    assert (first.argmax(1) == curated.targets("test")).mean() == pytest.approx(recorded, abs=1e-9)

    # Why it is faster: with adapters in the top layer only, the backward pass never reaches layer 0.
    tok = AutoTokenizer.from_pretrained(tiny_model)
    batch = tok(curated.texts("train")[:8], padding=True, return_tensors="pt")
    reached = {}
    for layers in (1, 0):
        model = add_lora(build_classifier(tiny_model, 3), r=4, alpha=8, dropout=0.0,
                         target_modules=["query", "value"], layers=layers)
        calls: list[int] = []
        blocks = model.base_model.model.encoder.encoder.layer
        for i, block in enumerate(blocks):
            block.register_full_backward_hook(lambda *_, i=i, calls=calls: calls.append(i))
        model(**batch, labels=torch.zeros(8, dtype=torch.long)).loss.backward()
        reached[layers] = sorted(set(calls))
    assert reached == {1: [1], 0: [0, 1]}

    # And the frozen part runs without dropout while training (as when the fast head's features were encoded).
    model = add_lora(build_classifier(tiny_model, 3), r=4, alpha=8, dropout=0.0, target_modules=["query"], layers=1)
    model.train()
    encoder = model.base_model.model.encoder
    assert not encoder.embeddings.training and not encoder.encoder.layer[0].training
    assert encoder.encoder.layer[1].training and model.base_model.model.head.training
    model.eval()
    assert not any(m.training for m in model.modules())


def test_lora_layers_validation_names_the_field(tiny_model):
    from training.lora import add_lora, build_classifier

    with pytest.raises(ConfigError, match="lora_layers = -1"):
        TrainConfig(lora_layers=-1)
    with pytest.raises(ConfigError, match=r"lora_layers = 3: this encoder has 2 transformer layers"):
        add_lora(build_classifier(tiny_model, 3), r=4, alpha=8, dropout=0.0, target_modules=["query"], layers=3)


def test_runs_keep_per_task_predictions_and_compare_on_the_test_tasks_they_share(trained, tiny_model, curated,
                                                                               tmp_path, helpers):
    from training.compare import common_scores
    from training.train import run_training

    first, registry, _ = trained
    kept = pd.read_parquet(first.path / "predictions.parquet")
    assert set(kept["split"]) == {"validation", "test"}
    test = kept[kept["split"] == "test"]
    assert sorted(test["task_id"]) == sorted(curated.test["task_id"])
    metrics = json.loads((first.path / "metrics.json").read_text())
    assert (test["truth"] == test["pred"]).mean() == pytest.approx(metrics["test"]["accuracy"])

    # The next data version: 20 of the old test tasks stay, 10 new ones join (what the split ledger does).
    texts, y = helpers.make_texts(10, 9)
    grown = pd.concat([curated.test.iloc[:20], helpers.frame(texts, y, 3000)], ignore_index=True)
    second = run_training(replace(curated, test=grown, version_id="v-second", test_set={"hash": "abc", "tasks": 30}),
                          config=tiny_config(tiny_model, max_steps=2), runs_root=registry.root)
    assert second.test_set == "abc" and first.test_set == ""
    common = common_scores({first.id: first.path, second.id: second.path})
    assert common.n == 20 and common.own == {first.id: 30, second.id: 30}
    assert "20 test tasks all of them predicted" in common.note
    assert list(common.scores["run"]) == [first.id, second.id] and common.scores["accuracy"].between(0, 1).all()
    first_on_shared = test.set_index("task_id").loc[curated.test["task_id"].iloc[:20]]
    shared_accuracy = (first_on_shared["truth"] == first_on_shared["pred"]).mean()
    assert common.scores["accuracy"].iloc[0] == pytest.approx(shared_accuracy)
