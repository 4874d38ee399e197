OPENQASM 2.0;
include "qelib1.inc";
qreg q[1];
rx(1e999999) q[0];
rx(1/0) q[0];
rx(0/0) q[0];
u3(1e308*10, -1e308*10, 0) q[0];
