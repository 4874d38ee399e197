// Grover search over 3 qubits for the marked state |101> (q0 = 1, q1 = 0,
// q2 = 1), two iterations; CCZ is written with the ctrl modifier.
// Expected: "101" in about 94.5% of the shots
// (sin^2(5·asin(1/sqrt 8)) = 0.9453).
OPENQASM 3.0;
include "stdgates.inc";
// Phase flip on |101>: flip q1 so that a CCZ hits it.
gate oracle a, b, c {
  x b;
  ctrl(2) @ z a, b, c;
  x b;
}
// Inversion about the mean.
gate diffuse a, b, c {
  h a; h b; h c;
  x a; x b; x c;
  ctrl(2) @ z a, b, c;
  x a; x b; x c;
  h a; h b; h c;
}
qubit[3] q;
bit[3] c;
h q;
for uint k in [1:2] {
  oracle q[0], q[1], q[2];
  diffuse q[0], q[1], q[2];
}
c = measure q;
