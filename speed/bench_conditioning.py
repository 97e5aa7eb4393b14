"""Cost of every evaluation metric after feature extraction, today's code against the code it replaced, same run.

A synthetic world with a continuous 32-d condition (k-means clusters of it as classes, as ``bench evaluate``
builds them): real training and test pairs (3,200 / 800 by default, the issue's setup) and n generated pairs
whose images follow their condition half of the time, with d-dim features of a power-law spectrum (Inception-like
at d = 2048). Each cell (metric, d, n, version) runs in its own process, so its peak RSS is its own; "before" runs
the same cell on the ``core`` and ``metrics`` packages of ``--baseline`` (a git ref, exported with ``git archive``),
"after" on this tree. Cells alternate before/after so both see the same load. Metrics (the pipeline's calls and
settings, from the preset's ``eval`` section):

  class        conditional accuracy (classifier fit included) + CAS + cluster purity, their nulls and bootstraps
  retrieval    condition retrieval on generated covers and its real-cover ceiling
  sensitivity  condition sensitivity on a sensitivity_z x 8 grid
  joint        FJD + CFID permutation tests with bootstrap intervals, as the suite runs them
  fid          FID with its bootstrap interval (the real statistics and square root cached, as the feature cache)
  kid, prdc    KID (preset subsets), precision/recall/density/coverage
  intra_fid    per-class FID against all real covers of the class
  tsne         t-SNE map of real covers (optimised) and placement of generated ones
  tsne_place   the same with the real map already stored, as every evaluation after a dataset's first finds it
  evaluation   all of the above in sequence (t-SNE as tsne_place where the code stores maps): what
               ``bench evaluate`` spends after the real side (features, statistics, map) is prepared
  first_evaluation  the same as a dataset's first evaluation runs it: the real t-SNE map fitted, then stored

    python -m speed.bench_conditioning --quick                      # d = 256, n = 1000 and 2000, minutes
    python -m speed.bench_conditioning --dims 256,2048 --ns 2000,10000,50000 --json out.json
    python -m speed.bench_conditioning --metrics evaluation,first_evaluation --dims 2048 --ns 10000 --versions after
    python -m speed.bench_conditioning --boot-check 2048,5000,2000,40   # FID bootstrap: full vs reduced spread

Growth exponents are least-squares slopes of log time on log n over the n measured, per metric, d and version.
A cell that runs past ``--timeout`` is reported as "> timeout" (a lower bound; no exponent from it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("class", "retrieval", "sensitivity", "joint", "fid", "kid", "prdc", "intra_fid", "tsne", "tsne_place")
EVALUATION = ("class", "retrieval", "sensitivity", "joint", "fid", "kid", "prdc", "intra_fid", "tsne_place")
FIRST_EVALUATION = (*EVALUATION[:-1], "tsne")  # a dataset's first: the real map is fitted (and stored) in it
DEFAULT_BASELINE = "5a6c353"  # the branch point of issue 24: the code before the changes measured here


@dataclass
class Settings:
    """The preset's eval numbers the pipeline passes to each metric (plain values: the baseline has no configs)."""

    n_permutations: int
    n_bootstrap: int
    kid_subsets: int
    kid_subset_size: int
    sensitivity_z: int
    tsne_real: int
    tsne_gen: int


def preset_settings(preset: str) -> Settings:
    from core.config.load import load_config

    e = load_config(preset).eval
    return Settings(e.n_permutations, e.n_bootstrap, e.kid_subsets, e.kid_subset_size, e.sensitivity_z,
                    e.tsne_real, e.tsne_gen)


# ---------------------------------------------------------------- the world (worker side)


@dataclass
class World:
    train_x: np.ndarray
    train_c: np.ndarray
    test_x: np.ndarray
    test_c: np.ndarray
    gen_x: np.ndarray
    gen_c: np.ndarray
    null_x: np.ndarray
    grid: np.ndarray
    train_images: np.ndarray
    gen_images: np.ndarray


