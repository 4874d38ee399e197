OPENQASM 3.0;
include "/etc/passwd";
qubit q;
