OPENQASM 3.0;
qubit q;
// í € surrogate øˆ€€€
x q;
