"""Every figure module runs at reduced size and writes a PNG and its data file."""
import os

import pytest

from adamflow.errors import ConfigError
from paper_figs import build

MODS = build.figure_modules()


@pytest.mark.parametrize("name", list(MODS))
def test_figure_module_quick(name, tmp_path):
    mod = MODS[name]
    assert mod.NAME == name and mod.TITLE
    msgs = []
    files = mod.make(str(tmp_path), progress=msgs.append,
                     **build.make_kwargs(mod, scheme="exact", quick=True))
    assert any(f.endswith(".png") for f in files)
    assert any(f.endswith((".csv", ".json")) for f in files)
    for f in files:
        assert os.path.getsize(f) > 0
    assert msgs


def test_all_spec_figures_registered():
    assert set(MODS) >= {"trajectories", "trajectories-global", "basin", "refine", "velocity",
                         "pl", "positivity"}


def test_build_rejects_bad_scheme_and_figure(tmp_path):
    with pytest.raises(ConfigError):
        build.main(out=str(tmp_path), scheme="nope", quiet=True)
    with pytest.raises(ConfigError):
        build.main(out=str(tmp_path), only=["nope"], quiet=True)


def test_figs_cli_unknown_scheme_one_line(capsys):
    from adamflow.cli import main

    assert main(["figs", "--scheme", "nope", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
