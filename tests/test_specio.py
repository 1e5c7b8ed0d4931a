"""Spec files and parameter files: round trips and clear errors."""

from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from circuitep.builders import from_graph, random_network
from circuitep.golden import REFERENCE_SPECS
from circuitep.specio import SpecError, load_params, load_spec, save_params, save_spec, spec_to_toml

NETLISTS = Path(__file__).resolve().parent.parent / "netlists"


def same(a, b):
    assert spec_to_toml(a) == spec_to_toml(b)
    for k, v in a.params().items():
        assert np.array_equal(v, b.params()[k]), k


@pytest.mark.parametrize(
    "net",
    [load_spec(NETLISTS / f"{n}.toml") for n in REFERENCE_SPECS]
    + [random_network(k, seed=3) for k in ("reciprocal", "nonreciprocal", "feedforward")],
)
def test_spec_round_trips_exactly(tmp_path, net):
    save_spec(net, tmp_path / "s.toml")
    same(net, load_spec(tmp_path / "s.toml"))


def test_masked_graph_spec_round_trips(tmp_path):
    g = nx.DiGraph()
    g.add_node("a", role="input")
    g.add_node("b", role="hidden", clamp=(0.4, 0.6))
    g.add_node("c", role="hidden")
    g.add_node("d", role="output")
    g.add_edge("a", "b", kind="vccs", weight=1e-4)
    g.add_edge("b", "c", kind="resistor", weight=2e-4)
    g.add_edge("c", "d", kind="tanh", weight=-1e-4)
    net = from_graph(g)
    save_spec(net, tmp_path / "g.toml")
    back = load_spec(tmp_path / "g.toml")
    same(net, back)
    assert any(not c.mask.all() for c in back.couplings)


