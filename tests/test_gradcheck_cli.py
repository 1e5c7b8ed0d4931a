"""``circuitep gradcheck``: the command line over :mod:`circuitep.gradcheck` (DESIGN.md section 1).

The JSON report and the figures of the command, with the numpy engine (with both sweeps) and with
ngspice (without sweeps, to stay fast); bad input gives exit code 2 and a one-line message.

Tolerances (beta = 1e-7 S, the default: 1e-3 x the median leak of the layered spec):

- AEP cosine >= 0.99999 and rel error <= 1e-4 on numpy (measured 1 - 3e-14 and 5e-7: its centred
  O(beta^2) bias); >= 0.9999 on ngspice (the project's ngspice bar; measured 1 - 1e-15).
- Dyadic rel error <= 1e-8 on numpy (no beta bias; measured 2e-14).
- Beta sweep (beta x 10^[-1 .. 1]): AEP slopes one-sided in [0.9, 1.1], centred in [1.8, 2.2]
  (measured 1.00 and 2.00); VF's error tends to its bias, not to 0: |slope| < 0.1 (measured 1e-4).
- Asymmetry sweep (alpha = 0 .. 1): VF's error grows strictly with the asymmetry, from AEP's level
  at alpha = 0 (a reciprocal circuit: measured 1.5e-6) to > 0.1 at the spec's own asymmetry
  (measured 0.77), while AEP's stays < 1e-4 throughout (measured <= 1.4e-6).
"""

from __future__ import annotations

import json
import struct
from itertools import pairwise
from pathlib import Path

import pytest

from circuitep.cli import main
from circuitep.specio import load_spec

ROOT = Path(__file__).resolve().parent.parent
SPEC = "netlists/layered.toml"
ESTIMATOR_NAMES = {"ep", "vf", "aep", "dyadic"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def in_repo(monkeypatch):
    """Run from the repository root, so that the spec path is the one a user types."""
    monkeypatch.chdir(ROOT)


def check_png(path: Path) -> None:
    """A PNG file: the 8-byte signature, then an IHDR chunk with a non-empty image."""
    assert path.is_file(), f"{path} was not written"
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path}: not a PNG (starts with {data[:8]!r})"
    length, kind, width, height = struct.unpack(">I4sII", data[8:24])
    assert kind == b"IHDR" and length == 13 and width > 0 and height > 0, (
        f"{path}: bad IHDR {kind!r} {width}x{height}"
    )
    assert data[-8:-4] == b"IEND", f"{path}: truncated (no IEND chunk)"


def check_report_shape(report: dict) -> None:
    groups = set(load_spec(ROOT / SPEC).params())
    assert set(report["estimators"]) == ESTIMATOR_NAMES, (
        f"estimators: {sorted(report['estimators'])}"
    )
    for name, r in report["estimators"].items():
        for key in ("cosine", "rel_error", "groups"):
            assert key in r, f"{name}: no {key!r} in {sorted(r)}"
        assert set(r["groups"]) == groups, (
            f"{name}: groups {sorted(r['groups'])} != params {sorted(groups)}"
        )
        for g, m in r["groups"].items():
            assert {"cosine", "rel_error"} <= set(m), f"{name}.{g}: {sorted(m)}"
    assert set(report["exact"]) == groups


def table(report: dict) -> str:
    return "\n".join(
        f"  {name}: cosine {r['cosine']:.12f}, rel error {r['rel_error']:.3e}"
        for name, r in report["estimators"].items()
    )


