OPENQASM 3.0;
include "stdgates.inc";
gate g a { g a; }
qubit q;
g q;
