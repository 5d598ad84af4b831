"""Answers from a causal LM (a fine-tuned run: base + LoRA adapter, or a base model alone), batched and greedy.

Used by the run's own evaluation (training/gen_eval.py: the fine-tuned model and, with the adapter switched off,
the base model on the same prompts), by the drafts pushed to Label Studio and by bench/sft.py.

Prompts go through the tokenizer's chat template (the one the model was trained with), batches are padded on the
left so every row's answer starts at the same position, and decoding is greedy: the same prompt always gets the
same answer. Each answer comes with its mean token log-probability (<= 0; nearer 0 = the model was surer of its
greedy choices), a per-task confidence for active learning. Throughput (generated tokens/s) is reported with
every call. Threads are the caller's (training/llm.py's torch_threads).
"""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, Union

import numpy as np

from studio.errors import DataError
from studio.types import ProgressFn

#: A prompt: a user message as text, or a chat (a list of {"role", "content"}; its last turn is the user's).
Prompt = Union[str, Sequence[dict[str, str]]]


@dataclass
class Generations:
    """N answers, in prompt order. mean_logprobs: (N,) mean log-probability of each answer's tokens (its end token
    included). new_tokens: (N,) tokens generated per answer. finished: (N,) bool, False where the answer was cut
    at max_new_tokens before its end token. seconds: wall time of the whole call."""

    texts: list[str]
    mean_logprobs: np.ndarray
    new_tokens: np.ndarray
    finished: np.ndarray
    seconds: float

    @property
    def tokens_per_s(self) -> float:
        return float(self.new_tokens.sum() / self.seconds) if self.seconds > 0 else 0.0


@dataclass
class ReferenceScores:
    """How likely a model finds given answers: nll (N,) summed negative log-likelihood of each reference's tokens
    after its prompt (as the training loss sees them: chat template, end-of-turn token included); tokens (N,)."""

    nll: np.ndarray
    tokens: np.ndarray

    def perplexity(self, rows: Sequence[int] | np.ndarray | None = None) -> float:
        """exp(total NLL / total tokens) over `rows` (all by default); lower = the references are less surprising."""
        idx = np.arange(len(self.nll)) if rows is None else np.asarray(rows, dtype=np.int64)
        count = float(self.tokens[idx].sum())
        return float(np.exp(self.nll[idx].sum() / count)) if count else float("nan")


