"""``bench report`` on a real tiny run: files, links, leaderboard numbers, escaping, missing parts, thresholds."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from core.data.prepared import PreparedDataset
from core.errors import UserError
from core.paths import RunPaths, project_root
from reports.build import build_report
from reports.plots import read_stats, training_curves
from tests import report_fixture as fx

MODELS = ("dcgan", "dcgan_cond", "wgan_gp")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> fx.TinyRun:
    return fx.build_tiny_run(tmp_path_factory.getbasetemp() / "report-run")


@pytest.fixture
def no_preset_thresholds(tmp_path, monkeypatch):
    """A configs folder without thresholds/, so a real configs/thresholds/cpu.yaml cannot leak into tests."""
    cfg = tmp_path / "configs"
    shutil.copytree(project_root() / "configs", cfg, ignore=shutil.ignore_patterns("thresholds"))
    monkeypatch.setenv("COVERBENCH_CONFIGS", str(cfg))
    return cfg


@pytest.fixture(scope="module")
def report(tiny_run, tmp_path_factory) -> Path:
    """One report of the full tiny run, shared by the read-only tests of this file."""
    base = tmp_path_factory.mktemp("report")
    root = tiny_run.copy_run(base / "runs")
    ds = PreparedDataset.open(tiny_run.data_root / fx.DATASET)
    cfg = base / "configs"
    shutil.copytree(project_root() / "configs", cfg, ignore=shutil.ignore_patterns("thresholds"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COVERBENCH_CONFIGS", str(cfg))
        index = build_report(RunPaths(root), dataset=ds)
    assert index == root / "report" / "index.html"
    return index.parent


class Page(HTMLParser):
    """Tags with attributes, text per element id and table rows, enough to check a page without a browser."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.rows: dict[str, list[list[str]]] = {}
        self._table: list[str] = []
        self._in_body = False
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "table":
            self._table.append(a.get("id", ""))
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.setdefault(self._table[-1] if self._table else "", []).append(self._row)
            self._row = None
        elif tag == "tbody":
            self._in_body = False
        elif tag == "table" and self._table:
            self._table.pop()

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def attrs(self, tag: str, name: str) -> list[str]:
        return [a[name] for t, a in self.tags if t == tag and name in a]


def _page(report: Path, name: str) -> Page:
    return Page((report / name).read_text(encoding="utf-8"))


def _text(page: Page) -> str:
    """The page's text as a reader sees it, whitespace collapsed."""
    return " ".join("".join(page.text).split())


def _pages(report: Path) -> list[Path]:
    return sorted(report.glob("*.html"))


def test_every_page_exists_and_every_link_resolves(report):
    names = {p.name for p in _pages(report)}
    pages = {"index.html", "music.html", "encoders.html", "data.html", "environment.html"}
    expected = pages | {f"model-{m}.html" for m in MODELS}
    assert names == expected
    for path in _pages(report):
        page = Page(path.read_text(encoding="utf-8"))
        refs = page.attrs("a", "href") + page.attrs("img", "src") + page.attrs("link", "href")
        assert not page.attrs("script", "src"), "scripts must be inline"
        for ref in refs:
            if ref.startswith("#") or ref.startswith("data:"):
                continue
            u = urlparse(ref)
            assert not u.scheme and not u.netloc, f"{path.name}: external reference {ref}"
            target = (report / unquote(u.path)).resolve()
            assert target.is_file(), f"{path.name}: broken link {ref}"
            assert report.resolve() in target.parents, f"{path.name}: {ref} leaves the report folder"
        assert "<style>" in path.read_text(encoding="utf-8")
    # images were copied, not referenced in the run folder
    imgs = {p.relative_to(report).as_posix() for p in (report / "img").rglob("*.png")}
    assert "img/dcgan_cond/samples.png" in imgs and "img/dcgan_cond/training_curves.png" in imgs
    assert {"img/dcgan_cond/tsne_genre.png", "img/dcgan_cond/tsne_colour.png"} <= imgs
    assert {"img/encoders/genre.png", "img/encoders/attributes.png"} <= imgs