def make_world(d: int, n: int, n_train: int, n_test: int, sensitivity_z: int, seed: int = 0, dc: int = 32) -> World:
    """Features y = B c + noise with a power-law spectrum, float32 like extracted features; generated covers
    follow their own condition with probability 1/2, else a random other track's."""
    rng = np.random.default_rng(seed)
    spectrum = np.arange(1, d + 1) ** -0.8
    basis = np.linalg.qr(rng.standard_normal((d, min(d, 256))))[0]
    b = basis @ (rng.standard_normal((basis.shape[1], dc)) * 0.15)

    def feats(c: np.ndarray) -> np.ndarray:
        return (c @ b.T + rng.standard_normal((c.shape[0], d)) * spectrum + 0.05).astype(np.float32)

    def conds(m: int) -> np.ndarray:
        return rng.standard_normal((m, dc))

    train_c, test_c, gen_c = conds(n_train), conds(n_test), conds(n)
    follow = rng.random((n, 1)) < 0.5
    gen_x = feats(np.where(follow, gen_c, gen_c[rng.permutation(n)]))
    reps = conds(8)
    grid = np.stack([feats(np.where(rng.random() < 0.5, reps, reps[rng.permutation(8)]))
                     for _ in range(sensitivity_z)])
    return World(
        train_x=feats(train_c), train_c=train_c, test_x=feats(test_c), test_c=test_c, gen_x=gen_x, gen_c=gen_c,
        null_x=feats(gen_c[rng.permutation(n)]), grid=grid,
        train_images=rng.integers(0, 256, (n_train, 8, 8, 3), dtype=np.uint8),
        gen_images=rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8),
    )


def conditioning_data(w: World):
    from metrics.conditioning import ConditionClusters
    from metrics.conditioning.suite import ConditioningData

    clusters = ConditionClusters(k=8, seed=0).fit(w.train_c)
    return ConditioningData(
        train_x=w.train_x, train_y=clusters.labels(w.train_c), test_x=w.test_x, test_y=clusters.labels(w.test_c),
        gen_x=w.gen_x, asked_y=clusters.labels(w.gen_c), n_classes=8, train_c=w.train_c, test_c=w.test_c,
        gen_c=w.gen_c,
    )


# ---------------------------------------------------------------- one metric as the pipeline calls it


def run_class(w: World, data, st: Settings) -> None:
    from metrics.conditioning.suite import SuiteSettings, class_tests

    class_tests(data, SuiteSettings(n_permutations=st.n_permutations, seed=0), w.null_x)


def run_retrieval(w: World, data, st: Settings) -> None:
    from metrics.conditioning.suite import SuiteSettings, retrieval_test

    retrieval_test(data, SuiteSettings(n_permutations=st.n_permutations, seed=0))


def run_sensitivity(w: World, data, st: Settings) -> None:
    from metrics.conditioning.sensitivity import condition_sensitivity

    condition_sensitivity(w.grid, n_permutations=st.n_permutations, seed=0)


def run_joint(w: World, data, st: Settings) -> dict:
    from metrics.conditioning.suite import SuiteSettings, joint_tests

    s = SuiteSettings(n_permutations=st.n_permutations, seed=0, joint_permutations=min(200, st.n_permutations),
                      joint_bootstrap=min(50, st.n_bootstrap))
    res = joint_tests(data, s)
    return {k: {"p": r.p_value, "draws": r.n_permutations} for k, r in res.items()}


def run_fid(w: World, data, st: Settings, ref=None) -> None:
    from metrics.distribution.fid import fid

    fid(ref, w.gen_x, n_boot=st.n_bootstrap, seed=0, allow_singular=True)


def fid_reference(w: World):
    """The real test statistics with their square root, as the feature cache stores them (not timed)."""
    from metrics.distribution.fid import feature_stats

    ref = feature_stats(w.test_x, allow_singular=True)
    ref.sqrt()
    return ref


def run_kid(w: World, data, st: Settings) -> None:
    from metrics.distribution.kid import kid

    kid(w.test_x, w.gen_x, num_subsets=st.kid_subsets, max_subset_size=st.kid_subset_size, seed=0)


def run_prdc(w: World, data, st: Settings) -> None:
    from metrics.distribution.prdc import prdc

    prdc(w.test_x, w.gen_x)


