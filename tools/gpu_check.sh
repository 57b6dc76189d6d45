#!/usr/bin/env bash
# The prepared GPU check (issue 16, README "GPUs"): on one CUDA GPU, in under 8 minutes, with nothing from the network.
#   1. the device-dependent unit tests, which run on every device present (CUDA too here);
#   2. the same small bake-off on CUDA and on the CPU: the same verdict, metrics within bf16 noise (tools/device_parity.py);
#   3. fit() against transformers Trainer + peft on a ~1B Llama-shaped model with random weights, interleaved arms:
#      tokens/s, the ratio and MFU against a bf16 matmul peak measured in the same run (benchmarks/speed/gpu_training.py);
#      every row begins with the same 96 tokens (a chat template's system turn and instruction), and fit() runs with
#      the shared prompt prefix and without it (sftbench-unshared, today's path before issue 29): speed.json's
#      "sharing" is the with/without ratio, "ratio_unshared" the comparison with the Trainer as before.
#   4. scoring with and without the shared prompt prefix (harness/models/prefix.py) on a ~1B Llama-shaped model with
#      random weights and chat-shaped rows, interleaved arms: the median ratio and whether the predictions agree
#      (benchmarks/speed/prefix.py --synthetic 1b).
# Packages the GPU machine lacks travel as wheels in .whl/ (tools/gpu_wheels.sh fetches them where pip works).
# Logs and figures go to $OUT (default /tmp/gpu_check). Exit 0 only if every step passed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 SFTBENCH_CACHE=${SFTBENCH_CACHE:-/tmp/sftbench-cache}
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/gpu.txt"
$PY -c "import torch, transformers, peft; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'transformers', transformers.__version__, 'peft', peft.__version__)" | tee -a "$OUT/gpu.txt"
failed=()
step() {  # step NAME SECONDS COMMAND...: run it under a time limit, keep its log, note a failure and go on
  local name=$1 limit=$2; shift 2
  echo "== $name ($(date +%T))"
  local start=$SECONDS
  if timeout "$limit" "$@" >"$OUT/$name.log" 2>&1; then echo "   passed in $((SECONDS - start)) s"
  else echo "   FAILED (exit $?) after $((SECONDS - start)) s"; failed+=("$name"); fi
  tail -n 12 "$OUT/$name.log"
}
step tests 150 $PY -m pytest -q -p no:cacheprovider -rs tests/harness/test_accelerators.py tests/harness/test_train.py \
  tests/tuners
step parity 200 $PY tools/device_parity.py --device cuda
step speed 260 $PY benchmarks/speed/gpu_training.py --prefix 96 --json "$OUT/speed.json"
step prefix 120 $PY benchmarks/speed/prefix.py --synthetic 1b --device cuda --repeats 3 --json "$OUT/prefix.json"
if ((${#failed[@]})); then echo "gpu_check: failed: ${failed[*]}"; exit 1; fi
echo "gpu_check: all steps passed"
