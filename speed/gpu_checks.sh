#!/usr/bin/env bash
# Every GPU measurement coverbench's BENCHMARKS.md quotes, in one run on one CUDA machine (H100/H200), with a
# deadline, writing JSON, logs and profiles into $OUT as it goes (so a timeout still returns what finished).
#
#   0. bf16 autocast gradients against strict fp32 (D loss, R1, G loss, path length; bf16_gradients.py);
#   1. stylegan_cond training, eager bf16 + channels_last, 256 px batch 32 and 64 px batch 64, our default widths
#      (channel_base 16384 below 512 px: NVIDIA's "auto"/paper256 widths), with each way of running the FIR
#      resampling: the depthwise conv (the default, baseline), fir_impl=pool (box-filter cascade, channels_last)
#      and fir_impl=fold (the filter merged into the up/down convs: dense convs only, 1.8x the FLOPs);
#   2. the same at the widths of the issue's anchor, NVIDIA's "stylegan2" config (channel_base 32768: 3.0x the
#      FLOPs per image at 256 px, 2.1x at 64 px); the FIR filters alone per implementation (bench_fir.py);
#   3. 64 px with torch.compile in reduce-overhead mode (CUDA graphs for the compiled parts);
#   4. the 256 px iteration split by kind with profiler tables (anchor widths); blend; NCHW;
#   5. torch.compile (default mode) at 64 and 256 px, the old default-width profile.
#      Cases 3-5 run the FIR implementation that was fastest in step 1 at their resolution (@BEST64@, @BEST256@);
#   6. log-mel clips/s, the cnn embedding of 50,000 clips, Inception fp32/TF32, DCGAN/WGAN-GP at 64 px.
# Cases run in this order while the deadline allows (the later ones were measured in an earlier session). FLOPs per
# image are not counted here (--no-flops): they depend on shapes only and BENCHMARKS.md has them from the meta-device
# count (speed.harness.iteration_flops), which costs ~15 s of CPU per StyleGAN case.
# Results: $OUT/results.json (one entry per finished case), $OUT/gpu_checks.log, $OUT/profiles/*.txt.
# python -m speed.summarize_gpu_checks results.json --flops turns them into BENCHMARKS.md rows (same-run ratios).
#
# On the device machine: carry .whl and .devcarry (speed/prepare_device.sh makes both). The 87 MB
# Inception file does not fit the carry limit, so .devcarry holds a TorchScript copy stored in half precision, named
# by COVERBENCH_INCEPTION_WEIGHTS (features are computed in fp32 either way; only the weights are rounded).
#   OUT=/some/dir DEADLINE_S=540 bash speed/gpu_checks.sh
# Before a device session, SMOKE=1 runs every case shrunk to a tiny CPU run (same flags otherwise): every rc must be 0.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-/tmp/gpu_checks_out}
DEADLINE_S=${DEADLINE_S:-540}
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

