OPENQASM 3.0;
include "stdgates.inc";
qubit q;
def f(qubit a) { f(a); }
f(q);
