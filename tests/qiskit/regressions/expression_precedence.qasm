// Operator precedence and associativity in OpenQASM 2 parameter expressions,
// read as Qiskit's qasm2.loads reads them: `^` binds tighter than unary minus
// (-2^2 = -4) and associates to the right (2^3^2 = 512); `-` and `/` associate
// to the left; literals in every form. Each qubit gets its own expressions,
// so a misread angle lowers the fidelity.
OPENQASM 2.0;
include "qelib1.inc";
qreg q[8];
h q;
ry(-2^2) q[0];
rz(2^3^2/100) q[0];
ry(2^-1) q[1];
rz(-2^-2) q[1];
ry(1/2/2) q[2];
rz(2-3-4) q[2];
ry(2*-3) q[3];
rz(-2*-2) q[3];
ry(1-2*3^2) q[4];
rz((1-2)*3^2) q[4];
ry(1-2^2^-1) q[5];
rz(4/2^2) q[5];
ry(sin(pi/6)^2 + ln(exp(1.5)) - sqrt(2)^2) q[6];
rz(--1 + -sin(1)) q[6];
ry(1e-3*1000 + 1.5E+1/10 - .5 + 2.*3.) q[7];
U(pi^0, 0^0, tan(pi/4) - exp(-1)) q[7];
