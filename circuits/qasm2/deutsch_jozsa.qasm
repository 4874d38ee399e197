// Deutsch–Jozsa on 3 input qubits with a balanced oracle f(x) = x_0 xor x_2.
// Expected: the all-zero outcome never occurs; with this oracle every shot
// reads "101".
OPENQASM 2.0;
include "qelib1.inc";
qreg x[3];
qreg y[1];
creg c[3];
x y[0];
h y[0];
h x;
cx x[0], y[0];
cx x[2], y[0];
h x;
measure x -> c;
