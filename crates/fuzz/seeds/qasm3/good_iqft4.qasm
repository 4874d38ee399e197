// Inverse QFT on four qubits: `inv @` applied to a QFT gate definition. The
// input is prepared directly as the Fourier state of x = 11,
// QFT|11> = 1/4 · Σ_k e^{2πi·11k/16} |k>, a product state: qubit j is
// (|0> + e^{2πi·11·2^j/16}|1>)/√2, i.e. h then p(11π·2^j/8).
// Expected: every shot reads "1011" (q0 = 1, q1 = 1, q2 = 0, q3 = 1).
OPENQASM 3.0;
include "stdgates.inc";
gate qft4 a, b, c, d {
  h d;
  ctrl @ p(pi/2) c, d;
  ctrl @ p(pi/4) b, d;
  ctrl @ p(pi/8) a, d;
  h c;
  ctrl @ p(pi/2) b, c;
  ctrl @ p(pi/4) a, c;
  h b;
  ctrl @ p(pi/2) a, b;
  h a;
  swap a, d;
  swap b, c;
}
qubit[4] q;
bit[4] c;
for uint j in [0:3] {
  h q[j];
  p(11 * pi * 2 ** j / 8) q[j];
}
inv @ qft4 q[0], q[1], q[2], q[3];
c = measure q;
