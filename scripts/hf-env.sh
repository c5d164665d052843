#!/usr/bin/env bash
# Creates a second Python venv, $DASS_CACHE/venv-hf, for the Hugging Face side of the oracle:
# llama.cpp's own convert_hf_to_gguf.py (from the vendored tree that build-llama-cpp.sh keeps
# under $DASS_CACHE/llama.cpp-$LLAMA_CPP_VERSION/src) and scripts/make-hf-checkpoints.py.
# Once: a stamp file records what was installed; a second run only compares it (instant).
#
# Versions follow the converter's own requirements/requirements-convert_hf_to_gguf.txt
# (torch==2.11.0, transformers==4.57.6, numpy~=2.2.6, sentencepiece<0.3, protobuf<5), and the
# gguf package is the gguf-py that ships in that very tree (the converter also puts it first on
# sys.path itself, so library and converter always match).
#
# torch: PyPI's Linux wheel is the CUDA build. `pip install --no-deps torch` plus torch's pure
# Python requirements does NOT import ("libcudart.so.13: cannot open shared object file", then
# "libcublasLt.so.*[0-9] not found"): libtorch_global_deps links the CUDA runtime even for CPU
# use, and PyTorch's CPU-only wheel index is not reachable from here. So torch comes with its
# nvidia-* dependencies (2.7 GB of them; the venv is 4.2 GB). Only the CPU is ever used.
#
# Then a third venv, $DASS_CACHE/venv-hf5: the same converter on transformers 5 (the current
# release, pinned), for checkpoints that transformers 5 saved (make-hf-checkpoints.sh --tf5,
# hf-reference.sh --tf5). It holds only transformers 5 and what it needs that differs from
# venv-hf (tokenizers, huggingface_hub and their new dependencies; 200 MB) and sees
# venv-hf's site-packages for the rest (torch, numpy, safetensors, sentencepiece, gguf, ...)
# through a .pth file, which Python appends to sys.path after venv-hf5's own site-packages:
# transformers 5's packages win, torch is not downloaded twice. Stamped the same way; rebuilt
# when venv-hf is.
set -euo pipefail
. "$(dirname "$0")/common.sh"

die() { echo "hf-env: ERROR: $*" >&2; exit 1; }
log() { echo "hf-env: $*"; }

VENV_HF="$DASS_CACHE/venv-hf"
GGUF_PY="$DASS_CACHE/llama.cpp-$LLAMA_CPP_VERSION/src/gguf-py"
STAMP="$VENV_HF/.dass-requirements"

# Pinned, all of them (top level and transitive, as pip resolved the converter's pins), so every
# machine gets the same set; installed with --no-deps from this list. Left out on purpose:
# triton==3.6.0 (640 MB, GPU kernel compiler; torch imports and runs on the CPU without it).
# sentencepiece 0.2.1, not the newest 0.2.3 that pip picks: 0.2.3's sentencepiece_model_pb2 needs
# protobuf >= 5.26 ("cannot import name 'runtime_version'"), the converter pins protobuf < 5.
REQS="torch==2.11.0 transformers==4.57.6 accelerate==1.15.0 sentencepiece==0.2.1
safetensors==0.8.0 protobuf==4.25.9 numpy==2.2.6
tokenizers==0.22.2 huggingface_hub==0.36.2 hf-xet==1.8.0 tqdm==4.70.1 pyyaml==6.0.4
requests==2.34.2 certifi==2026.10.19.post1 charset-normalizer==3.5.3 idna==3.20 urllib3==2.8.0
regex==2026.11.19 packaging==26.4 psutil==7.2.2 filelock==4.3.1 fsspec==2026.9.0 jinja2==3.1.6
markupsafe==3.0.4 networkx==3.6.1 sympy==1.14.0 mpmath==1.3.0 typing_extensions==4.16.0
setuptools==81.0.0 cuda-bindings==13.5.0 cuda-pathfinder==1.9.1
cuda-toolkit==13.0.2 nvidia-cublas==13.1.0.3 nvidia-cuda-cupti==13.0.85
nvidia-cuda-nvrtc==13.0.88 nvidia-cuda-runtime==13.0.96 nvidia-cudnn-cu13==9.19.0.56
nvidia-cufft==12.0.0.61 nvidia-cufile==1.15.1.6 nvidia-curand==10.4.0.35
nvidia-cusolver==12.0.4.66 nvidia-cusparse==12.6.3.3 nvidia-cusparselt-cu13==0.8.0
nvidia-nccl-cu13==2.28.9 nvidia-nvjitlink==13.0.88 nvidia-nvshmem-cu13==3.4.5
nvidia-nvtx==13.0.85"

