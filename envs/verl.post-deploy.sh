#!/usr/bin/env bash
# Finishes envs/verl.yaml inside the new env (Snakemake runs it after `--sdm conda` creates the
# env; by hand: conda run -n rlev-verl bash envs/verl.post-deploy.sh), then checks the env.
#
# flash-attn (verl's fsdp extra pins 2.8.3) is installed here, after torch, because PyPI has
# only its source archive and the build imports torch:
#   FLASH_ATTN_WHEEL=<path or URL of a prebuilt flash_attn-2.8.3 wheel for this torch (2.11),
#   CUDA 13 and cp311>   installs that wheel (the quick way; many sites keep one);
#   otherwise it is built against this env's torch (--no-build-isolation): needs nvcc of a
#   CUDA 13 toolkit and about an hour (MAX_JOBS parallel compile jobs, 8 by default).
set -euo pipefail
FLASH_ATTN_VERSION=2.8.3

if ! python -c "import flash_attn" 2>/dev/null; then
    if [[ -n "${FLASH_ATTN_WHEEL:-}" ]]; then
        python -m pip install --no-deps "$FLASH_ATTN_WHEEL"
    else
        if ! command -v nvcc >/dev/null; then
            echo "envs/verl.post-deploy.sh: flash-attn $FLASH_ATTN_VERSION must be compiled (no wheel on PyPI) and" \
                 "nvcc is not on PATH. Load a CUDA 13 toolkit, or set FLASH_ATTN_WHEEL to a prebuilt wheel" \
                 "for torch 2.11 / cp311, and create the env again." >&2
            exit 1
        fi
        MAX_JOBS="${MAX_JOBS:-8}" python -m pip install --no-build-isolation --no-deps "flash-attn==$FLASH_ATTN_VERSION"
    fi
fi

# The env checks itself: versions verl pins, the imports the GPU rules need, pip's resolver.
python - "$FLASH_ATTN_VERSION" <<'PY'
import importlib
import importlib.metadata as md
import sys

from rlev.train.verl import VERL_VERSION  # the verl the code is written against (pinned in envs/verl.yaml)

want = {"verl": VERL_VERSION, "torch": "2.11.0", "vllm": "0.24.0", "transformers": "5.9.0", "flash-attn": sys.argv[1]}
wrong = [f"{name} {md.version(name)} (want {version})" for name, version in want.items()
         if md.version(name).split("+")[0] != version]
if wrong:
    sys.exit("envs/verl.post-deploy.sh: wrong versions: " + ", ".join(wrong))
for module in ("torch", "vllm", "flash_attn", "transfer_queue", "verl.trainer.main_ppo", "rlev.reward",
               "rlev.train.verl_reward_manager"):
    importlib.import_module(module)
print("rlev-verl env: versions and imports OK")
PY
python -m pip check
