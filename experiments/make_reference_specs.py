import numpy as np
from circuitep.builders import layered
from circuitep.spec import Network, Sample, Coupling, NodeGroup
from circuitep.specio import save_spec, load_spec
from circuitep.engines.numpy_engine import NumpyEngine
from circuitep.engines.base import Phase
def rounded(net):
    cs = tuple(Coupling(c.name, c.kind, c.src, c.dst, np.array([[float(f"{w:.3g}") for w in r] for r in c.weight]), c.mask, c.v_sat) for c in net.couplings)
    gs = tuple(NodeGroup(g.name, g.role, g.size, g.leak, np.array([float(f"{b:.3g}") for b in g.bias]), g.capacitance, g.clamp, g.invert) if g.free else g for g in net.groups)
    return Network(net.name, gs, cs, net.diode, net.sample, net.description)
u = [0.9, 0.1, 0.6, 0.3]
ff = layered((4,5,3), name="feedforward", forward="vccs", gain=1.5, bias_scale=0.2, seed=3,
    description="Feedforward transconductor network 4-5-3 with diode clamps: no feedback, VF cannot train its hidden layer")
rc = layered((4,5,3), name="reciprocal", forward=None, resistors=True, inverted_inputs=True, gain=4.0, bias_scale=0.5, seed=4,
    description="Kendall-style resistive network 4(+4 inverted)-5-3 with diode clamps: reciprocal, EP is exact")
ly = layered((4,6,5,3), name="layered", forward="vccs", backward="vccs", resistors=True, gain=2.0, bias_scale=0.2, seed=5,
    description="Layered 4-6-5-3: resistors plus independent forward and backward transconductors (asymmetric)")
for net in (ff, rc, ly):
    net = rounded(net)
    net = Network(net.name, net.groups, net.couplings, net.diode, Sample(np.array(u), np.array([0.5,0.0,0.0])), net.description)
    x = NumpyEngine().solve(net, Phase(), np.array([u])).x
    print(net.name, x.round(3))
    save_spec(net, f"netlists/{net.name}.toml")
    n2 = load_spec(f"netlists/{net.name}.toml"); assert all(np.array_equal(a, n2.params()[k]) for k, a in net.params().items())
