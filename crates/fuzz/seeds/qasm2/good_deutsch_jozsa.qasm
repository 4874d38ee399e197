// Deutsch–Jozsa on 3 input qubits with a balanced oracle f(x) = x_0 xor x_2
// (input register `inp`, ancilla `anc`).
// Expected: the all-zero outcome never occurs; with this oracle every shot
// reads "101".
OPENQASM 2.0;
include "qelib1.inc";
qreg inp[3];
qreg anc[1];
creg c[3];
x anc[0];
h anc[0];
h inp;
cx inp[0], anc[0];
cx inp[2], anc[0];
h inp;
measure inp -> c;
