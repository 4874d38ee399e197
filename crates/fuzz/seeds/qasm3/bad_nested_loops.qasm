OPENQASM 3.0;
include "stdgates.inc";
qubit q;
int n = 0;
for int i in [0:9999] { for int j in [0:9999] { for int k in [0:9999] { n += 1; } } }
