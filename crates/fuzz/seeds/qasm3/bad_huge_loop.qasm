OPENQASM 3.0;
include "stdgates.inc";
qubit q;
for int i in [0:99999999999] { x q; }
