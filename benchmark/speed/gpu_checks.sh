#!/usr/bin/env bash
# Every GPU measurement coverbench's BENCHMARKS.md quotes, in one run on one CUDA machine (H100/H200), with a
# deadline, writing JSON, logs and profiles into $OUT as it goes (so a timeout still returns what finished).
#
#   1. stylegan_cond training, eager bf16 + channels_last: 256 px batch 32 and 64 px batch 64 (the issue's NVIDIA
#      anchors on one H200: 6.7-6.9 and 2.3-2.5 s/kimg), the 256 px case with a torch.profiler operator table;
#   2. log-mel clips/s from pinned memory, and the cnn encoder's embedding of 50,000 decoded clips;
#   3. Inception-v3 features/s on 10,000 images, fp32 and TF32, and TF32's effect on the features and on FID;
#   4. stylegan_cond with torch.compile (64 px, then 256 px), while the deadline allows.
#
# On the device machine: carry .whl (../shared/tools/gpu-wheels.sh) and, since the 87 MB Inception file does not
# fit the carry limit, a TorchScript copy stored in half precision named by COVERBENCH_INCEPTION_WEIGHTS
# (features are computed in fp32 either way; the half-precision weights only round the weights).
#   OUT=/some/dir DEADLINE_S=480 bash benchmark/speed/gpu_checks.sh
set -u
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
OUT=${OUT:-/tmp/gpu_checks_out}
DEADLINE_S=${DEADLINE_S:-480}
mkdir -p "$OUT"
if [ -d .whl ] && ! $PY -c "import librosa, pydantic" 2>/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="${PYTHONPATH:-}:$PWD" PYTHONUNBUFFERED=1
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-/tmp/inductor-cache}
start=$(date +%s)
log="$OUT/gpu_checks.log"
{
  echo "== $(date -u +%FT%TZ) $(hostname)"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader 2>&1 || true
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
} >>"$log" 2>&1

# name | timeout (s) | command
cases=(
  "sg256-eager|110|-m benchmark.cli.app -q perf train --model stylegan_cond --res 256 --batch 32 --steps 32 --device cuda --json $OUT/sg256-eager.json --profile $OUT/sg256-eager-profile.txt"
  "sg64-eager|70|-m benchmark.cli.app -q perf train --model stylegan_cond --res 64 --batch 64 --steps 48 --device cuda --json $OUT/sg64-eager.json"
  "audio|100|benchmark/speed/bench_features.py --gpu-only --json $OUT/audio.json"
  "inception|100|benchmark/speed/bench_fid.py --skip-fid --inception 10000 --res 256 --batch-size 256 --device cuda --json $OUT/inception.json"
  "sg64-compile|150|-m benchmark.cli.app -q perf train --model stylegan_cond --res 64 --batch 64 --steps 48 --device cuda --compile --no-flops --json $OUT/sg64-compile.json"
  "sg256-compile|200|-m benchmark.cli.app -q perf train --model stylegan_cond --res 256 --batch 32 --steps 32 --device cuda --compile --no-flops --json $OUT/sg256-compile.json"
)
for entry in "${cases[@]}"; do
  IFS='|' read -r name limit cmd <<<"$entry"
  left=$((DEADLINE_S - ($(date +%s) - start)))
  if ((left < 25)); then
    echo "-- $name: skipped (deadline)" >>"$log"
    continue
  fi
  ((limit > left)) && limit=$left
  echo "-- $name (timeout ${limit}s, at $(($(date +%s) - start)) s): $cmd" >>"$log"
  t0=$(date +%s)
  # shellcheck disable=SC2086
  timeout --signal=TERM --kill-after=10 "$limit" $PY $cmd >>"$log" 2>&1
  echo "   rc=$? in $(($(date +%s) - t0)) s (124 = timeout)" >>"$log"
done
echo "== done in $(($(date +%s) - start)) s" >>"$log"
cat "$log"