# The vendored tree (and the llama.cpp tools, which hf-reference.sh also needs). Cached.
bash "$(dirname "$0")/build-llama-cpp.sh" >/dev/null
[ -f "$GGUF_PY/pyproject.toml" ] || die "no gguf-py in $GGUF_PY"
GGUF_VER="$(sed -n 's/^version = "\(.*\)"/\1/p' "$GGUF_PY/pyproject.toml" | head -1)"
WANT="$(echo $REQS) gguf-py==$GGUF_VER@$GGUF_PY"

hf4_ready=0
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$VENV_HF/bin/python" ]; then
    hf4_ready=1
fi
if [ $hf4_ready = 0 ]; then

if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    log "apt-get install python3-venv"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        --no-install-recommends python3-venv >/dev/null || die "cannot install python3-venv"
fi

# No stamp (or another set): start from scratch, so an interrupted run never counts as done.
log "creating $VENV_HF (torch with its CUDA libraries: 4.2 GB, ~2 min)"
rm -rf "$VENV_HF"
mkdir -p "$DASS_CACHE"
python3 -m venv "$VENV_HF"
PIP=("$VENV_HF/bin/python" -m pip --disable-pip-version-check --no-cache-dir)
# shellcheck disable=SC2086
"${PIP[@]}" install --quiet --no-deps $REQS || die "pip install failed"
# gguf-py from the source tree, with its dependencies already pinned above.
"${PIP[@]}" install --quiet --no-deps "$GGUF_PY" || die "pip install $GGUF_PY failed"

"$VENV_HF/bin/python" - "$GGUF_VER" <<'EOF' || die "the new venv does not work"
import sys
import torch, transformers, accelerate, sentencepiece, safetensors, google.protobuf, numpy, gguf
from sentencepiece import sentencepiece_model_pb2
from importlib.metadata import version
assert version("gguf") == sys.argv[1], (version("gguf"), sys.argv[1])
t = torch.ones(2) + 1
assert t.tolist() == [2.0, 2.0], t
print(f"hf-env: torch {torch.__version__} (CPU: {t}), transformers {transformers.__version__}, "
      f"gguf {version('gguf')}, numpy {numpy.__version__}")
EOF
echo "$WANT" > "$STAMP"
log "ready: $VENV_HF ($(du -sh "$VENV_HF" | cut -f1))"
rm -rf "$DASS_CACHE/venv-hf5"   # it was built over the old venv-hf
fi

# ---- venv-hf5: transformers 5 on top of venv-hf ------------------------------------------
VENV_HF5="$DASS_CACHE/venv-hf5"
STAMP5="$VENV_HF5/.dass-requirements"
# What pip resolved for transformers==5.24.0 next to venv-hf's packages (all pinned, --no-deps).
REQS5="transformers==5.24.0 tokenizers==0.23.3 huggingface_hub==2.4.0 typer==0.29.2
click==8.5.1 rich==15.0.0 markdown-it-py==4.3.0 mdurl==0.1.2 Pygments==2.21.0
shellingham==1.5.4 annotated-doc==0.0.7 httpx2==2.16.2 httpcore2==2.16.2 h11==0.16.0
anyio==4.16.0 truststore==0.10.5 pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0
typing-inspection==0.4.5"
WANT5="$(echo $REQS5) on $WANT"
if [ -f "$STAMP5" ] && [ "$(cat "$STAMP5")" = "$WANT5" ] && [ -x "$VENV_HF5/bin/python" ]; then
    exit 0
fi
log "creating $VENV_HF5 (transformers 5 over $VENV_HF)"
rm -rf "$VENV_HF5"
python3 -m venv "$VENV_HF5"
SITE5="$("$VENV_HF5/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
SITE4="$("$VENV_HF/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
# Python appends the directory a .pth file names to sys.path after venv-hf5's own site-packages.
echo "$SITE4" > "$SITE5/zz-dass-venv-hf.pth"
PIP5=("$VENV_HF5/bin/python" -m pip --disable-pip-version-check --no-cache-dir)
# shellcheck disable=SC2086
"${PIP5[@]}" install --quiet --no-deps $REQS5 || die "pip install (venv-hf5) failed"
"$VENV_HF5/bin/python" - "$SITE5" <<'EOF' || die "the new venv-hf5 does not work"
import sys
import torch, transformers, tokenizers, huggingface_hub, gguf
assert transformers.__file__.startswith(sys.argv[1]), transformers.__file__
assert transformers.__version__.startswith("5."), transformers.__version__
from transformers import TokenizersBackend, PreTrainedTokenizerFast
assert PreTrainedTokenizerFast is TokenizersBackend
print(f"hf-env: venv-hf5: transformers {transformers.__version__}, tokenizers {tokenizers.__version__}, "
      f"huggingface_hub {huggingface_hub.__version__}, torch {torch.__version__} from venv-hf")
EOF
echo "$WANT5" > "$STAMP5"
log "ready: $VENV_HF5 ($(du -sh "$VENV_HF5" | cut -f1))"
