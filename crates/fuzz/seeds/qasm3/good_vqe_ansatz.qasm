// A two-parameter variational ansatz with OpenQASM 3 inputs: ry(theta) on q0,
// ry(phi) on q1, then a CNOT. Run it with
//   kettle run vqe_ansatz.qasm --input theta=0.3 --input phi=1.1 --statevector
// Nothing is measured: the result is the state. With c = cos, s = sin of half
// the angles, the state is c_θc_φ|00> + s_θs_φ|01> + c_θs_φ|10> + s_θc_φ|11>
// (qubit 0 is the rightmost bit), so ⟨Z0⟩ = cos θ, ⟨Z1⟩ = cos θ cos φ,
// ⟨Z0 Z1⟩ = cos φ and ⟨X0 X1⟩ = sin θ.
// Expected, for theta = 0.3, phi = 1.1: amplitudes 0.8429516, 0.0781094,
// 0.5168180, 0.1273997 (all real); ⟨Z0⟩ = 0.9553365, ⟨Z1⟩ = 0.4333369,
// ⟨Z0 Z1⟩ = 0.4535961, ⟨X0 X1⟩ = 0.2955202.
// With phi = pi the state is s_θ|01> + c_θ|10>, which holds the ground state
// of the two-qubit H2 Hamiltonian of examples/vqe.rs: at theta = -0.2235370
// its energy is the exact ground energy, -1.8572750 Ha.
OPENQASM 3.0;
include "stdgates.inc";
input float theta;
input float phi;
qubit[2] q;
ry(theta) q[0];
ry(phi) q[1];
cx q[0], q[1];
