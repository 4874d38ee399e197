OPENQASM 3.0;
include "stdgates.inc";
qubit q;
for int i in [0:999999999999] { }
for int j in [0:1:-9223372036854775807] {}
