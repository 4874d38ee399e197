// Bernstein–Vazirani with the hidden string s = 1011 (s_0 is the rightmost bit).
// The oracle is f(x) = s·x mod 2, one CNOT from each qubit i with s_i = 1 onto
// the ancilla. Expected: every shot reads "1011".
OPENQASM 2.0;
include "qelib1.inc";
qreg q[4];
qreg anc[1];
creg c[4];
x anc[0];
h anc[0];
h q;
cx q[0], anc[0];
cx q[1], anc[0];
cx q[3], anc[0];
h q;
measure q -> c;
