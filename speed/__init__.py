"""Speed benchmarks, beside the application: each script runs as a module from the repository root
(``python -m speed.bench_fid``), the training perf harness is ``speed.harness`` (also behind ``bench perf train``),
and results go to BENCHMARKS.md."""
