OPENQASM 3.0;
include "stdgates.inc";
qubit q;
def f() { }
for int i in [0:999999] { f(); }
