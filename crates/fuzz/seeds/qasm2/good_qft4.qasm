// Four-qubit QFT of the basis state |x> with x = 5 (q0 = 1, q2 = 1), using a
// custom controlled-phase gate definition and the final swaps.
// Expected: every outcome equally likely (1/16 each); the state is
// 1/4 · Σ_k e^{2πi·5k/16} |k>.
OPENQASM 2.0;
include "qelib1.inc";
gate cphase(theta) a, b { cu1(theta) a, b; }
qreg q[4];
creg c[4];
x q[0];
x q[2];
h q[3];
cphase(pi/2) q[2], q[3];
cphase(pi/4) q[1], q[3];
cphase(pi/8) q[0], q[3];
h q[2];
cphase(pi/2) q[1], q[2];
cphase(pi/4) q[0], q[2];
h q[1];
cphase(pi/2) q[0], q[1];
h q[0];
swap q[0], q[3];
swap q[1], q[2];
measure q -> c;
