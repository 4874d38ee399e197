// One QAOA layer (p = 1) for MaxCut on the four-node "kite" graph: the cycle
// 0-1-2-3-0 plus the chord 0-2 (five edges; the maximum cut is 4, by
// {0,2} | {1,3}). Cost layer e^{-iγC} with C = Σ_edges (1 - Z_i Z_j)/2: each
// edge gets the phase e^{-iγ} when its ends differ (cx, p(-γ), cx). Mixer
// e^{-iβ Σ X} = rx(2β) on every qubit. Fixed angles γ = 0.57, β = 0.31 (near
// the p = 1 optimum: γ = 0.5713, β = 0.3109).
// Expected (exact; checked against Qiskit's Statevector): ⟨C⟩ = 3.2370967 (a
// random cut averages 2.5); ⟨Z_i Z_j⟩ = -0.3129513 on the cycle edges and
// -0.2223881 on the chord. The two maximum cuts "0101" and "1010" are the most
// likely outcomes, 0.1638115 each; "0000" and "1111" (cut 0) 0.0073359 each.
OPENQASM 2.0;
include "qelib1.inc";
gate edge(gamma) a, b { cx a, b; p(-gamma) b; cx a, b; }
qreg q[4];
creg c[4];
h q;
edge(0.57) q[0], q[1];
edge(0.57) q[1], q[2];
edge(0.57) q[2], q[3];
edge(0.57) q[3], q[0];
edge(0.57) q[0], q[2];
rx(2*0.31) q;
measure q -> c;
