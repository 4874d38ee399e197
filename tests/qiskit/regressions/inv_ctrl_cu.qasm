// inv @ ctrl @ cu(θ, φ, λ, γ): the inverse of a doubly controlled U with a
// control phase γ. Kettle gets it right; Qiskit 2.6.2 does not (the inverse
// of CUGate(θ, φ, λ, γ).control(1) has parameters [-θ, -λ, -φ] and loses γ:
// fidelity 0.9704 with the true state here), so the differential test's
// reference moves `inv` innermost (ctrl @ inv @ cu, the same gate) before
// Qiskit reads a program. Found by differential.py (seed 12), 22 Nov 2026.
OPENQASM 3.0;
include "stdgates.inc";
qubit[3] q;
h q;
inv @ ctrl @ cu(0.3, 0.2, 0.1, 0.4) q[2], q[0], q[1];
inv @ negctrl @ cu(-3.253806880568848, -6 * π / 8, exp(1.0216320244601729), -1.1281176082498865) q[1], q[2], q[0];
inv @ inv @ ctrl @ cu(1.2224322237484064, -5.0576561934632, arctan(0.6042900419117873), 1.01792509854043 ** 3 * euler) q[0], q[1], q[2];
