OPENQASM 3.0;
include "stdgates.inc";
qubit q;
while (true) { x q; }
int i = 0;
while (i < 10) { }
