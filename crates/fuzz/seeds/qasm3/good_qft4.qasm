// Four-qubit QFT of the basis state |x> with x = 5 (q0 = 1, q2 = 1), as a gate
// definition: the controlled phases are ctrl @ p(θ), then the final swaps.
// Expected: every outcome equally likely (1/16 each); the state is
// 1/4 · Σ_k e^{2πi·5k/16} |k>.
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
x q[0];
x q[2];
qft4 q[0], q[1], q[2], q[3];
c = measure q;
