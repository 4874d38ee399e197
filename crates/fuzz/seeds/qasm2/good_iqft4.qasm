// Inverse QFT on four qubits. The input is prepared directly as the Fourier
// state of x = 11, QFT|11> = 1/4 · Σ_k e^{2πi·11k/16} |k>, which is a product
// state: qubit j is (|0> + e^{2πi·11·2^j/16}|1>)/√2, i.e. h then
// p(2π·11·2^j/16). The inverse QFT (the gates of qft4.qasm reversed, angles
// negated, as a gate definition) maps it back to the basis state |11>.
// Expected: every shot reads "1011" (q0 = 1, q1 = 1, q2 = 0, q3 = 1).
OPENQASM 2.0;
include "qelib1.inc";
gate iqft4 a, b, c, d {
  swap b, c;
  swap a, d;
  h a;
  cu1(-pi/2) a, b;
  h b;
  cu1(-pi/4) a, c;
  cu1(-pi/2) b, c;
  h c;
  cu1(-pi/8) a, d;
  cu1(-pi/4) b, d;
  cu1(-pi/2) c, d;
  h d;
}
qreg q[4];
creg c[4];
h q;
p(11*pi/8) q[0];
p(11*pi/4) q[1];
p(11*pi/2) q[2];
p(11*pi) q[3];
iqft4 q[0], q[1], q[2], q[3];
measure q -> c;