def run_intra_fid(w: World, data, st: Settings) -> None:
    from metrics.distribution.intra_fid import intra_fid

    real = np.concatenate([w.train_x, w.test_x])
    labels = np.concatenate([data.train_y, data.test_y])
    intra_fid(real, labels, w.gen_x, data.asked_y, classes=list(range(8)))


def run_tsne(w: World, data, st: Settings, store: Path | None = None) -> None:
    from metrics.tsne import tsne_analysis

    rng = np.random.default_rng(2)
    pick = np.sort(rng.choice(len(w.train_x), min(st.tsne_real, len(w.train_x)), replace=False))
    g = rng.choice(len(w.gen_x), min(st.tsne_gen, len(w.gen_x)), replace=False)
    where = {} if store is None else {"map_store": store}
    tsne_analysis(w.train_x[pick], data.train_y[pick], w.train_images[pick], gen_features=w.gen_x[g],
                  gen_conditions=data.asked_y[g], gen_images=w.gen_images[g], seed=0, **where)


def stores_maps() -> bool:
    import inspect

    from metrics.tsne import tsne_analysis

    return "map_store" in inspect.signature(tsne_analysis).parameters


def prepare_map(w: World, data, st: Settings, store: Path) -> None:
    """The real map optimised and stored as a dataset's first evaluation leaves it (not timed), then forgotten
    in memory, so the timed call rebuilds it from the store as a later process would."""
    import metrics.tsne as tsne

    run_tsne(w, data, st, store)
    tsne._maps.clear()


RUNNERS = {"class": run_class, "retrieval": run_retrieval, "sensitivity": run_sensitivity, "joint": run_joint,
           "fid": run_fid, "kid": run_kid, "prdc": run_prdc, "intra_fid": run_intra_fid, "tsne": run_tsne,
           "tsne_place": run_tsne}


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def cpu_seconds() -> float:
    """CPU time of this process, every thread: on a busy shared machine the better guess of an idle run's wall."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def worker(metric: str, d: int, n: int, n_train: int, n_test: int, st: Settings) -> dict:
    """Build the world, then time ``metric`` (``evaluation``, ``first_evaluation``: every metric in turn); seconds
    and peak RSS."""
    warnings.simplefilter("ignore")
    w = make_world(d, n, n_train, n_test, st.sensitivity_z)
    data = conditioning_data(w)
    ref = fid_reference(w) if metric in ("fid", "evaluation", "first_evaluation") else None
    names = {"evaluation": EVALUATION, "first_evaluation": FIRST_EVALUATION}.get(metric, (metric,))
    store = None
    if "tsne_place" in names and stores_maps():  # the baseline has no stored maps: it fits, as "tsne"
        store = Path(tempfile.mkdtemp(prefix="tsne-maps-"))
        prepare_map(w, data, st, store)
    before = rss_mb()
    out: dict = {"parts": {}, "cpu_parts": {}}
    t_all, c_all = time.perf_counter(), cpu_seconds()
    for name in names:
        t, c = time.perf_counter(), cpu_seconds()
        if name == "fid":
            info = RUNNERS[name](w, data, st, ref)
        elif name == "tsne_place" or (name == "tsne" and metric == "first_evaluation" and stores_maps()):
            info = run_tsne(w, data, st, store or Path(tempfile.mkdtemp(prefix="tsne-maps-")))
        else:
            info = RUNNERS[name](w, data, st)
        out["parts"][name] = round(time.perf_counter() - t, 3)
        out["cpu_parts"][name] = round(cpu_seconds() - c, 3)
        if info:
            out[name] = info
    out["seconds"] = round(time.perf_counter() - t_all, 3)
    out["cpu_seconds"] = round(cpu_seconds() - c_all, 3)
    import metrics

    out["metrics_from"] = str(Path(metrics.__file__).resolve().parents[1])  # which tree's code ran
    out["rss_before_mb"] = round(before, 1)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def bootstrap_basis_check(d: int, n: int, n_real: int, reps: int, ks: tuple[int, ...] = (64, 128, 256)) -> dict:
    """FID bootstrap spread in the full space against the reduced bases (same resamples): does k components keep
    the interval's width? Features with the world's power-law spectrum, a slightly wider generated set."""
    from metrics.distribution.fid import bootstrap_replicates, feature_stats, reduced_for_bootstrap

    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    spectrum = np.arange(1, d + 1) ** -0.8
    basis = np.linalg.qr(rng.standard_normal((d, d)))[0]
    real = (rng.standard_normal((n_real, d)) * spectrum) @ basis.T + 0.05
    gen = (rng.standard_normal((n, d)) * spectrum * 1.1) @ basis.T + 0.06
    ref = feature_stats(real, allow_singular=True)
    ref.sqrt()
    t = time.perf_counter()
    full = bootstrap_replicates(ref, gen, reps, 0)
    out: dict = {"full": {"se": float(full.std(ddof=1)), "seconds": time.perf_counter() - t}}
    for k in ks:
        t = time.perf_counter()
        ref_k, gen_k, b = reduced_for_bootstrap(ref, gen, k)
        red = bootstrap_replicates(ref_k, gen_k, reps, 0)
        out[k] = {"se": float(red.std(ddof=1)), "se_ratio": float(red.std(ddof=1) / full.std(ddof=1)),
                  "corr": float(np.corrcoef(red, full)[0, 1]), "variance_share": b.variance_share,
                  "seconds": time.perf_counter() - t}
    return out


# ---------------------------------------------------------------- the parent: cells, table, exponents


def export_baseline(ref: str, dest: Path) -> Path:
    """``core`` and ``metrics`` of git ref ``ref`` under ``dest`` (a plain export: no worktree, no checkout)."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "core", "metrics"], capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def run_cell(metric: str, d: int, n: int, version: str, args, st: Settings, trees: dict[str, Path]) -> dict:
    tree = trees.get(version, ROOT)  # also the working directory: `python -m` puts it first on sys.path
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys([str(tree), str(ROOT)]))}
    cmd = [sys.executable, "-m", "speed.bench_conditioning", "--worker", metric, "--dims", str(d), "--ns", str(n),
           "--real-train", str(args.real_train), "--real-test", str(args.real_test), "--settings",
           json.dumps(asdict(st))]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"timed_out": True, "seconds": args.timeout, "load": load}
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed", "load": load}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    if not Path(res["metrics_from"]).is_relative_to(tree):
        raise RuntimeError(f"{version} cell imported metrics from {res['metrics_from']}, not {tree}")
    res.update(load=round(load, 1), wall=round(time.perf_counter() - t0, 1))
    return res