# name | timeout (s) | command (a case writing JSON writes $J/<name>.json; it is merged into $OUT/results.json)
J=$(mktemp -d)  # this run's case JSONs only (a fixed folder would merge a previous run's leftovers)
mkdir -p "$J" "$OUT/profiles"
cases=(
  "bf16-grads|60|-m speed.bf16_gradients --res 64 --batch 8 --json $J/bf16-grads.json"
  "sg256-eager|100|-m benchmark.cli.app -q perf train --model stylegan_cond --device cuda --res 256 --batch 32 --steps 32 --no-flops --json $J/sg256-eager.json"
  "sg256-eager-pool|70|-m benchmark.cli.app -q perf train --model stylegan_cond --device cuda --res 256 --batch 32 --steps 32 --hparam fir_impl=pool --no-flops --json $J/sg256-eager-pool.json"
  "sg256-eager-fold|70|-m benchmark.cli.app -q perf train --model stylegan_cond --device cuda --res 256 --batch 32 --steps 32 --hparam fir_impl=fold --no-flops --json $J/sg256-eager-fold.json"
  "sg64-eager|60|-m benchmark.cli.app -q perf train --model stylegan_cond --device cuda --res 64 --batch 64 --steps 48 --no-flops --json $J/sg64-eager.json"
  "sg64-eager-pool|50|-m benchmark.cli.app -q perf train --model stylegan_cond --device cuda --res 64 --batch 64 --steps 48 --hparam fir_impl=pool --no-flops --json $J/sg64-eager-pool.json"
  "sg64-eager-fold|50|-m benchmark.cli.app -q perf train --model stylegan_cond --device cuda --res 64 --batch 64 --steps 48 --hparam fir_impl=fold --no-flops --json $J/sg64-eager-fold.json"
  "sg256w-eager|100|-m benchmark.cli.app -q perf train --model stylegan_cond --device cuda --res 256 --batch 32 --steps 32 --hparam channel_base=32768 --no-flops --json $J/sg256w-eager.json"
  "sg256w-eager-pool|90|-m benchmark.cli.app -q perf train --model stylegan_cond --device cuda --res 256 --batch 32 --steps 32 --hparam channel_base=32768 --hparam fir_impl=pool --no-flops --json $J/sg256w-eager-pool.json"
  "sg256w-eager-fold|90|-m benchmark.cli.app -q perf train --model stylegan_cond --device cuda --res 256 --batch 32 --steps 32 --hparam channel_base=32768 --hparam fir_impl=fold --no-flops --json $J/sg256w-eager-fold.json"
  "sg64w-eager|70|-m benchmark.cli.app -q perf train --model stylegan_cond --device cuda --res 64 --batch 64 --steps 48 --hparam channel_base=32768 --no-flops --json $J/sg64w-eager.json"
  "sg64w-eager-pool|60|-m benchmark.cli.app -q perf train --model stylegan_cond --device cuda --res 64 --batch 64 --steps 48 --hparam channel_base=32768 --hparam fir_impl=pool --no-flops --json $J/sg64w-eager-pool.json"
  "fir256|60|-m speed.bench_fir --res 256 --batch 32 --json $J/fir256.json"
  "sg64-compile-cudagraphs|150|-m benchmark.cli.app -q perf train --model stylegan_cond --device cuda --res 64 --batch 64 --steps 48 --compile --compile-mode reduce-overhead --hparam fir_impl=@BEST64@ --no-flops --json $J/sg64-compile-cudagraphs.json"
  "sg256w-iterations-best|110|-m speed.stylegan_iterations --res 256 --batch 32 --iters 16 --hparam channel_base=32768 --hparam fir_impl=@BEST256@ --json $J/sg256w-iterations-best.json --profile $OUT/profiles"
  "sg256-eager-blend|80|-m benchmark.cli.app -q perf train --model stylegan_cond --device cuda --res 256 --batch 32 --steps 32 --hparam fir_impl=blend --no-flops --json $J/sg256-eager-blend.json"
  "sg64-eager-nchw|60|-m benchmark.cli.app -q perf train --model stylegan_cond --device cuda --res 64 --batch 64 --steps 48 --no-channels-last --no-flops --json $J/sg64-eager-nchw.json"
  "sg64-compile|150|-m benchmark.cli.app -q perf train --model stylegan_cond --device cuda --res 64 --batch 64 --steps 48 --compile --hparam fir_impl=@BEST64@ --no-flops --json $J/sg64-compile.json"
  "sg64-compile-blend|150|-m benchmark.cli.app -q perf train --model stylegan_cond --device cuda --res 64 --batch 64 --steps 48 --compile --hparam fir_impl=blend --no-flops --json $J/sg64-compile-blend.json"
  "sg256-compile|240|-m benchmark.cli.app -q perf train --model stylegan_cond --device cuda --res 256 --batch 32 --steps 32 --compile --hparam fir_impl=@BEST256@ --no-flops --json $J/sg256-compile.json"
  "sg256-iterations|110|-m speed.stylegan_iterations --res 256 --batch 32 --iters 16 --json $J/sg256-iterations.json --profile $OUT/profiles"
  "audio|70|-m speed.bench_features --gpu-only --json $J/audio.json"
  "inception|70|-m speed.bench_fid --skip-fid --inception 10000 --res 256 --batch-size 256 --device cuda --json $J/inception.json"
  "dcgan_cond-64-eager|45|-m benchmark.cli.app -q perf train --model dcgan_cond --res 64 --batch 256 --steps 50 --device cuda --json $J/dcgan_cond-64-eager.json"
  "wgan_gp_cond-64-eager|45|-m benchmark.cli.app -q perf train --model wgan_gp_cond --res 64 --batch 256 --steps 20 --device cuda --json $J/wgan_gp_cond-64-eager.json"
)
merge() {  # fold every case JSON written so far into $OUT/results.json
  $PY - "$J" "$OUT/results.json" <<'PYEOF'
import json, pathlib, sys
src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
dst.write_text(json.dumps({p.stem: json.loads(p.read_text()) for p in sorted(src.glob("*.json"))}, indent=1))
PYEOF
}
smoke() {  # SMOKE=1: the same commands shrunk to tiny CPU runs, to catch a broken case before device time is spent
  sed -E -e 's/--device cuda/--device cpu/; s/--res (64|256)/--res 32/; s/--batch [0-9]+/--batch 4/' \
    -e 's/--steps [0-9]+/--steps 1 --warmup 1 --size tiny/; s/--iters [0-9]+/--iters 2 --size tiny/' \
    -e 's/(speed.bench_fir .*)--json/\1--reps 1 --json/; s/(speed.bf16_gradients .*)--json/\1--size tiny --json/' <<<"$1"
}
best_fir() {  # the FIR implementation with the most images/s among this run's sg<res>-eager{,-pool,-fold} cases
  $PY - "$J" "$1" <<'PYEOF'
import json, pathlib, sys
folder, res = pathlib.Path(sys.argv[1]), sys.argv[2]
rates = {}
for impl, suffix in (("conv", ""), ("pool", "-pool"), ("fold", "-fold")):
    p = folder / f"sg{res}-eager{suffix}.json"
    if p.exists():
        rates[impl] = json.loads(p.read_text()).get("images_per_s") or 0.0
print(max(rates, key=rates.get) if rates else "conv")
PYEOF
}
for entry in "${cases[@]}"; do
  IFS='|' read -r name limit cmd <<<"$entry"
  if [ -n "${SMOKE:-}" ]; then
    case "$name" in audio | inception) echo "-- $name: skipped (SMOKE: needs CUDA)" >>"$log"; continue ;; esac
    cmd=$(smoke "$cmd")
  fi
  for res in 64 256; do  # later cases (compile, profiles) run the FIR implementation this run found fastest
    [[ $cmd == *"@BEST$res@"* ]] && cmd=${cmd//@BEST$res@/$(best_fir $res)}
  done
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
  merge
done
echo "== done in $(($(date +%s) - start)) s" >>"$log"
cat "$log"
