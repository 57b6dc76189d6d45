#!/usr/bin/env bash
# Wheels for tools/gpu_check.sh that the GPU machine's image lacks (it has torch, transformers, peft, numpy, scipy,
# scikit-learn, sacrebleu, rich, pyyaml...; see the device README), fetched where pip works, into .whl/ (ignored by
# git). bitsandbytes (43 MB) is for the QLoRA test; leave it out with NO_QLORA=1 to keep the upload small.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
PIP="python3 -m pip"
$PIP download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux2014_x86_64 -d .whl \
  gguf==0.19.0 nltk==3.10.4 $([ "${NO_QLORA:-0}" = 1 ] || echo bitsandbytes==0.50.2)
$PIP wheel -q --no-deps -w .whl rouge-score==0.1.2  # an sdist only: built here into a pure-Python wheel
ls -la .whl
