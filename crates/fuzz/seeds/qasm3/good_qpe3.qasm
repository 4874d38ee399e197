// Quantum phase estimation with three counting qubits. The unitary is
// U = p(2π·5/8) on the target qubit, prepared in its eigenstate |1>, so
// U|1> = e^{2πi·φ}|1> with φ = 5/8 = 0.101 in binary. Counting qubit j
// controls U^(2^j), written `ctrl @ pow(2 ** j) @ p(...)`, then an inverse QFT
// (`inv @` on a QFT definition) reads φ out of the counting register.
// Expected: every shot reads "101" (the three bits of φ·8 = 5).
OPENQASM 3.0;
include "stdgates.inc";
gate qft3 a, b, c {
  h c;
  ctrl @ p(pi/2) b, c;
  ctrl @ p(pi/4) a, c;
  h b;
  ctrl @ p(pi/2) a, b;
  h a;
  swap a, c;
}
qubit[3] cnt;
qubit psi;
bit[3] est;
x psi;
h cnt;
for uint j in [0:2] {
  ctrl @ pow(2 ** j) @ p(5 * pi / 4) cnt[j], psi;
}
inv @ qft3 cnt[0], cnt[1], cnt[2];
est = measure cnt;