def exponent(ns: list[int], secs: list[float]) -> float | None:
    if len(ns) < 2 or min(secs) <= 0:
        return None
    return float(np.polyfit(np.log(ns), np.log(secs), 1)[0])


def _fmt_time(r: dict | None) -> str:
    if r is None:
        return "-"
    if r.get("timed_out"):
        return f"> {r['seconds']:.0f}"
    if "error" in r:
        return "error"
    return f"{r['seconds']:.2f} ({r['cpu_seconds']:.1f})" if "cpu_seconds" in r else f"{r['seconds']:.2f}"


def _ratio(b: dict | None, a: dict | None) -> str:
    if not a or "seconds" not in a or a.get("timed_out") or "error" in a or not b or "error" in b:
        return "-"
    if "seconds" not in b:
        return "-"
    return f"{'>' if b.get('timed_out') else ''}{b['seconds'] / a['seconds']:.1f}x"


def table(results: dict, metrics: list[str], dims: list[int], ns: list[int]) -> str:
    """Markdown: one row per metric, d and n, before and after side by side."""
    lines = ["| metric | d | n | before s (CPU s) | after s (CPU s) | speed-up | before peak RSS MB | "
             "after peak RSS MB | load |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for m in metrics:
        for d in dims:
            for n in ns:
                b, a = results.get(f"{m}/{d}/{n}/before"), results.get(f"{m}/{d}/{n}/after")
                if b is None and a is None:
                    continue
                load = "/".join(f"{r['load']:.1f}" for r in (b, a) if r and "load" in r)
                lines.append(f"| {m} | {d} | {n} | {_fmt_time(b)} | {_fmt_time(a)} | {_ratio(b, a)} | "
                             f"{(b or {}).get('peak_rss_mb', '-')} | {(a or {}).get('peak_rss_mb', '-')} | {load} |")
    return "\n".join(lines)


def exponents(results: dict, metrics: list[str], dims: list[int], ns: list[int]) -> str:
    lines = ["| metric | d | growth exponent before | after |", "| --- | --- | --- | --- |"]
    for m in metrics:
        for d in dims:
            cells = []
            for v in ("before", "after"):
                rs = [(n, results.get(f"{m}/{d}/{n}/{v}")) for n in ns]
                ok = [(n, r["seconds"]) for n, r in rs if r and "seconds" in r and not r.get("timed_out")
                      and "error" not in r]
                e = exponent([n for n, _ in ok], [s for _, s in ok])
                cells.append("-" if e is None else f"{e:.2f} (n {ok[0][0]}-{ok[-1][0]})")
            lines.append(f"| {m} | {d} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="d = 256, n = 1000 and 2000, the cpu preset's settings")
    ap.add_argument("--dims", default="256,2048")
    ap.add_argument("--ns", default="2000,10000,50000")
    ap.add_argument("--metrics", default=",".join(METRICS),
                    help=f"comma list of {', '.join(METRICS)}, evaluation, first_evaluation")
    ap.add_argument("--versions", default="before,after")
    ap.add_argument("--baseline", default=DEFAULT_BASELINE, help="git ref of the 'before' code")
    ap.add_argument("--after-ref", default=None, help="git ref of the 'after' code (default: this working tree)")
    ap.add_argument("--before-max-n", type=int, default=10000, help="largest n the 'before' code is run at")
    ap.add_argument("--preset", default="gpu", help="whose eval settings (gpu: the 10,000-sample preset)")
    ap.add_argument("--real-train", type=int, default=3200)
    ap.add_argument("--real-test", type=int, default=800)
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per cell")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--boot-check", default=None, metavar="D,N,N_REAL,REPS",
                    help="only compare the FID bootstrap spread, full space against reduced bases")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--settings", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.quick:
        a.dims, a.ns, a.preset = "256", "1000,2000", "cpu"
    return a


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    dims, ns = [int(v) for v in a.dims.split(",")], [int(v) for v in a.ns.split(",")]
    if a.boot_check:
        d, n, n_real, reps = (int(v) for v in a.boot_check.split(","))
        print(json.dumps(bootstrap_basis_check(d, n, n_real, reps), indent=1))
        return
    if a.worker:
        st = Settings(**json.loads(a.settings))
        print(json.dumps(worker(a.worker, dims[0], ns[0], a.real_train, a.real_test, st)))
        return
    st, metrics, versions = preset_settings(a.preset), a.metrics.split(","), a.versions.split(",")
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        trees = {}  # version -> exported core + metrics; "after" without --after-ref is this working tree
        for version, ref in (("before", a.baseline), ("after", a.after_ref)):
            if version in versions and ref:
                trees[version] = export_baseline(ref, Path(tmp) / version)
        for m in metrics:
            for d in dims:
                for n in ns:
                    for v in versions:
                        if v == "before" and n > a.before_max_n:
                            continue
                        r = run_cell(m, d, n, v, a, st, trees)
                        results[f"{m}/{d}/{n}/{v}"] = r
                        print(f"{m:12s} d={d:5d} n={n:6d} {v:6s} {_fmt_time(r):>16s} s  peak "
                              f"{r.get('peak_rss_mb', '-')} MB  load {r.get('load', 0):.1f}  wall "
                              f"{r.get('parts', '')}  CPU {r.get('cpu_parts', '')}", flush=True)
    print()
    print(table(results, metrics, dims, ns))
    print()
    print(exponents(results, metrics, dims, ns))
    if a.json:
        meta = {"settings": asdict(st), "preset": a.preset, "baseline": a.baseline, "after": a.after_ref or "tree",
                "real_train": a.real_train,
                "real_test": a.real_test, "machine": os.uname().nodename, "cpus": os.cpu_count(),
                "date": time.strftime("%Y-%m-%d %H:%M")}
        a.json.write_text(json.dumps({"meta": meta, "results": results}, indent=1))


if __name__ == "__main__":
    main()
