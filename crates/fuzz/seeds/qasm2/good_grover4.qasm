// Grover search over 4 qubits (N = 16) for the marked state |1101> (q0 = 1,
// q1 = 0, q2 = 1, q3 = 1), with the optimal three iterations. The oracle and
// the diffusion use a triple-controlled X (c3x) between two H gates as CCCZ.
// Expected: "1101" with probability sin^2(7·asin(1/4)) = 0.961319; each of
// the 15 other outcomes with probability (1 - 0.961319)/15 = 0.002579.
OPENQASM 2.0;
include "qelib1.inc";
gate cccz a, b, c, d { h d; c3x a, b, c, d; h d; }
gate oracle a, b, c, d { x b; cccz a, b, c, d; x b; }
gate diffuse a, b, c, d {
  h a; h b; h c; h d;
  x a; x b; x c; x d;
  cccz a, b, c, d;
  x a; x b; x c; x d;
  h a; h b; h c; h d;
}
qreg q[4];
creg c[4];
h q;
oracle q[0], q[1], q[2], q[3];
diffuse q[0], q[1], q[2], q[3];
oracle q[0], q[1], q[2], q[3];
diffuse q[0], q[1], q[2], q[3];
oracle q[0], q[1], q[2], q[3];
diffuse q[0], q[1], q[2], q[3];
measure q -> c;