def test_gradcheck_numpy_with_sweeps(in_repo, tmp_path, capsys):
    out_json, out_png = tmp_path / "r.json", tmp_path / "r.png"
    rc = main(
        [
            "gradcheck",
            SPEC,
            "--engine",
            "numpy",
            "--json",
            str(out_json),
            "--plot",
            str(out_png),
            "--sweep-beta",
            "--sweep-asymmetry",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, f"exit code {rc}\nstdout:\n{captured.out}\nstderr:\n{captured.err}"
    report = json.loads(out_json.read_text())
    check_report_shape(report)
    assert report["engine"] == "numpy" and report["beta"] == pytest.approx(1e-7, rel=1e-12)

    est = report["estimators"]
    assert est["aep"]["cosine"] >= 0.99999 and est["aep"]["rel_error"] <= 1e-4, table(report)
    assert all(m["rel_error"] <= 1e-4 for m in est["aep"]["groups"].values()), est["aep"]["groups"]
    assert est["dyadic"]["rel_error"] <= 1e-8, table(report)
    assert est["vf"]["rel_error"] > 0.1, (
        f"VF should be biased on this non-reciprocal circuit\n{table(report)}"
    )

    sweep = report["beta_sweep"]
    rows = "\n".join(
        f"  {name} {mode}: {sweep[name][mode]}"
        for name in ("vf", "aep")
        for mode in ("one_sided", "centered")
    )
    slopes = {
        name: (sweep[name]["slope_one_sided"], sweep[name]["slope_centered"])
        for name in ("vf", "aep")
    }
    msg = f"slopes (one-sided, centred): {slopes}\nbetas {sweep['betas']}\n{rows}"
    assert 0.9 <= slopes["aep"][0] <= 1.1 and 1.8 <= slopes["aep"][1] <= 2.2, msg
    assert abs(slopes["vf"][0]) < 0.1 and abs(slopes["vf"][1]) < 0.1, msg

    asym = report["asymmetry_sweep"]
    msg = "\n".join(
        f"  asymmetry {a:.3f}: VF {v:.3e}, AEP {p:.3e}, stable {s}"
        for a, v, p, s in zip(
            asym["asymmetry"], asym["vf"], asym["aep"], asym["stable"], strict=True
        )
    )
    assert asym["asymmetry"][0] == 0 and all(b > a for a, b in pairwise(asym["asymmetry"])), msg
    assert all(asym["stable"]), msg
    assert all(b > a for a, b in pairwise(asym["vf"])), (
        f"VF error does not grow with asymmetry\n{msg}"
    )
    assert asym["vf"][0] < 1e-4 and asym["vf"][-1] > 0.1, msg
    assert max(asym["aep"]) < 1e-4, f"AEP error is not flat and small\n{msg}"

    for png in (out_png, tmp_path / "r-beta.png", tmp_path / "r-asymmetry.png"):
        check_png(png)
    assert "aep" in captured.out and str(out_json) in captured.out
    assert captured.err == "", captured.err


@pytest.mark.ngspice
def test_gradcheck_ngspice(in_repo, tmp_path, capsys):
    out_json, out_png = tmp_path / "r.json", tmp_path / "r.png"
    rc = main(
        ["gradcheck", SPEC, "--engine", "ngspice", "--json", str(out_json), "--plot", str(out_png)]
    )
    captured = capsys.readouterr()
    assert rc == 0, f"exit code {rc}\nstdout:\n{captured.out}\nstderr:\n{captured.err}"
    report = json.loads(out_json.read_text())
    check_report_shape(report)
    assert report["engine"] == "ngspice"
    assert report["tolerances"]["reltol"] == 1e-10 and report["tolerances"]["form"] == "folded", (
        report["tolerances"]
    )
    assert report["estimators"]["aep"]["cosine"] >= 0.9999, table(report)
    assert report["estimators"]["dyadic"]["cosine"] >= 0.9999, table(report)
    assert "beta_sweep" not in report and "asymmetry_sweep" not in report
    check_png(out_png)
    assert not (tmp_path / "r-beta.png").exists() and not (tmp_path / "r-asymmetry.png").exists()


@pytest.mark.parametrize(
    "content, expect",
    [
        (None, "does not exist"),
        ("name = [unclosed", "not valid TOML"),
        ('name = "x"\ncolour = "red"\n', "unknown key"),
    ],
    ids=["missing", "bad-toml", "unknown-key"],
)
def test_bad_spec_exits_2_with_message(tmp_path, capsys, content, expect):
    spec = tmp_path / "broken.toml"
    if content is not None:
        spec.write_text(content)
    rc = main(["gradcheck", str(spec), "--engine", "numpy"])
    captured = capsys.readouterr()
    assert rc == 2, f"exit code {rc}\nstderr:\n{captured.err}"
    assert captured.err.startswith("circuitep: error:") and expect in captured.err, captured.err
    assert "broken.toml" in captured.err and "Traceback" not in captured.err, captured.err
    assert len(captured.err.strip().splitlines()) == 1, captured.err


@pytest.mark.parametrize("beta", ["-1", "0", "nan", "inf", "abc"])
def test_bad_beta_is_an_argparse_error(in_repo, capsys, beta):
    with pytest.raises(SystemExit) as info:
        main(["gradcheck", SPEC, "--engine", "numpy", "--beta", beta])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--beta" in err and "usage:" in err, err


@pytest.mark.parametrize("samples", ["0", "-1"])
def test_bad_samples_is_an_argparse_error(in_repo, capsys, samples):
    with pytest.raises(SystemExit) as info:
        main(["gradcheck", SPEC, "--engine", "numpy", "--samples", samples])
    assert info.value.code == 2
    assert "--samples" in capsys.readouterr().err


def test_sens_without_ngspice_literal_is_refused_before_any_work(in_repo, tmp_path, capsys):
    """--sens needs ngspice's literal form; the refusal comes first, not after a whole report."""
    out = tmp_path / "r.json"
    rc = main(["gradcheck", SPEC, "--engine", "numpy", "--sens", "--json", str(out)])
    captured = capsys.readouterr()
    assert rc == 2 and "--sens reads ngspice's sensitivities" in captured.err, captured.err
    assert captured.out == "" and not out.exists(), captured.out