def test_params_round_trip_and_shape_mismatch(tmp_path):
    net = random_network("nonreciprocal", seed=1)
    trained = net.with_params({"fwd1": 2 * net.params()["fwd1"]})
    save_params(trained, tmp_path / "p.npz")
    same(trained, load_params(net, tmp_path / "p.npz"))
    other = random_network("nonreciprocal", sizes=(4, 6, 3), seed=1)
    with pytest.raises(
        SpecError, match=r"parameter 'fwd1' has shape \(5, 4\), the network needs \(6, 4\)"
    ):
        load_params(other, tmp_path / "p.npz")
    with pytest.raises(SpecError, match="cannot read parameters"):
        load_params(net, tmp_path / "missing.npz")


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "name = 'x'\n[[groups]]\nname = 'in'\nrole = 'input'\nsize = 2\nsizee = 3\n",
            r"unknown key\(s\) \['sizee'\]",
        ),
        ("name = 'x'\nbogus = 1\n", r"unknown key\(s\) \['bogus'\]"),
        ("name = 'x'\n[[groups]\n", "not valid TOML"),
        (
            "[[groups]]\nname = 'in'\nrole = 'input'\nsize = 1\n[[groups]]\nname = 'o'\nrole = "
            "'output'\nsize = 1\n",
            "missing top-level name",
        ),
        (
            "name = 'x'\n[[groups]]\nname = 'in'\nrole = 'input'\nsize = 1\n[[groups]]\nname = "
            "'o'\nrole = 'output'\n"
            "size = 1\n[[couplings]]\nname = 'c'\nkind = 'resistor'\nsrc = 'in'\ndst = 'o'\n",
            r"couplings\[0\]: missing key\(s\) \['weight'\]",
        ),
        (
            "name = 'x'\n[[groups]]\nname = 'in'\nrole = 'input'\nsize = 1\n[[groups]]\nname = "
            "'o'\nrole = 'output'\n"
            "size = 1\n[[couplings]]\nname = 'c'\nkind = 'resistor'\nsrc = 'in'\ndst = 'o'\nweight "
            "= [[-1e-4]]\n",
            r"couplings\['c'\].weight\[0, 0\] = -0.0001 is negative",
        ),
        # TOML booleans and strings are not numbers, and numbers are not mask booleans: no silent
        # casts
        (
            "name = 'x'\n[[groups]]\nname = 'in'\nrole = 'input'\nsize = 1\n[[groups]]\nname = "
            "'o'\nrole = 'output'\n"
            "size = 1\nleak = '1e-4'\n",
            r"groups\['o'\].leak must be a number or a list of numbers, got '1e-4'",
        ),
        (
            "name = 'x'\n[[groups]]\nname = 'in'\nrole = 'input'\nsize = 1\n[[groups]]\nname = "
            "'o'\nrole = 'output'\n"
            "size = 1\nclamp = [false, true]\n",
            r"groups\['o'\].clamp must be a number or a list of numbers, got False",
        ),
        (
            "name = 'x'\n[[groups]]\nname = 'in'\nrole = 'input'\nsize = 1\n[[groups]]\nname = "
            "'o'\nrole = 'output'\n"
            "size = 2\n[[couplings]]\nname = 'c'\nkind = 'vccs'\nsrc = 'in'\ndst = 'o'\nweight = "
            "[[1e-4], [true]]\n",
            r"couplings\['c'\].weight must be a matrix of numbers, got True",
        ),
        (
            "name = 'x'\n[[groups]]\nname = 'in'\nrole = 'input'\nsize = 1\n[[groups]]\nname = "
            "'o'\nrole = 'output'\n"
            "size = 2\n[[couplings]]\nname = 'c'\nkind = 'vccs'\nsrc = 'in'\ndst = 'o'\nweight = "
            "[[1e-4], [1e-4, 2e-4]]\n",
            r"couplings\['c'\].weight must be a matrix of numbers \(rows of equal length\)",
        ),
        (
            "name = 'x'\n[[groups]]\nname = 'in'\nrole = 'input'\nsize = 1\n[[groups]]\nname = "
            "'o'\nrole = 'output'\n"
            "size = 2\n[[couplings]]\nname = 'c'\nkind = 'vccs'\nsrc = 'in'\ndst = 'o'\nweight = "
            "[[1e-4], [1e-4]]\n"
            "mask = [['false'], ['true']]\n",
            r"couplings\['c'\].mask must be a matrix of booleans, got 'false'",
        ),
        (
            "name = 'x'\n[[groups]]\nname = 'in'\nrole = 'input'\nsize = 1\n[[groups]]\nname = "
            "'o'\nrole = 'output'\n"
            "size = 2\n[[couplings]]\nname = 'c'\nkind = 'vccs'\nsrc = 'in'\ndst = 'o'\nweight = "
            "[[1e-4], [1e-4]]\n"
            "mask = [[0.5], [1]]\n",
            r"couplings\['c'\].mask must be a matrix of booleans, got 0.5",
        ),
        (
            "name = 'x'\n[[groups]]\nname = 'in'\nsize = 1\n",
            r"groups\[0\]: missing key\(s\) \['role'\]",
        ),
        (
            "name = 'x'\n[[groups]]\nname = 'in'\nrole = 'input'\nsize = 2\n[[groups]]\nname = "
            "'o'\nrole = 'output'\n"
            "size = 1\n[sample]\ninputs = ['1', 0]\n",
            r"sample.inputs must be a number or a list of numbers, got '1'",
        ),
        # keys that would do nothing: input groups are held by sources; only tanh couplings saturate
        (
            "name = 'x'\n[[groups]]\nname = 'in'\nrole = 'input'\nsize = 1\nclamp = [0, 1]\n",
            r"groups\[0\] is an input group, held by voltage sources: \['clamp'\] would do nothing "
            r"there",
        ),
        (
            "name = 'x'\n[[groups]]\nname = 'in'\nrole = 'input'\nsize = 1\n[[groups]]\nname = "
            "'o'\nrole = 'output'\n"
            "size = 1\n[[couplings]]\nname = 'c'\nkind = 'vccs'\nsrc = 'in'\ndst = 'o'\nweight = "
            "[[1e-4]]\nv_sat = 0.5\n",
            r"couplings\[0\] has v_sat, which only saturating \(tanh\) couplings use",
        ),
    ],
)
def test_bad_spec_files_are_refused_naming_the_field(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SpecError, match=message):
        load_spec(path)


def test_missing_spec_file():
    with pytest.raises(SpecError, match="does not exist"):
        load_spec("/nonexistent/spec.toml")


def test_a_byte_order_mark_is_read_past(tmp_path):
    """Editors on Windows may save UTF-8 with a BOM; TOML parsers call it an invalid statement."""
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + spec_to_toml(random_network("reciprocal", seed=0)).encode())
    assert spec_to_toml(load_spec(path)) == spec_to_toml(random_network("reciprocal", seed=0))
