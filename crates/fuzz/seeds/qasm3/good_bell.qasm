// Bell pair: H then CNOT.
// Expected: counts only "00" and "11", each about half of the shots.
OPENQASM 3.0;
include "stdgates.inc";
qubit[2] q;
bit[2] c;
h q[0];
cx q[0], q[1];
c = measure q;
