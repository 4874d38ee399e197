OPENQASM 2.0;
include "qelib1.inc";
opaque foo a;
qreg q[1];
foo q[0];
gate U(a,b,c) q { }
gate h a { x a; }
