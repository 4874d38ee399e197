OPENQASM 3.0;
input int n;
qubit[n] q;
const int m = n * n * n;
bit[m] c;
