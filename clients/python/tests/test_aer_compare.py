"""Random circuits: Kettle's exact probabilities and sampled counts against
Qiskit's Statevector and Aer (fixed seeds, so every run is the same)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from qiskit import QuantumCircuit, transpile
from qiskit.circuit.random import random_circuit
from qiskit.quantum_info import Statevector
from qiskit_aer import AerSimulator

from qiskit_kettle import KettleBackend, circuit_to_program

N_CIRCUITS = 30
SHOTS = 4000


def circuits() -> list[QuantumCircuit]:
    out = []
    for i in range(N_CIRCUITS):
        n = 3 + i % 4
        qc = random_circuit(n, depth=6, max_operands=3, measure=True, seed=1000 + i)
        qc.name = f"random{i}"
        out.append(qc)
    return out


def exact_probabilities(qc: QuantumCircuit) -> dict[str, float]:
    # random_circuit measures qubit i into clbit i at the end.
    probs = Statevector(qc.remove_final_measurements(inplace=False)).probabilities_dict()
    return {k: p for k, p in probs.items() if p > 1e-14}


@pytest.fixture(scope="module")
def transpiled(backend: KettleBackend) -> list[QuantumCircuit]:
    return [transpile(qc, backend, optimization_level=1, seed_transpiler=i) for i, qc in enumerate(circuits())]


def test_exact_probabilities(backend: KettleBackend, transpiled: list[QuantumCircuit]) -> None:
    client = backend.client
    jobs = []
    for qc in transpiled:
        program = circuit_to_program(qc)
        jobs.append(client.submit(program.source, program.format, result_types=["probabilities"]))
    for qc, original, job in zip(transpiled, circuits(), jobs):
        got = client.result(job.id, timeout=120).executions[0].probabilities
        want = exact_probabilities(original)
        for key in set(got) | set(want):
            assert got.get(key, 0.0) == pytest.approx(want.get(key, 0.0), abs=1e-10), (qc.name, key)


def test_counts_within_statistical_bounds_of_aer(backend: KettleBackend, transpiled: list[QuantumCircuit]) -> None:
    originals = circuits()
    ours = backend.run(transpiled, shots=SHOTS, seed_simulator=2024).result().get_counts()
    aer_sim = AerSimulator()
    aer = aer_sim.run(transpile(originals, aer_sim, optimization_level=0), shots=SHOTS, seed_simulator=2024)
    aer_counts = aer.result().get_counts()
    assert len(ours) == len(aer_counts) == N_CIRCUITS
    for qc, k, a in zip(originals, ours, aer_counts):
        probs = exact_probabilities(qc)
        assert sum(k.values()) == SHOTS
        assert set(k) <= set(probs), qc.name  # nothing impossible
        for key, p in probs.items():
            sigma = math.sqrt(SHOTS * p * (1 - p))
            # Each against the exact distribution (5 sigma), and the two
            # samples against each other (5 sigma of the difference).
            assert abs(k.get(key, 0) - SHOTS * p) <= 5 * sigma + 1, (qc.name, key)
            assert abs(k.get(key, 0) - a.get(key, 0)) <= 5 * math.sqrt(2) * sigma + 1, (qc.name, key)
        # A chi-square check over the outcomes expected at least 5 times.
        big = [key for key, p in probs.items() if SHOTS * p >= 5]
        chi2 = sum((k.get(key, 0) - SHOTS * probs[key]) ** 2 / (SHOTS * probs[key]) for key in big)
        dof = max(len(big) - 1, 1)
        assert chi2 <= dof + 6 * math.sqrt(2 * dof) + 10, (qc.name, chi2, dof)


def test_random_statevectors(backend: KettleBackend, transpiled: list[QuantumCircuit]) -> None:
    from qiskit_kettle import save_statevector

    batch = []
    for qc in transpiled[:10]:
        bare = qc.remove_final_measurements(inplace=False)
        batch.append(save_statevector(bare))
    result = backend.run(batch).result()
    for i, (qc, original) in enumerate(zip(batch, circuits()[:10])):
        want = Statevector(original.remove_final_measurements(inplace=False))
        got = result.get_statevector(i)
        # Level-1 transpilation keeps the layout, and the global phase is exact.
        assert np.allclose(got.data, want.data, atol=1e-10, rtol=0), original.name
