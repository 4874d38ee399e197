// Deutsch–Jozsa on 3 input qubits with a balanced oracle f(x) = x_0 xor x_2
// (input register `inp`, ancilla `anc`), the oracle as a gate definition.
// Expected: the all-zero outcome never occurs; with this oracle every shot
// reads "101".
OPENQASM 3.0;
include "stdgates.inc";
gate balanced_oracle x0, x1, x2, y {
  cx x0, y;
  cx x2, y;
}
qubit[3] inp;
qubit anc;
bit[3] c;
x anc;
h anc;
h inp;
balanced_oracle inp[0], inp[1], inp[2], anc;
h inp;
c = measure inp;