def test_leaderboard_rows_match_metrics(report, tiny_run):
    rows = _page(report, "index.html").rows["leaderboard"]
    assert [r[0] for r in rows] == list(MODELS)  # the config's order (train.models)
    for r in rows:
        doc = json.loads((tiny_run.run_dir / "eval" / r[0] / "metrics.json").read_text())
        m = doc["metrics"]
        acc = m["conditional_accuracy"]
        assert r[2] == f"{m['fid']['value']:.4g}"
        assert r[5] == f"{acc['value']:.3g}"
        assert r[6] == f"{acc['details']['ceiling']:.3g}"
        assert r[7] == f"{acc['null_mean']:.3g}"
        assert r[9] == doc["verdict"]["conditioning_works"]
    by = {r[0]: r for r in rows}
    assert by["dcgan"][10] == "20 min 34 s"  # crafted summary: 1234.5 s
    assert by["wgan_gp"][10] == "–" and by["wgan_gp"][11] == "–"  # metrics but no training folder
    assert by["dcgan_cond"][1] == "genre" and by["dcgan"][1] == "none"
    assert "How to read the verdict" in (report / "index.html").read_text()


def test_model_page_sections(report, tiny_run):
    text = (report / "model-dcgan_cond.html").read_text()
    page = Page(text)
    doc = json.loads((tiny_run.run_dir / "eval" / "dcgan_cond" / "metrics.json").read_text())
    metric_rows = {r[0]: r for r in page.rows["metrics"]}
    assert set(metric_rows) == {k for k, v in doc["metrics"].items() if "value" in v}
    assert metric_rows["fid"][1] == f"{doc['metrics']['fid']['value']:.4g}"
    assert metric_rows["fid"][3] == str(doc["metrics"]["fid"]["n"])
    tests = page.rows["tests"]
    assert [r[0].split()[0] for r in tests] == list(doc["verdict"]["tests"])
    for r in tests:
        t = doc["verdict"]["tests"][r[0].split()[0]]
        p = t["p_adjusted"]
        assert r[5] == (f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}")
    for reason in doc["verdict"]["reasons"]:
        assert " ".join(reason.split()) in _text(page)
    assert "fixed-z strip" in text and "row" in text
    assert len(page.rows["tsne-scores"]) >= 2
    assert "trustworthiness" in text


def test_hostile_strings_stay_text(report):
    hostile = [fx.HOSTILE_ARTIST, fx.HOSTILE_ALBUM, fx.HOSTILE_TRACK, fx.HOSTILE_GENRE, fx.HOSTILE_REJECTED_ITEM,
               fx.HOSTILE_REJECTED_SOURCE]  # fmt: skip
    for path in _pages(report):
        raw = path.read_text(encoding="utf-8")
        page = Page(raw)
        for s in hostile:
            assert s not in raw, f"{path.name} contains unescaped {s!r}"
        # no injected elements: the only scripts are ours (inline, on pages with sortable tables), no img src=x
        scripts = [a for t, a in page.tags if t == "script"]
        assert len(scripts) == (1 if path.name in ("index.html", "encoders.html", "music.html") else 0)
        assert "x" not in page.attrs("img", "src")
        assert not any(k.startswith("on") for _, a in page.tags for k in a), f"{path.name}: event handler attribute"
        assert "<i>" not in raw and "<b>" not in raw
    data = _page(report, "data.html")
    cells = {c for rows in data.rows.values() for r in rows for c in r}
    # ... and they are shown as the literal text they are
    for s in (fx.HOSTILE_ARTIST, fx.HOSTILE_ALBUM, fx.HOSTILE_TRACK, fx.HOSTILE_REJECTED_ITEM, fx.HOSTILE_GENRE):
        assert s in cells, s
    assert "49" not in {c for r in data.rows["tracks"] for c in r}  # "{{ 7*7 }}" was not rendered as a template
    rejected = data.rows["rejected"]
    assert len(rejected) == 200 and rejected[0][1] == fx.HOSTILE_REJECTED_SOURCE
    assert f"{fx.N_REJECTED} inputs were not taken" in _text(data)
    model_cells = _text(_page(report, "model-dcgan_cond.html"))
    assert fx.HOSTILE_GENRE in model_cells  # class names in the sample-grid caption


