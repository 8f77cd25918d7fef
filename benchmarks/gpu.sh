#!/usr/bin/env bash
# Every check that needs a GPU, in one run, for a lent device: the GPU tests, then the GPU benchmarks, each under
# its own time limit so that one stuck step cannot eat the others. Logs go to $OUT (or ./gpu-logs).
#
#     bash benchmarks/gpu.sh            # on a machine with CUDA and this repo's dependencies importable
#
# Missing dependencies can come as wheels in .whl/ (installed to /tmp/site first when that folder exists).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-logs}"
mkdir -p "$out"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))" | tee "$out/env.log"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$out/env.log"

step() {  # step NAME SECONDS COMMAND...: run, log, record exit status and wall time
    local name=$1 limit=$2; shift 2
    local start=$SECONDS
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    local rc=$?
    echo "$name rc=$rc $((SECONDS - start))s" | tee -a "$out/summary.log"
    tail -n 40 "$out/$name.log"
}

step gpu-tests "${GPU_TESTS_S:-240}" python3 -m pytest -m gpu tests/gpu -n 0 -p no:cacheprovider -rA --durations=10
step attacks "${ATTACKS_S:-60}" python3 benchmarks/attacks.py --backbone resnet18 --device cuda --n 1000 --batch 500
step corruptions "${CORRUPTIONS_S:-100}" \
    python3 benchmarks/corruptions.py --device cuda --n 10000 --batch 2000 --ref-n 100 --ic-n 40
work=$(mktemp -d)
cp -r suites "$work/"
export work
main_job() {  # the main job on the GPU: training included, then one process's seconds per test kind
    (cd "$work" && python3 -m robustcollapse eval suites/mnist.yaml --device cuda --quiet --json mnist.json) &&
        python3 - "$work/mnist.json" <<'EOF'
import json, sys
sys.path.insert(0, "benchmarks")
from distributed import per_kind
doc = json.load(open(sys.argv[1]))
print("device:", doc["env"].get("device_name"))
for model, test, seconds, rate in per_kind(doc):
    print(f"  {model:12s} {test:24s} {seconds:8.1f} s  {rate:10.0f} images/s")
EOF
}
export -f main_job
step main-job "${MAIN_JOB_S:-200}" bash -c main_job
