"""Training on several processes: the README's `accelerate launch` command, run for real with two CPU ranks, against
the same training on one process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from studio.errors import ConfigError
from training.data import CuratedData

REPO = Path(__file__).resolve().parents[2]
ACCELERATE = Path(sys.executable).parent / "accelerate"

#: The README's "Training on several GPUs" command with 2 processes. `--multi_gpu` is accelerate's torchrun launcher:
#: on a machine without CUDA each rank trains on the CPU over gloo (`--cpu` would start a single process).
LAUNCH = ["--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
          "--dynamo_backend", "no", "--main_process_port", "0"]

#: [train] for the classifier. Fine-tuning alone decides the score (no LR-initialised head: the fast head comes out
#: the same on any number of processes, and scores 1.0 on this data); LoRA in every layer, long enough to converge,
#: because this tiny random BERT's early epochs swing with the order it sees the rows in (8 epochs: 0.74 on one
#: process, 0.84 on two).
TRAIN = {"head_init": "random", "lora_layers": 0, "learning_rate": 3e-3, "epochs": 20, "max_length": 32,
         "early_stopping_patience": 0, "eval_batch_size": 32}

#: Test-accuracy tolerance between the two classifier runs. They see the same rows per step in another split, with
#: other dropout masks; over seeds 42, 1 and 2 one process scored 0.944-0.956 and two 0.933-1.0 on these 90 test
#: rows, at most 0.056 apart (5 rows), so 0.1 (9 rows) is noise. It is no check on the step count (one process's
#: batch size on each rank, half the steps, still scored 0.889): the steps are asserted exactly.
TOLERANCE = 0.1

#: [sft] for the answer model (tests/training/test_sft.py's tiny settings).
SFT = {"max_length": 64, "gradient_accumulation_steps": 1, "epochs": 6, "learning_rate": 1e-2, "lora_r": 16,
       "lora_alpha": 32, "max_new_tokens": 20, "eval_prompts": 9, "generation_batch_size": 4, "threads": 1}

#: Relative tolerance on the fine-tuned model's perplexity of the reference answers (the smooth figure: ROUGE-L on 9
#: greedy answers moves by whole words). Over seeds 42, 1 and 2 the two runs were at most 1.5 % apart, while seeds
#: alone move it by 20 %; 10 % is noise.
SFT_TOLERANCE = 0.1


def _studio_toml(folder: Path, section: str, settings: dict[str, object]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    values = "\n".join(f"{k} = {json.dumps(v)}" for k, v in settings.items())
    (folder / "studio.toml").write_text(f'[paths]\nstate_dir = "{folder / "state"}"\n[demo]\nenabled = false\n'
                                        f"[{section}]\n{values}\n")
    return folder / "studio.toml"


def _train(launcher: list[str], curated: Path, runs: Path, config: Path) -> str:
    """Run `training.jobs train` under `launcher`; returns its output (stdout + stderr), failing with its tail."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STUDIO_")}  # only the file's settings
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               CUDA_VISIBLE_DEVICES="",  # CPU ranks even where there is a GPU (the README's command differs here)
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    cmd = [*launcher, "-m", "training.jobs", "train", "--curated", str(curated), "--runs-root", str(runs),
           "--config", str(config)]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(cmd)} exited {done.returncode}:\n{output[-4000:]}"
    return output


def _only_run(runs: Path) -> Path:
    """The one run folder under `runs`; nothing else is there (no temporary folder, no failure record)."""
    entries = sorted(p.name for p in runs.iterdir())
    assert len(entries) == 1 and entries[0].startswith("run-"), entries
    return runs / entries[0]


def _files(run: Path) -> set[str]:
    return {str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()}


def _keys(value: object, prefix: str = "") -> set[str]:
    """Every key path of a JSON document's objects ("fast_head.fit_time_s"), lists left whole."""
    if not isinstance(value, dict):
        return set()
    found = set()
    for key, item in value.items():
        found |= {f"{prefix}{key}"} | _keys(item, f"{prefix}{key}.")
    return found


