"""Bring your own condition vectors: `bench encode --from-file F --name NAME` registers an outside embedding.

Checked: every accepted layout reads the same vectors into dataset row order; the stored meta names the file by
its SHA-256 and the dataset by its fingerprint; the genre probe sees a planted genre signal and not its absence;
every kind of bad input is one line naming the first bad row (exit 2 from the CLI); a model id takes any valid
name and resolves it at use; `train all` never fits an outside condition and names the register command when it
is missing; and a planted oracle conditioned on a registered embedding is judged "yes", like on pca.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from core import paths
from core.config import load_config
from core.config.names import parse_model_id
from core.data.prepared import PreparedDataset
from core.errors import UserError
from metrics.features.cache import manifest_hash
from models.conditions import load_conditions
from models.encoders.external import read_vectors, register_embedding
from tests.conftest import make_tiny_dataset, planted_loader, run_bench

ENC_SET = ["encoders.tsne_points=100", "encoders.eval_max_points=200"]


def _vectors(ds: PreparedDataset, signal: float, d: int = 6, seed: int = 0) -> np.ndarray:
    """Per-track vectors: ``signal`` x the genre one-hot (padded to d) plus unit noise."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((len(ds), d))
    x[np.arange(len(ds)), ds.genre_idx % d] += signal
    return x


def _parquet(path, ids, x, *, list_column: bool = True):
    if list_column:
        df = pd.DataFrame({"track_id": ids, "vector": list(x)})
    else:
        df = pd.DataFrame({"track_id": ids, **{f"f{j}": x[:, j] for j in range(x.shape[1])}})
    df.to_parquet(path)
    return path


@pytest.fixture
def tiny():
    make_tiny_dataset()
    return PreparedDataset.open("tiny")


def test_model_ids_take_any_valid_condition_name_and_config_too():
    assert parse_model_id("dcgan_cond+my-emb_2").condition == "my-emb_2"
    assert parse_model_id("stylegan_cond+pca").condition == "pca"
    for bad, why in [("dcgan_cond+my emb", "invalid condition name"), ("dcgan_cond+2emb", "invalid condition name"),
                     ("dcgan_cond+dcgan", "model name"), ("dcgan_cond+all", "reserved"),
                     ("dcgan+myemb", "unconditional"), ("dcgan_cond+a:b", "invalid condition name")]:  # fmt: skip
        with pytest.raises(UserError, match=why):
            parse_model_id(bad)
    cfg = load_config("cpu", ["train.condition=myemb", "train.models=[dcgan_cond, wgan_gp_cond+clap]"])
    assert cfg.train.condition_of("dcgan_cond") == "myemb" and cfg.train.condition_of("wgan_gp_cond+clap") == "clap"
    with pytest.raises(UserError, match="invalid condition name"):
        load_config("cpu", ["train.condition=not a name"])


