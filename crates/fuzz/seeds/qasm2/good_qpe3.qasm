// Quantum phase estimation with three counting qubits. The unitary is
// U = p(2π·5/8) on the target qubit, prepared in its eigenstate |1>, so
// U|1> = e^{2πi·φ}|1> with φ = 5/8 = 0.101 in binary. Counting qubit j
// controls U^(2^j) (one controlled phase of 2^j·2π·5/8), then an inverse QFT
// on the counting register reads φ out.
// Expected: every shot reads "101" (the three bits of φ·8 = 5).
OPENQASM 2.0;
include "qelib1.inc";
qreg cnt[3];
qreg psi[1];
creg est[3];
x psi[0];
h cnt;
cp(5*pi/4) cnt[0], psi[0];   // U^1
cp(5*pi/2) cnt[1], psi[0];   // U^2
cp(5*pi) cnt[2], psi[0];     // U^4
// inverse QFT on cnt (with the swap)
swap cnt[0], cnt[2];
h cnt[0];
cp(-pi/2) cnt[0], cnt[1];
h cnt[1];
cp(-pi/4) cnt[0], cnt[2];
cp(-pi/2) cnt[1], cnt[2];
h cnt[2];
measure cnt -> est;
