OPENQASM 3.0;
include "stdgates.inc";
input float theta;
input int n;
input bool flag;
input angle[8] a;
qubit q;
for int i in [0:n] { rx(theta) q; }
if (flag) x q;
rz(a) q;