def test_encoders_data_environment_pages(report, tiny_run):
    enc = _page(report, "encoders.html").rows["encoders"]
    assert [r[0] for r in enc] == ["genre", "attributes"]
    ev = json.loads((tiny_run.run_dir / "encoders" / "attributes" / "eval.json").read_text())
    assert enc[1][2] == f"{ev['linear_probe']['accuracy']:.3g}"
    data = _page(report, "data.html")
    per_genre = {r[0]: r for r in data.rows["per-genre"]}
    assert set(per_genre) == set(fx.GENRES) | {"all"}
    assert per_genre["all"][-1] == "160"
    rel = data.rows["relationship"]
    assert rel[0][0].startswith("cover → genre accuracy") and "not run" in rel[1][1]
    env_text = (report / "environment.html").read_text()
    env = _page(report, "environment.html")
    versions = {r[0]: r[1] for r in env.rows["versions"]}
    import numpy
    import torch

    assert versions["torch"] == torch.__version__.split("+")[0] or versions["torch"] == torch.__version__
    assert versions["numpy"] == numpy.__version__ and "coverbench" in versions
    commit = env.rows["env"][0][1]
    assert commit == "unknown" or len(commit) == 40
    assert "preset: cpu" in env_text and f"run: {fx.RUN}" in env_text
    seeds = {r[0]: r[1] for r in env.rows["seeds"]}
    assert "seed" in seeds and "eval.seed" in seeds


def test_missing_parts_are_notes(tiny_run, tmp_path, no_preset_thresholds):
    root = tiny_run.copy_run(tmp_path / "runs")
    shutil.rmtree(root / "encoders")
    shutil.rmtree(root / "eval" / "dcgan_cond")
    (root / "eval" / "relationship.json").unlink()
    (root / "models" / "dcgan" / "stats.jsonl").unlink()
    report = build_report(RunPaths(root), dataset="no-such-dataset").parent
    text = {p.name: _text(Page(p.read_text())) for p in _pages(report)}
    assert "not available: this run has no encoder evaluations (run bench encode --encoder all --run tiny)" in text[
        "encoders.html"]  # fmt: skip
    assert "not available: dataset 'no-such-dataset' not found" in text["data.html"]
    assert "not available: no relationship probe yet (run bench evaluate --run tiny)" in text["data.html"]
    m = text["model-dcgan_cond.html"]
    assert "not available: this model has not been evaluated (run bench evaluate --model dcgan_cond --run tiny)" in m
    assert "not available: no stats.jsonl for this model" in text["model-dcgan.html"]
    row = {r[0]: r for r in _page(report, "index.html").rows["leaderboard"]}["dcgan_cond"]
    assert row[2] == "–" and row[9] == "not evaluated"


def test_empty_run_and_unknown_run(tmp_path, no_preset_thresholds):
    root = tmp_path / "runs" / "empty"
    root.mkdir(parents=True)
    report = build_report(RunPaths(root)).parent
    index = _text(_page(report, "index.html"))
    assert "not available: no trained or evaluated models in this run (run bench train all --run empty)" in index
    env = _text(_page(report, "environment.html"))
    assert "not available: the run has no config.yaml" in env
    with pytest.raises(UserError, match="not found"):
        build_report(RunPaths(tmp_path / "runs" / "nope"))


