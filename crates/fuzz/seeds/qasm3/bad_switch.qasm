OPENQASM 3.0;
include "stdgates.inc";
qubit q;
int x = 3;
switch (x) { case 99999999999999999999 { x q; } case 1, 1, 1 { } default { } default { } }
