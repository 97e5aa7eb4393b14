#!/usr/bin/env bash
# GAN training throughput on one CUDA GPU (H100/H200), via `bench perf train`; JSON per case into $OUT.
#
# Cases: stylegan_cond 256 px batch 32 and 64 px batch 64 (the issue's NVIDIA anchors: 6.7-6.9 s/kimg and
# 2.3-2.5 s/kimg on one H200), dcgan and wgan_gp at 64 px batch 256 (goal >= 5,000 images/s), each eager and
# with torch.compile. Every case has its own timeout and the whole script a deadline (~6 minutes); a failing
# case is logged and the next one runs. Eager cases go first so a slow compile cannot starve them.
#
# Needs the project's Python deps importable (on the device machine: install .whl/ first, see
# ../shared/tools/gpu-wheels.sh, and put the checkout on PYTHONPATH). Usage, from the repository root:
#   OUT=/some/dir bash benchmark/speed/gpu_perf_train.sh            # PYTHON=python3 DEADLINE_S=360 by default
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-/tmp/gpu_perf_out}
DEADLINE_S=${DEADLINE_S:-360}
mkdir -p "$OUT"
export PYTHONPATH="${PYTHONPATH:-}:$PWD"
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-/tmp/inductor-cache}
start=$(date +%s)
log="$OUT/gpu_perf_train.log"

{
  echo "== $(date -u +%FT%TZ) $(hostname)"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader 2>&1 || true
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())" 2>&1
} | tee -a "$log"

# name | case timeout (s) | bench perf train arguments
cases=(
  "stylegan_cond-256-b32-eager|75|--model stylegan_cond --res 256 --batch 32 --steps 32"
  "stylegan_cond-64-b64-eager|60|--model stylegan_cond --res 64 --batch 64 --steps 48"
  "dcgan-64-b256-eager|45|--model dcgan --res 64 --batch 256 --steps 50"
  "wgan_gp-64-b256-eager|45|--model wgan_gp --res 64 --batch 256 --steps 20"
  "dcgan-64-b256-compile|75|--model dcgan --res 64 --batch 256 --steps 50 --compile"
  "wgan_gp-64-b256-compile|75|--model wgan_gp --res 64 --batch 256 --steps 20 --compile"
  "stylegan_cond-64-b64-compile|120|--model stylegan_cond --res 64 --batch 64 --steps 48 --compile"
  "stylegan_cond-256-b32-compile|150|--model stylegan_cond --res 256 --batch 32 --steps 32 --compile"
)

for entry in "${cases[@]}"; do
  IFS='|' read -r name limit args <<<"$entry"
  left=$((DEADLINE_S - ($(date +%s) - start)))
  if ((left < 20)); then
    echo "-- $name: skipped (deadline)" | tee -a "$log"
    continue
  fi
  ((limit > left)) && limit=$left
  echo "-- $name (timeout ${limit}s): bench perf train $args" | tee -a "$log"
  # shellcheck disable=SC2086
  timeout --signal=TERM --kill-after=10 "$limit" \
    $PY -m benchmark.cli.app -q perf train $args --device cuda --json "$OUT/$name.json" >>"$log" 2>&1
  rc=$?
  if ((rc != 0)); then
    echo "   FAILED rc=$rc (124 = timeout); last lines:" | tee -a "$log"
    tail -n 5 "$log" | sed 's/^/   | /'
  fi
done

$PY - "$OUT" <<'EOF' 2>&1 | tee "$OUT/summary.txt"
import json, pathlib, sys
rows = sorted(pathlib.Path(sys.argv[1]).glob("*.json"))
print(f"{'case':32s} {'img/s':>9s} {'s/kimg':>8s} {'peak MB':>8s} {'TFLOP/s':>8s} {'MFU':>6s} {'warmup s':>8s}")
for p in rows:
    r = json.loads(p.read_text())
    mfu = r.get("flop_utilisation")
    tf = r.get("achieved_tflops")
    print(f"{p.stem:32s} {r['images_per_s']:9.1f} {r['s_per_kimg']:8.3f} {r['peak_memory_mb']:8.0f} "
          f"{(tf or 0):8.1f} {('%.1f%%' % (100 * mfu)) if mfu else 'n/a':>6s} {r['warmup_seconds']:8.1f}")
EOF
echo "== done in $(($(date +%s) - start)) s" | tee -a "$log"
