"""circuitep: neural networks compiled to SPICE netlists, trained with Equilibrium Propagation."""
