OPENQASM 3.0;
include "stdgates.inc";
x $99999999999;
h $4294967295;
cx $0, $0;
