"""Speed benchmarks (run as scripts: `python -m benchmark.speed.bench_fid`); results go to BENCHMARKS.md."""
