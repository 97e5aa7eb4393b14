"""The CLI's contract: one red line and exit 2 for user errors, tracebacks only with --debug, roots by flag/env."""

from __future__ import annotations

import subprocess
import sys

import pytest

from benchmark.cli.app import main
from core import paths


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_help_lists_groups(capsys):
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0
    for group in ("data", "config"):
        assert group in out


def test_user_error_is_one_line_exit_2(capsys):
    code, out, err = run_cli(["config", "show", "--set", "data.synth.trakcs=5"], capsys)
    assert code == 2
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "data.synth.trakcs" in lines[0]
    assert "Traceback" not in err + out


def test_debug_shows_the_exception(capsys):
    from core.errors import UserError

    with pytest.raises(UserError):
        main(["--debug", "config", "show", "--set", "data.synth.trakcs=5"])


def test_error_text_with_brackets_is_not_markup(capsys):
    code, _, err = run_cli(["config", "show", "--set", "data.synth.res=[8, 9]"], capsys)
    assert code == 2 and "data.synth.res" in err


def test_missing_dataset_message(capsys):
    code, _, err = run_cli(["data", "info", "nope"], capsys)
    assert code == 2 and "bench data synth" in err


def test_bad_dataset_name_is_refused(capsys):
    code, _, err = run_cli(["data", "info", "../escape"], capsys)
    assert code == 2 and "invalid dataset name" in err


def test_roots_flag_beats_env(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(paths.DATA_ROOT_ENV, str(tmp_path / "from-env"))
    assert paths.data_root() == tmp_path / "from-env"
    code, _, _ = run_cli(["--data-root", str(tmp_path / "from-flag"), "config", "show"], capsys)
    assert code in (0, None)
    assert paths.data_root() == tmp_path / "from-flag"
    paths.set_roots(None, None)
    assert paths.dataset("x").root == tmp_path / "from-env" / "x"


def test_config_show_prints_yaml(capsys):
    code, out, _ = run_cli(["config", "show", "--preset", "gpu", "--set", "data.synth.tracks=77"], capsys)
    assert code in (0, None)
    assert "tracks: 77" in out and "preset: gpu" in out


def test_console_script_runs(tmp_path):
    """The installed entry point itself (a fresh process): usage errors are exit 2 too."""
    r = subprocess.run(
        [sys.executable, "-m", "benchmark.cli.app", "data", "info", "missing"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