def as_chat(prompt: Prompt) -> list[dict[str, str]]:
    """A prompt as a chat: text becomes one user turn; a chat is copied as plain dicts."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    chat = [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt]
    if not chat:
        raise DataError("A prompt is an empty chat.", hint="give each prompt at least a user message")
    return chat


class _ChosenLogProb:
    """A logits processor that records, per step, the log-probability of the greedy choice (the row's maximum;
    it runs last, so it sees the scores the choice is made on) and changes nothing."""

    def __init__(self) -> None:
        self.steps: list[Any] = []

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        self.steps.append(torch.log_softmax(scores.float(), dim=-1).max(dim=-1).values.cpu())
        return scores


class Generator:
    """A causal LM + its tokenizer, ready to answer. `model` may be a PeftModel (then `base()` switches the adapter
    off for a block). max_length: prompt tokens kept (the end of a longer prompt: the question is usually last)."""

    def __init__(self, model: Any, tokenizer: Any, *, max_length: int = 2048) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        stops = {tokenizer.eos_token_id}
        configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        stops.update(configured if isinstance(configured, (list, tuple)) else [configured])
        self.stop_ids = sorted(i for i in stops if i is not None)

    # -- loading -------------------------------------------------------------------------------------------------
    @classmethod
    def from_run(cls, run_dir: str | Path, *, models_dir: str | Path | None = None) -> Generator:
        """The fine-tuned model of a generation run folder: its base model + its LoRA adapter + its tokenizer."""
        from peft import PeftModel

        from training.artefacts import ADAPTER_DIR, read_run
        from training.llm import load_causal_lm, load_tokenizer

        config, _, base, tokenizer_dir = read_run(Path(run_dir), models_dir=models_dir)
        if config.get("task") != "generation":
            raise DataError(f"Run {Path(run_dir).name} is a {config.get('task', 'classification')} run, not a "
                            "generation run.", hint="pick a run trained on a generation (instruction -> response) "
                                                    "data set")
        with warnings.catch_warnings():  # peft asks is_gradient_checkpointing, renamed in transformers 5
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            model = PeftModel.from_pretrained(load_causal_lm(base), str(Path(run_dir) / ADAPTER_DIR))
        return cls(model, load_tokenizer(tokenizer_dir), max_length=int(config["sft"].get("max_length", 2048)))

    @classmethod
    def from_base(cls, model_path: str, *, max_length: int = 2048) -> Generator:
        """A base model alone (a folder or cached hub id: training/llm.py's resolve_causal_lm)."""
        from training.llm import load_causal_lm, load_tokenizer

        return cls(load_causal_lm(model_path), load_tokenizer(model_path), max_length=max_length)

    @contextmanager
    def base(self) -> Iterator[Generator]:
        """A block in which this generator answers as the base model (the adapter off); a plain model is unchanged."""
        disable = getattr(self.model, "disable_adapter", None)
        with disable() if callable(disable) else nullcontext():
            yield self

    # -- answering -----------------------------------------------------------------------------------------------
    def _encode(self, chats: Sequence[list[dict[str, str]]], *, generation_prompt: bool) -> list[list[int]]:
        texts = [self.tokenizer.apply_chat_template(c, add_generation_prompt=generation_prompt, tokenize=False)
                 for c in chats]
        return [list(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]

    def _left_padded(self, rows: Sequence[list[int]]) -> tuple[Any, Any]:
        import torch

        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], dtype=torch.long)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long)
        device = next(self.model.parameters()).device
        return ids.to(device), mask.to(device)

    def generate(self, prompts: Sequence[Prompt], *, max_new_tokens: int = 128, batch_size: int = 8,
                 progress: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None) -> Generations:
        """Greedy answers to N prompts (texts or chats), in batches of `batch_size`, longest prompts together.

        progress(done, N) after each batch; should_stop() is polled between batches and raises TrainingCancelled.
        Returns Generations (texts stripped, special tokens removed)."""
        import torch
        from transformers import GenerationConfig, LogitsProcessorList

        from training.train import TrainingCancelled

        if max_new_tokens < 1 or batch_size < 1:
            raise DataError(f"max_new_tokens = {max_new_tokens}, batch_size = {batch_size}: expected positive "
                            "integers.",
                            hint="ask for at least one token, in batches of at least one prompt")
        if len(prompts) == 0:
            return Generations(texts=[], mean_logprobs=np.zeros(0), new_tokens=np.zeros(0, dtype=np.int64),
                               finished=np.zeros(0, dtype=bool), seconds=0.0)
        encoded = [ids[-self.max_length:] for ids in self._encode([as_chat(p) for p in prompts],
                                                                  generation_prompt=True)]
        n = len(encoded)
        texts, logprobs, counts = [""] * n, np.zeros(n), np.zeros(n, dtype=np.int64)
        finished = np.zeros(n, dtype=bool)
        order = np.argsort([-len(e) for e in encoded], kind="stable")
        config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False,
                                  pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.stop_ids)
        started = time.perf_counter()
        for start in range(0, n, batch_size):
            if should_stop is not None and should_stop():
                raise TrainingCancelled(f"Generation was cancelled after {start} of {n} prompts.")
            idx = order[start:start + batch_size]
            ids, mask = self._left_padded([encoded[i] for i in idx])
            recorder = _ChosenLogProb()
            with torch.inference_mode():
                out = self.model.generate(input_ids=ids, attention_mask=mask, generation_config=config,
                                          logits_processor=LogitsProcessorList([recorder]))
            new = out[:, ids.shape[1]:].cpu().numpy()
            chosen = torch.stack(recorder.steps, dim=1).numpy() if recorder.steps else np.zeros(new.shape)
            for row, i in enumerate(idx):
                ends = np.flatnonzero(np.isin(new[row], self.stop_ids))
                length = int(ends[0]) + 1 if len(ends) else new.shape[1]
                texts[i] = self.tokenizer.decode(new[row, :length], skip_special_tokens=True).strip()
                counts[i], finished[i] = length, bool(len(ends))
                logprobs[i] = float(chosen[row, :length].mean()) if length else 0.0
            if progress is not None:
                progress(min(start + batch_size, n), n)
        return Generations(texts=texts, mean_logprobs=logprobs, new_tokens=counts, finished=finished,
                           seconds=time.perf_counter() - started)

    def score(self, prompts: Sequence[Prompt], references: Sequence[str], *, batch_size: int = 8,
              progress: ProgressFn | None = None) -> ReferenceScores:
        """The NLL of each reference answer given its prompt (teacher forcing; no generation)."""
        import torch

        if len(prompts) != len(references):
            raise DataError(f"{len(prompts)} prompts but {len(references)} references.",
                            hint="give one reference answer per prompt")
        chats = [as_chat(p) for p in prompts]
        heads = self._encode(chats, generation_prompt=True)
        fulls = self._encode([c + [{"role": "assistant", "content": str(r)}] for c, r in zip(chats, references)],
                             generation_prompt=False)
        rows, answer_lengths = [], []
        for head, full in zip(heads, fulls):
            start = next((j for j, (a, b) in enumerate(zip(head, full)) if a != b), min(len(head), len(full)))
            answer = len(full) - start  # the answer's tokens: where the chat with it departs from the prompt alone
            full = full[-self.max_length:]  # keep the answer; a long prompt loses its start
            rows.append(full)
            answer_lengths.append(max(0, min(answer, len(full) - 1)))  # the first token needs one before it
        n = len(rows)
        nll, tokens = np.zeros(n), np.asarray(answer_lengths, dtype=np.int64)
        order = np.argsort([-len(r) for r in rows], kind="stable")
        for start in range(0, n, batch_size):
            idx = [i for i in order[start:start + batch_size] if tokens[i] > 0]
            if idx:
                ids, mask = self._left_padded([rows[i] for i in idx])
                keep = int(max(tokens[i] for i in idx))
                with torch.inference_mode():
                    # Left padding puts every answer at the end: only the last keep + 1 positions need logits.
                    logits = self.model(input_ids=ids, attention_mask=mask, logits_to_keep=keep + 1).logits
                logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
                target = ids[:, -keep:]
                picked = logp.gather(-1, target.unsqueeze(-1)).squeeze(-1).cpu().numpy()
                for row, i in enumerate(idx):
                    nll[i] = -float(picked[row, keep - tokens[i]:].sum())
            if progress is not None:
                progress(min(start + batch_size, n), n)
        return ReferenceScores(nll=nll, tokens=tokens)
