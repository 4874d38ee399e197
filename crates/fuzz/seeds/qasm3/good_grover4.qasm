// Grover search over 4 qubits (N = 16) for the marked state |1101> (q0 = 1,
// q1 = 0, q2 = 1, q3 = 1), with the optimal three iterations; CCCZ is
// `ctrl(3) @ z`.
// Expected: "1101" with probability sin^2(7·asin(1/4)) = 0.961319; each of
// the 15 other outcomes with probability (1 - 0.961319)/15 = 0.002579.
OPENQASM 3.0;
include "stdgates.inc";
gate oracle a, b, c, d {
  x b;
  ctrl(3) @ z a, b, c, d;
  x b;
}
gate diffuse a, b, c, d {
  h a; h b; h c; h d;
  x a; x b; x c; x d;
  ctrl(3) @ z a, b, c, d;
  x a; x b; x c; x d;
  h a; h b; h c; h d;
}
qubit[4] q;
bit[4] c;
h q;
for uint k in [1:3] {
  oracle q[0], q[1], q[2], q[3];
  diffuse q[0], q[1], q[2], q[3];
}
c = measure q;
