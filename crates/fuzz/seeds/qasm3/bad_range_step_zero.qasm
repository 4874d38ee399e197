OPENQASM 3.0;
include "stdgates.inc";
qubit[4] q;
for int i in [0:0:10] { x q[0]; }
let a = q[0:0:3];
h q[3:-1:0];
