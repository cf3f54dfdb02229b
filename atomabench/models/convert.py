"""GGUF → Hugging Face folder, done once and cached.

transformers can read a GGUF (dequantizing it) but cannot ``save_pretrained`` the result directly: the
config still carries the GGUF ``quantization_config``. So we build a fresh model from the config with
that field dropped, load the dequantized state dict into it, and save it with the tokenizer. The folder
reloads in under a second and vLLM loads it too. See DEVELOPERS.md.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def convert_gguf(gguf_file: Path, destination: Path) -> Path:
    """Write an fp32 HF folder for ``gguf_file`` at ``destination`` atomically (tmp dir + rename)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    previous_tqdm = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"  # the GGUF reader's own bar would fight the caller's progress display
    previous_verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
        loaded = AutoModelForCausalLM.from_pretrained(
            gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32
        )
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        fresh.load_state_dict(loaded.state_dict())
        fresh.generation_config = loaded.generation_config

        destination.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=destination.name + ".", dir=destination.parent))
        try:
            fresh.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            (staging / "SOURCE.txt").write_text(f"converted by atomabench from {gguf_file}\n")
            if destination.exists():  # another process finished first
                shutil.rmtree(staging)
            else:
                staging.rename(destination)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    finally:
        if previous_tqdm is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = previous_tqdm
        hf_logging.set_verbosity(previous_verbosity)
        hf_logging.enable_progress_bar()
    return destination
