OPENQASM 3.0;
include "stdgates.inc";
qubit[3] q;
pow(1e300) @ x q[0];
pow(-1.5) @ h q[0];
ctrl(99999999999) @ x q[0], q[1];
negctrl(0) @ x q[0];
ctrl(2) @ ctrl(2) @ x q[0], q[1], q[2];
inv @ inv @ pow(0.5) @ sx q[0];
