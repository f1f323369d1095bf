#!/usr/bin/env bash
# What only a CUDA GPU can check, in one go (under 10 minutes with the default limits):
#   1. the GPU tests (tests/test_gpu.py);
#   2. the GPU benchmark: the base model in bf16 + compile, eager, fp16 + GradScaler (tokens/s,
#      MFU, peak memory);
#   3. the README's demo on the GPU, compiled, with TORCH_LOGS=recompiles, then `translate`.
#
#   bash scripts/gpu_check.sh [OUT_DIR]      logs in OUT_DIR (default runs/gpu_check)
#
# TEST_LIMIT, BENCH_LIMIT, DEMO_LIMIT (seconds: 180, 180, 150) bound the parts (SIGTERM, which
# the trainer answers by saving, then SIGKILL 20-30 s later); PYTHON picks the
# interpreter (python3); the demo's data and run go to a temporary folder. Exit status 0 when all
# parts pass.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/gpu_check}
py=${PYTHON:-python3}
work=$(mktemp -d)
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$py" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda,
    torch.cuda.get_device_name() if torch.cuda.is_available() else "(no CUDA device)")' |
    tee "$out/device.txt"

timeout -k 20 "${TEST_LIMIT:-180}" "$py" -m pytest tests/test_gpu.py -q -rs -p no:cacheprovider 2>&1 |
    tee "$out/pytest.log"
tests=$?

timeout -k 20 "${BENCH_LIMIT:-180}" "$py" scripts/benchmark.py --only gpu --gpu-steps 30 --json 2>&1 |
    tee "$out/benchmark_gpu.log"
bench=$?

demo=0
if "$py" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
    start=$SECONDS
    TORCH_LOGS=recompiles timeout -k 30 "${DEMO_LIMIT:-150}" "$py" -m translate.train \
        --config configs/demo.yaml --set train.device=cuda --set "data.dir=$work/data" \
        --set "train.out_dir=$work/run" 2>&1 | tee "$out/demo.log"
    demo=$?
    echo "demo: $((SECONDS - start)) s, exit $demo, $(grep -c 'Recompiling' "$out/demo.log") recompiles"
    "$py" -m translate --checkpoint "$work/run/best" "Guten Morgen" 2>&1 | tee -a "$out/demo.log"
    demo=$((demo || $?))
fi
rm -rf "$work"
echo "gpu_check: tests exit $tests, benchmark exit $bench, demo exit $demo; logs in $out"
exit $((tests || bench || demo))
