// Bernstein–Vazirani with the hidden string s = 1011 (s_0 is the rightmost bit).
// The oracle is f(x) = s·x mod 2: one CNOT onto the ancilla from each qubit i
// with s_i = 1, here a loop over the set {0, 1, 3}.
// Expected: every shot reads "1011".
OPENQASM 3.0;
include "stdgates.inc";
qubit[4] q;
qubit anc;
bit[4] c;
x anc;
h anc;
h q;
for uint i in {0, 1, 3} {
  cx q[i], anc;
}
h q;
c = measure q;
