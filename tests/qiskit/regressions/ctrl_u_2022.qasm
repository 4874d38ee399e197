// The built-in U is the specification's (since its 2022 revision): Qiskit's
// UGate times e^{iθ/2}. Uncontrolled that is a global phase; under ctrl @ or
// negctrl @ it is a relative phase (Kettle once used UGate, the old U).
OPENQASM 3.0;
include "stdgates.inc";
qubit[3] q;
h q;
ctrl @ U(0.7, 0.2, -0.4) q[0], q[1];
negctrl @ U(2 * pi, 0.3, 0.4) q[1], q[2];
ctrl @ inv @ U(-2.5, 1.0, 2.0) q[2], q[0];
gate g(t) a { U(t, 0, 0) a; }
ctrl @ g(1.1) q[1], q[2];
