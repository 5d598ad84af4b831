"""Predicting spans with a token-classification run (training/tokens.py): word probabilities, then spans.

Everything comes from the run folder (config.json, labels.json, tokenizer/, adapter/ or model/) plus the base
model folder recorded in config.json, as for training/predict.py's Predictor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from studio.spans import Span, tags_to_spans, word_offsets
from studio.types import ProgressFn
from training.artefacts import ADAPTER_DIR, FULL_MODEL_DIR, read_run


def word_probs(model: Any, tokenizer: Any, words: Sequence[Sequence[str]], *, max_length: int,
               batch_size: int = 32, progress: ProgressFn | None = None) -> list[np.ndarray]:
    """Per text, a (W_i, T) float64 array: softmax over the T tags on each word's first sub-token.

    words: per text, its words (word_offsets). Texts longer than max_length sub-tokens are predicted in pieces
    cut at word boundaries (tokens.split_long), so every word gets a prediction; a word with no sub-token at all
    gets the uniform 1/T (argmax "O", the lowest confidence). Puts `model` in eval mode.
    """
    import torch

    from training.tokens import split_long

    n_tags = int(model.config.num_labels)
    out = [np.full((len(w), n_tags), 1.0 / n_tags) for w in words]
    pieces = split_long(tokenizer, words, max_length)
    # Longest first: padding (and CPU time) stays low, and a memory problem shows on the first batch.
    pieces.sort(key=lambda p: p[2] - p[1], reverse=True)
    device = next(model.parameters()).device
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(pieces), batch_size):
            batch = pieces[start:start + batch_size]
            enc = tokenizer([list(words[i][a:b]) for i, a, b in batch], is_split_into_words=True, truncation=True,
                            max_length=max_length, padding=True, return_tensors="pt")
            probs = torch.softmax(model(**enc.to(device)).logits.float(), dim=-1).cpu().numpy()
            for j, (i, a, _) in enumerate(batch):
                seen: set[int] = set()
                for position, w in enumerate(enc.word_ids(j)):
                    if w is not None and w not in seen:
                        seen.add(w)
                        out[i][a + w] = probs[j, position]
            if progress is not None:
                progress(min(start + batch_size, len(pieces)), len(pieces))
    return out


class SpanPredictor:
    """A loaded spans run. `predict_word_probs(texts)` -> per text (W, T) tag probabilities;
    `predict_spans(texts)` -> per text its spans, each with a score (see predict_spans)."""

    task = "spans"

    def __init__(self, run_dir: Path, *, device: str | None = None) -> None:
        import torch
        from transformers import AutoTokenizer

        from training.tokens import build_token_classifier

        self.run_dir = Path(run_dir)
        config, labels, base, tokenizer_from = read_run(self.run_dir)
        self.run_id: str = config["run_id"]
        self.class_names: list[str] = list(labels["class_names"])
        self.tag_names: list[str] = list(labels["tag_names"])
        self.max_length: int = int(config["train"]["max_length"])
        self.method: str = config["method"]
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_from)
        if self.method == "lora":
            from peft import PeftModel

            model: Any = PeftModel.from_pretrained(build_token_classifier(base, self.tag_names),
                                                   str(self.run_dir / ADAPTER_DIR))
        else:
            model = build_token_classifier(str(self.run_dir / FULL_MODEL_DIR), self.tag_names)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()

    def predict_word_probs(self, texts: Sequence[str], *, batch_size: int = 32,
                           progress: ProgressFn | None = None) -> list[np.ndarray]:
        """texts: N strings -> N arrays of shape (W_i, T): row w is word w of word_offsets(text), columns follow
        tag_names, rows sum to 1."""
        words = [[t[a:b] for a, b in word_offsets(t)] for t in (str(x) for x in texts)]
        return word_probs(self.model, self.tokenizer, words, max_length=self.max_length, batch_size=batch_size,
                          progress=progress)

    def predict_spans(self, texts: Sequence[str], *, batch_size: int = 32,
                      progress: ProgressFn | None = None) -> list[list[Span]]:
        """texts: N strings -> N lists of spans {start, end, label, text, score}: each word takes its most likely
        tag, tags become spans (studio.spans.tags_to_spans), and a span's score is the lowest of its words' top
        probabilities (higher = more confident)."""
        texts = [str(t) for t in texts]
        out = []
        for text, probs in zip(texts, self.predict_word_probs(texts, batch_size=batch_size, progress=progress)):
            best = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=int)
            out.append(tags_to_spans(text, word_offsets(text), [self.tag_names[t] for t in best],
                                     scores=probs.max(axis=1) if len(probs) else []))
        return out
