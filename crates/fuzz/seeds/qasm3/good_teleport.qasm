// Quantum teleportation of ry(0.7)|0> from q[0] to q[2], with mid-circuit
// measurement and classical corrections on single bits.
// Expected: the teleported bit (the leftmost character, out[0]) reads 1 with
// probability sin^2(0.35) = 0.1176; c is uniform over 00, 01, 10, 11.
OPENQASM 3.0;
include "stdgates.inc";
qubit[3] q;
bit[2] c;
bit[1] out;
ry(0.7) q[0];
h q[1];
cx q[1], q[2];
cx q[0], q[1];
h q[0];
c[0] = measure q[0];
c[1] = measure q[1];
if (c[1]) x q[2];
if (c[0]) z q[2];
out[0] = measure q[2];
