#!/usr/bin/env bash
# Prepares, on this (CPU) machine, the two git-ignored folders a device run of gpu_checks.sh carries:
#   .whl/      the Python 3.12 wheels the GPU machine's image lacks (../shared/tools/gpu-wheels.sh);
#   .devcarry/ inception_half.pt, the TorchScript Inception-v3 weights stored in half precision: the real 87 MB
#              file does not fit the device tool's 64 MiB carry limit. load_inception() casts back to fp32, so
#              features are computed in fp32 from weights rounded to half precision.
# Then, with the device tool: carry [".whl", ".devcarry"] and run
#   export COVERBENCH_INCEPTION_WEIGHTS=$PWD/.devcarry/inception_half.pt; OUT=$OUT DEADLINE_S=540 bash speed/gpu_checks.sh
# (check the commands first on CPU: SMOKE=1 OUT=/tmp/smoke bash speed/gpu_checks.sh).
# Afterwards: python -m speed.summarize_gpu_checks <files_at>/results.json --flops (BENCHMARKS.md rows,
# each ratio against the default case of the same run).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1 || bash ../shared/tools/gpu-wheels.sh
grep -qx '/.devcarry/' .git/info/exclude 2>/dev/null || echo '/.devcarry/' >> .git/info/exclude
mkdir -p .devcarry
$PY - <<'PYEOF'
import warnings
import torch
from metrics.features.inception import weights_path
src = weights_path()
with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    net = torch.jit.load(str(src), map_location="cpu").half()
torch.jit.save(net, ".devcarry/inception_half.pt")
print(f"{src} -> .devcarry/inception_half.pt")
PYEOF
du -sh .whl .devcarry