def test_thresholds_marked_pass_and_fail(tiny_run, tmp_path, no_preset_thresholds):
    root = tiny_run.copy_run(tmp_path / "runs")
    metrics_path = root / "eval" / "dcgan_cond" / "metrics.json"
    doc = json.loads(metrics_path.read_text())
    doc["refused"] = None  # the tiny run's 1-epoch covernet is refused; this test is about marking bounds
    metrics_path.write_text(json.dumps(doc))
    th = tmp_path / "th.yaml"
    th.write_text(
        "dcgan_cond:\n  fid: {max: 1.0e+30}\n  kid: {max: -1}\n  verdict.conditioning_works: {equals: 'never'}\n"
    )
    report = build_report(RunPaths(root), thresholds=th).parent
    rows = {r[0]: r for r in _page(report, "index.html").rows["leaderboard"]}
    assert rows["dcgan_cond"][-1] == "2 failed" and rows["dcgan"][-1] == "none set"
    page = _page(report, "model-dcgan_cond.html")
    metrics = {r[0]: r for r in page.rows["metrics"]}
    assert metrics["fid"][-1].startswith("pass") and metrics["kid"][-1].startswith("FAIL")
    checks = {r[0]: r[3] for r in page.rows["checks"]}
    assert checks["fid"] == "pass" and checks["kid"].startswith("FAIL")
    assert checks["verdict.conditioning_works"].startswith("FAIL")
    # an explicit malformed file is an error; the preset's malformed file is a note
    th.write_text("dcgan_cond:\n  fid: {min: 2, max: 1}\n")
    with pytest.raises(UserError, match="greater than max"):
        build_report(RunPaths(root), thresholds=th)
    (no_preset_thresholds / "thresholds").mkdir()
    shutil.copy(th, no_preset_thresholds / "thresholds" / "cpu.yaml")
    report = build_report(RunPaths(root)).parent
    assert "thresholds not applied" in (report / "index.html").read_text()
    (no_preset_thresholds / "thresholds" / "cpu.yaml").write_text("dcgan:\n  fid: {max: 1}\n")
    report = build_report(RunPaths(root)).parent
    rows = {r[0]: r for r in _page(report, "index.html").rows["leaderboard"]}
    assert rows["dcgan"][-1] == "1 failed" and rows["dcgan_cond"][-1] == "none set"


def test_report_cli(tiny_run, tmp_path, monkeypatch, capsys, no_preset_thresholds):
    from benchmark.cli.app import main

    root = tiny_run.copy_run(tmp_path / "runs2")
    monkeypatch.setenv("COVERBENCH_RUNS_ROOT", str(root.parent))
    monkeypatch.setenv("COVERBENCH_DATA_ROOT", str(tiny_run.data_root))
    with pytest.raises(SystemExit) as e:
        main(["--quiet", "report", "--run", fx.RUN])
    out = capsys.readouterr().out
    assert e.value.code in (0, None)
    assert str(root / "report" / "index.html") in out.replace("\n", "")
    # the dataset was found from train_config.json: the data page has the tracks table
    assert "tracks" in _page(root / "report", "data.html").rows
    with pytest.raises(SystemExit) as e:
        main(["report", "--run", "missing-run"])
    assert e.value.code == 2


def test_training_curves(tmp_path):
    stats = tmp_path / "stats.jsonl"
    rows = [{"kimg": i / 10, "loss/D": 1.0 / (i + 1), "loss/G": 0.5 + i / 10, "images_per_s": 100.0} for i in range(6)]
    stats.write_text("\n".join(json.dumps(r) for r in rows) + '\n{"kimg": 0.7, "loss/D"')  # torn last line
    assert read_stats(stats) == rows
    png = training_curves(stats, tmp_path / "out" / "curves.png", title="<m>")
    from PIL import Image

    with Image.open(png) as im:
        assert im.width > 400 and im.height > 200
        assert len(im.convert("RGB").getcolors(maxcolors=1 << 20)) > 20  # not a blank canvas
    stats.write_text('{"kimg": 0.1}\n')
    assert training_curves(stats, tmp_path / "none.png") is None
    assert training_curves(tmp_path / "absent.jsonl", tmp_path / "none.png") is None
