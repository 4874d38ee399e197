OPENQASM 2.0;
include "qelib1.inc";
qreg q[1];
rx(1,2,3) q[0];
u3 q[0];
cx q[0], q[0];
