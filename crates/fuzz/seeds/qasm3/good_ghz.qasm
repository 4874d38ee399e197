// Five-qubit GHZ state: H, then a CNOT chain written as a loop.
// Expected: counts only "00000" and "11111", each about half of the shots.
OPENQASM 3.0;
include "stdgates.inc";
qubit[5] q;
bit[5] c;
h q[0];
for uint i in [0:3] {
  cx q[i], q[i + 1];
}
c = measure q;