def _one_and_two_processes(tmp_path: Path, curated: Path, section: str, settings: dict[str, object], *,
                           batch_size: int, steps: int, rank0_line: str) -> tuple[dict, dict]:
    """Train `curated` on one process, then with the README's command on two; check that both ranks trained
    together and that the two runs have one format. Returns both runs' metrics.json.

    batch_size: one process's; each of the two ranks takes half, so both runs take the same steps (batch_size is
    per process). steps: the optimisation steps both must take. rank0_line: a log line only rank 0 writes."""
    one = _studio_toml(tmp_path / "one", section, {**settings, "batch_size": batch_size})
    two = _studio_toml(tmp_path / "two", section, {**settings, "batch_size": batch_size // 2})
    if not ACCELERATE.exists():
        pytest.fail(f"accelerate is not installed beside {sys.executable} (it is a dependency of the project)")
    _train([sys.executable], curated, tmp_path / "runs-1", one)
    output = _train([str(ACCELERATE), "launch", *LAUNCH], curated, tmp_path / "runs-2", two)

    single, multi = _only_run(tmp_path / "runs-1"), _only_run(tmp_path / "runs-2")
    m1, m2 = (json.loads((run / "metrics.json").read_text()) for run in (single, multi))
    # Both ranks trained, together: rank 1 reports the run rank 0 wrote, after as many steps, and the Trainer saw a
    # world of 2 (alone, a rank would take twice the steps: every batch of the data at half the size).
    rank1 = re.search(r"rank 1 of 2: trained run (\S+) for (\d+) steps", output)
    assert rank1, output[-4000:]
    assert rank1.group(1) == multi.name and int(rank1.group(2)) == m2["global_step"]
    assert (m1["world_size"], m2["world_size"]) == (1, 2)
    assert m1["global_step"] == m2["global_step"] == steps
    assert output.count(rank0_line) == 1, output[-4000:]  # rank 0 logs, rank 1 keeps quiet
    # The same run, format-wise: the same files, and the same keys in every JSON file.
    assert _files(single) == _files(multi)
    for name in sorted(f for f in _files(single) if f.endswith(".json")):
        assert _keys(json.loads((single / name).read_text())) == _keys(json.loads((multi / name).read_text())), name
    return m1, m2


@pytest.mark.training
@pytest.mark.slow
def test_classifier_on_two_processes_is_one_run_like_one_process(tiny_model, helpers, tmp_path):
    tr, va, te = helpers.make_texts(90, 1), helpers.make_texts(30, 2), helpers.make_texts(90, 3)
    data = CuratedData(train=helpers.frame(*tr), validation=helpers.frame(*va, 1000), test=helpers.frame(*te, 2000),
                       class_names=list(helpers.CLASSES), version_id="vmultiproc1", snapshot_id="snap-1")
    curated = helpers.write_curated(data, tmp_path / "curated")
    # 90 rows in batches of 16 (one process) or 2 x 8: 6 steps an epoch.
    m1, m2 = _one_and_two_processes(tmp_path, curated, "train", {**TRAIN, "base_model": tiny_model}, batch_size=16,
                                    steps=20 * 6, rank0_line="fine-tuning (lora)")
    # ... and a score within noise of one process's (both well above chance, 1/3, so the comparison means something).
    a1, a2 = m1["summary"]["accuracy"], m2["summary"]["accuracy"]
    print(f"test accuracy: 1 process {a1:.3f}, 2 processes {a2:.3f}; macro-F1 {m1['summary']['macro_f1']:.3f}, "
          f"{m2['summary']['macro_f1']:.3f}")
    assert m1["summary"]["split"] == m2["summary"]["split"] == "test"
    assert min(a1, a2) > 0.6, (a1, a2)
    assert abs(a1 - a2) <= TOLERANCE, (a1, a2)


@pytest.mark.training
@pytest.mark.slow
def test_answer_model_on_two_processes_is_one_run_like_one_process(tmp_path):
    from tests.conftest import build_tiny_causal_lm
    from tests.training.test_sft import ANSWERS, PROMPTS, generation_data, write_generation

    corpus = [p for ps in PROMPTS.values() for p in ps] + list(ANSWERS.values()) + ["user assistant system please"]
    model = build_tiny_causal_lm(tmp_path / "tiny-llama", corpus)
    curated = write_generation(generation_data(), tmp_path / "curated")
    # 60 rows in batches of 8 (one process) or 2 x 4: 8 steps an epoch.
    m1, m2 = _one_and_two_processes(tmp_path, curated, "sft", {**SFT, "base_model": model}, batch_size=8,
                                    steps=6 * 8, rank0_line="LoRA SFT of")
    p1, p2 = m1["fine_tuned"]["perplexity"], m2["fine_tuned"]["perplexity"]
    print(f"reference perplexity: 1 process {p1:.3f}, 2 processes {p2:.3f} (base {m1['base']['perplexity']:.1f}); "
          f"ROUGE-L {m1['fine_tuned']['rouge_l']:.3f}, {m2['fine_tuned']['rouge_l']:.3f}")
    assert max(p1, p2) < m1["base"]["perplexity"] / 2  # both learned the answers
    assert abs(p1 - p2) <= SFT_TOLERANCE * p1, (p1, p2)


def test_cpu_flag_with_several_processes_is_refused(monkeypatch):
    """`accelerate launch --cpu --num_processes 2` starts one process with MASTER_ADDR set and no WORLD_SIZE."""
    from training.distributed import check_launch

    for name in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    with pytest.raises(ConfigError, match="--multi_gpu"):
        check_launch()
    monkeypatch.setenv("WORLD_SIZE", "2")  # launched by torchrun: fine
    check_launch()
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.delenv("MASTER_ADDR")  # `accelerate launch --cpu` with one process: fine
    check_launch()