def test_register_reads_by_track_id_and_records_where_it_came_from(tiny, tmp_path):
    x = _vectors(tiny, signal=4.0)
    order = np.random.default_rng(1).permutation(len(tiny))  # the file's row order is not the dataset's
    ids = tiny.tracks["track_id"].astype(str).to_numpy()
    src = _parquet(tmp_path / "clap.parquet", ids[order], x[order])
    run = paths.run("r")
    ev = register_embedding(tiny, run, src, "clap", cfg=load_config("cpu", ENC_SET).encoders)
    got = load_conditions(tiny, "clap", run)
    assert got.dtype == np.float32 and np.array_equal(got, x.astype(np.float32))
    meta = json.loads((run.encoder("clap") / "meta.json").read_text())
    assert meta["kind"] == "external" and meta["source"] == str(src) and meta["dim"] == 6 and meta["n"] == 40
    assert meta["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert meta["dataset"] == "tiny" and meta["dataset_fingerprint"] == manifest_hash(tiny.manifest)
    on_disk = json.loads((run.encoder("clap") / "eval.json").read_text())
    assert on_disk["kind"] == "external" and on_disk["dim"] == 6 and (run.encoder("clap") / "tsne.png").is_file()
    # scored like a built-in encoder: a planted genre signal is read back, its absence is not
    assert ev["linear_probe"]["accuracy"] >= 0.9 and ev["knn"]["accuracy"] >= 0.75  # k=10 over ~5 per genre
    noise = register_embedding(tiny, run, _parquet(tmp_path / "noise.parquet", ids, _vectors(tiny, 0.0)), "noise",
                               cfg=load_config("cpu", ENC_SET).encoders)
    assert noise["linear_probe"]["accuracy"] <= 0.6 and noise["knn"]["accuracy"] < ev["knn"]["accuracy"]
    assert noise["kmeans"]["nmi"] < ev["kmeans"]["nmi"]


def test_every_layout_reads_the_same_vectors(tiny, tmp_path):
    x = _vectors(tiny, signal=1.0, d=3)
    ids = tiny.tracks["track_id"].astype(str).to_numpy()
    rev = np.arange(len(ids))[::-1]
    pd.DataFrame({"track_id": ids[rev]}).to_csv(tmp_path / "ids.csv", index=False)
    np.save(tmp_path / "v.npy", x[rev])
    np.savez(tmp_path / "one.npz", emb=x[rev])
    np.savez(tmp_path / "keyed.npz", track_id=ids.astype(str), vector=x)
    np.savez(tmp_path / "pickled.npz", track_id=ids.astype(object), vector=x)
    with pytest.raises(UserError, match="save track ids as a string array"):
        read_vectors(tmp_path / "pickled.npz")
    pd.DataFrame({"track_id": ids, "a": x[:, 0], "split": "x", "b": x[:, 1], "genre_idx": 7, "c": x[:, 2]}).to_csv(
        tmp_path / "cols.csv", index=False)
    layouts = {
        "list parquet": (_parquet(tmp_path / "l.parquet", ids, x), None),
        "column parquet": (_parquet(tmp_path / "c.parquet", ids[rev], x[rev], list_column=False), None),
        "csv (metadata columns skipped)": (tmp_path / "cols.csv", None),
        "npz keyed": (tmp_path / "keyed.npz", None),
        "npy + ids": (tmp_path / "v.npy", tmp_path / "ids.csv"),
        "npz + ids": (tmp_path / "one.npz", tmp_path / "ids.csv"),
    }
    run = paths.run("r")
    for i, (what, (src, id_file)) in enumerate(layouts.items()):
        register_embedding(tiny, run, src, f"e{i}", ids=id_file, cfg=load_config("cpu", ENC_SET).encoders)
        np.testing.assert_allclose(load_conditions(tiny, f"e{i}", run), x.astype(np.float32), rtol=1e-6, err_msg=what)


def _bad_inputs(ds: PreparedDataset, tmp_path) -> list[tuple[str, object, str]]:
    """(name, file, expected message) for each kind of bad input; every file is otherwise valid."""
    ids = ds.tracks["track_id"].astype(str).to_numpy()
    x = _vectors(ds, 2.0)
    cases = []

    def case(label: str, ids_, x_, match: str, **kw):
        cases.append((label, _parquet(tmp_path / f"{label}.parquet", ids_, x_, **kw), match))

    case("unknown", np.r_[ids[:5], ["nope"], ids[6:]], x, r"row 6: track id 'nope' is not in dataset 'tiny'")
    case("missing", ids[:-3], x[:-3],
         r"3 tracks of dataset 'tiny' have no vector, the first 't0037' \(dataset row 38\)")
    case("duplicate", np.r_[ids, ids[2:3]], np.r_[x, x[2:3]],
         r"row 41: track id 't0002' appears twice \(first at row 3\)")
    nan = x.copy()
    nan[7, 1] = np.nan
    case("nan", ids, nan, r"row 8 \(track 't0007'\): NaN or inf")
    inf = x.copy()
    inf[9, 0] = np.inf
    case("inf", ids, inf, r"row 10 \(track 't0009'\): NaN or inf", list_column=False)
    flat = x.copy()
    flat[4] = 0.0
    case("constant-row", ids, flat, r"row 5 \(track 't0004'\): the vector is constant")
    case("all-equal", ids, np.tile([[1.0, 2.0, 3.0]], (len(ids), 1)), "every vector is the same: zero variance")
    case("d0", ids, np.zeros((len(ids), 0)), "d = 0", list_column=False)
    pd.DataFrame({"track_id": ids, "a": x[:, 0], "b": ["1.0"] * 11 + ["oops"] + ["2"] * 28}).to_csv(
        tmp_path / "text.csv", index=False)
    cases.append(("text", tmp_path / "text.csv", r"row 12: column 'b' is not numeric \('oops'\)"))
    pd.DataFrame({"track_id": ids, "vector": [[1.0, 2.0]] * 3 + [[1.0]] + [[3.0, 4.0]] * 36}).to_parquet(
        tmp_path / "ragged.parquet")
    cases.append(("ragged", tmp_path / "ragged.parquet", "row 4: 'vector' has 1 values, row 1 has 2"))
    np.save(tmp_path / "bare.npy", x)
    cases.append(("bare", tmp_path / "bare.npy", "an array alone does not say which track each row is"))
    return cases


def test_bad_inputs_are_one_line_naming_the_first_bad_row(tiny, tmp_path):
    run = paths.run("r")
    for label, src, match in _bad_inputs(tiny, tmp_path):
        with pytest.raises(UserError, match=match) as e:
            register_embedding(tiny, run, src, "mine")
        assert "\n" not in str(e.value), label
    assert not run.encoder("mine").exists()  # nothing written for a refused file
    good = _parquet(tmp_path / "good.parquet", tiny.tracks["track_id"].astype(str).to_numpy(), _vectors(tiny, 1.0))
    for name, match in [("pca", "built-in encoder"), ("musicnn", "built-in encoder"), ("dcgan_cond", "model name"),
                        ("bad/name", "invalid condition name"), ("needed", "reserved")]:  # fmt: skip
        with pytest.raises(UserError, match=match):
            register_embedding(tiny, run, good, name)


def test_cli_registers_and_refuses_with_exit_2(tiny, tmp_path, capsys):
    ids = tiny.tracks["track_id"].astype(str).to_numpy()
    good = _parquet(tmp_path / "good.parquet", ids, _vectors(tiny, 3.0))
    sets = [a for s in ENC_SET for a in ("--set", s)]
    args = ["encode", "--from-file", str(good), "--name", "clap", "--run", "r", "--dataset", "tiny"]
    assert run_bench(*args, *sets) == 0
    assert "dcgan_cond+clap" in capsys.readouterr().out
    assert json.loads((paths.run("r").encoder("clap") / "meta.json").read_text())["kind"] == "external"
    nan = _vectors(tiny, 3.0)
    nan[3, 0] = np.nan
    bad = _parquet(tmp_path / "bad.parquet", ids, nan)
    assert run_bench("encode", "--from-file", str(bad), "--name", "other", "--run", "r", "--dataset", "tiny") == 2
    err = capsys.readouterr().err
    assert "row 4 (track 't0003'): NaN or inf" in err and len(err.strip().splitlines()) == 1
    assert run_bench("encode", "--from-file", str(good), "--run", "r", "--dataset", "tiny") == 2  # no --name
    assert run_bench("encode", "--from-file", str(good), "--name", "x", "--encoder", "pca", "--run", "r",
                     "--dataset", "tiny") == 2  # fmt: skip


def test_another_file_under_a_registered_name_needs_replace(tiny, tmp_path):
    ids = tiny.tracks["track_id"].astype(str).to_numpy()
    a = _parquet(tmp_path / "a.parquet", ids, _vectors(tiny, 1.0, seed=1))
    b = _parquet(tmp_path / "b.parquet", ids, _vectors(tiny, 1.0, seed=2))
    run = paths.run("r")
    register_embedding(tiny, run, a, "clap")
    register_embedding(tiny, run, a, "clap")  # the same file again: fine
    with pytest.raises(UserError, match=r"registered from .*a\.parquet.*pass --replace"):
        register_embedding(tiny, run, b, "clap")
    assert np.allclose(load_conditions(tiny, "clap", run), _vectors(tiny, 1.0, seed=1))  # nothing valid lost
    register_embedding(tiny, run, b, "clap", replace=True)
    assert np.allclose(load_conditions(tiny, "clap", run), _vectors(tiny, 1.0, seed=2))
    run.encoder("handmade").mkdir(parents=True)
    (run.encoder("handmade") / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="exists and is not a registered embedding"):
        register_embedding(tiny, run, a, "handmade")


def test_unregistered_condition_is_one_line_and_train_all_never_fits_it(tiny, tmp_path):
    from benchmark.pipeline.train import encoders_for, train_all

    run = paths.run("r")
    with pytest.raises(UserError, match=r"no condition 'myemb' in run 'r': register it with "
                                        r"`bench encode --from-file F --name myemb --run r`"):
        load_conditions(tiny, "myemb", run)
    with pytest.raises(UserError, match="no condition 'myemb' .no run given."):
        load_conditions(tiny, "myemb", None)
    cfg = load_config("cpu", ["train.models=[dcgan_cond+myemb, dcgan_cond+pca]", "run=r", "data.name=tiny"])
    assert encoders_for(cfg) == ["genre", "attributes", "pca"]  # myemb is never fitted
    with pytest.raises(UserError, match=r"no condition 'myemb' in run 'r': register it"):
        train_all(tiny, run, cfg)
    assert not (run.root / "encoders").exists()  # refused before fitting anything
    # registered for another dataset: refused, with the command for this one
    make_tiny_dataset("other", seed=1)  # the same track ids, another dataset
    other = PreparedDataset.open("other")
    ids = other.tracks["track_id"].astype(str).to_numpy()
    register_embedding(other, run, _parquet(tmp_path / "o.parquet", ids, _vectors(other, 1.0)), "myemb")
    with pytest.raises(UserError, match="registered for dataset 'other', not 'tiny'"):
        load_conditions(tiny, "myemb", run)


def test_a_gan_trains_on_a_registered_embedding(tiny, tmp_path):
    from benchmark.pipeline.train import train_all

    ids = tiny.tracks["track_id"].astype(str).to_numpy()
    run = paths.run("r")
    register_embedding(tiny, run, _parquet(tmp_path / "v.parquet", ids, _vectors(tiny, 2.0, d=5)), "myemb")
    cfg = load_config("cpu", ["train.models=[dcgan_cond+myemb]", "run=r", "data.name=tiny",
                              "train.per_model.dcgan_cond.kimg=0.016", "train.batch=8", "train.snapshot_kimg=0.016",
                              "train.checkpoint_kimg=0.016"])  # fmt: skip
    stages = train_all(tiny, run, cfg, encoders="none")
    assert [(s.kind, s.name, s.status) for s in stages] == [
        ("encoder", "myemb", "registered"), ("gan", "dcgan_cond+myemb", "trained")]
    tc = json.loads((run.model("dcgan_cond+myemb") / "train_config.json").read_text())
    assert tc["condition"] == "myemb" and tc["cond_dim"] == 5


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A 480-track synthetic world whose covers carry their genre (coupling 1)."""
    from core.config.schema import SplitConfig, SynthConfig
    from core.data.synth.world import synthesize_world

    root = tmp_path_factory.mktemp("byo_world")
    paths.set_roots(root, root / "runs")
    cfg = SynthConfig(tracks=480, genres=4, coupling=1.0, res=[32], seconds=1.0, seed=5)
    synthesize_world(paths.dataset("w"), cfg, SplitConfig(), workers=1)
    paths.set_roots(None, None)
    return root


def test_a_registered_embedding_is_judged_like_a_built_in_one(world, tmp_path, monkeypatch):
    """A planted oracle conditioned on an outside embedding says "yes" (an ignoring generator does not), the
    continuous-condition tests run on it, and the report shows it on the encoder and music pages."""
    import benchmark.pipeline.evaluate as ev
    from reports.build import build_report
    from tests.test_music_conditioning import EVAL_SET, TrackG

    paths.set_roots(world, tmp_path / "runs")
    ds = PreparedDataset.open("w")
    ids = ds.tracks["track_id"].astype(str).to_numpy()
    run = paths.run("byo")
    register_embedding(ds, run, _parquet(tmp_path / "clap.parquet", ids, _vectors(ds, 4.0)), "clap",
                       cfg=load_config("cpu", ENC_SET).encoders)
    conditions = load_conditions(ds, "clap", run)
    cfg = load_config("cpu", [*EVAL_SET, "eval.features=colour"]).eval  # no covernet to train: the condition is tested
    verdicts = {}
    for oracle in (True, False):
        meta = {"res": 32, "cond_dim": conditions.shape[1], "z_dim": 4, "condition": "clap", "checkpoint": "planted",
                "images_seen": 0, "model": "planted"}
        g = TrackG(ds, conditions, oracle)
        monkeypatch.setattr(ev, "load_generator", planted_loader(g, meta))
        model = "dcgan_cond+clap" if oracle else "wgan_gp_cond+clap"
        m = ev.evaluate_model(ds, run, model, cfg, device_kind="cpu", n=400, seed=0)
        assert m["condition"] == "clap" and m["verdict"]["kind"] == "continuous" and "retrieval" in m["metrics"]
        verdicts[oracle] = m["verdict"]["conditioning_works"]
    assert verdicts == {True: "yes", False: verdicts[False]} and verdicts[False] != "yes"
    report = build_report(run).parent
    sha = json.loads((run.encoder("clap") / "meta.json").read_text())["sha256"]
    assert f"clap <span class=\"small muted\">registered from a file (sha256 {sha[:12]}" in (
        report / "encoders.html").read_text()
    blocks = {b.split("</h2>")[0]: b for b in (report / "music.html").read_text().split("<h2>")[1:]}
    assert "dcgan_cond+clap" in blocks["clap"] and "wgan_gp_cond+clap" in blocks["clap"]
    paths.set_roots(None, None)


def test_the_readme_example_registers_an_embedding(tmp_path, monkeypatch):
    import shlex

    from tests.conftest import readme_blocks

    make_tiny_dataset("default")
    monkeypatch.chdir(tmp_path)  # the example reads data/default/ and writes myemb.parquet here
    (python,) = readme_blocks("Bring your own music encoder", "python")
    exec(compile(python, "README.md", "exec"), {})
    (bash,) = readme_blocks("Bring your own music encoder", "bash")
    encode = shlex.split(bash.splitlines()[0].split("#")[0])
    assert encode[:2] == ["bench", "encode"] and run_bench(*encode[1:]) == 0
    got = load_conditions(PreparedDataset.open("default"), "myemb", paths.run("default"))
    assert got.shape == (40, 16) and np.isfinite(got).all()
