"""KettleSamplerV2 and KettleEstimatorV2 against the real ``kettle serve``.

Exact references come from ``qiskit.quantum_info.Statevector``; sampled
results are checked with fixed seeds (so every run draws the same shots)
against bounds of five standard deviations or chi-square tests at
p = 1e-4.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter

import numpy as np
import pytest
import qiskit
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister, transpile
from qiskit.circuit import Instruction, Parameter, ParameterVector
from qiskit.primitives import StatevectorSampler
from qiskit.providers import JobStatus
from qiskit.quantum_info import Pauli, SparseObservable, SparsePauliOp, Statevector
from scipy.stats import chi2_contingency

from kettle_client import InvalidRequestError, JobCancelledError
from qiskit_kettle.convert import UnsupportedCircuitError
from qiskit_kettle.observables import NonHermitianObservableError, observable_to_pauli_sum
from qiskit_kettle.primitives import KettleEstimatorV2, KettleSamplerV2

#: Qiskit 2 (the pinned version) or 1.x (`run-tests.sh --qiskit1`).
QISKIT_2 = int(qiskit.__version__.split(".")[0]) >= 2

THETAS = np.linspace(-np.pi, np.pi, 20)


def ansatz(measure: bool) -> QuantumCircuit:
    """RY(θ) RZ(2θ) on 2 qubits, entangled: every outcome's probability
    changes with θ."""
    theta = Parameter("θ")
    qc = QuantumCircuit(2, name="ansatz")
    qc.ry(theta, 0)
    qc.h(1)
    qc.rz(2 * theta, 1)
    qc.cx(0, 1)
    qc.ry(theta / 2, 1)
    if measure:
        qc.measure_all()
    return qc


def exact_probabilities(circuit: QuantumCircuit) -> dict[str, float]:
    """Outcome probabilities of ``circuit`` (measurements removed)."""
    return Statevector(circuit.remove_final_measurements(inplace=False)).probabilities_dict()


def assert_counts_match(counts: dict[str, int], probs: dict[str, float], shots: int) -> None:
    assert sum(counts.values()) == shots
    for key in set(counts) | set(probs):
        p = probs.get(key, 0.0)
        observed = counts.get(key, 0) / shots
        bound = 5 * math.sqrt(max(p * (1 - p), 1e-12) / shots) + 1e-9
        assert abs(observed - p) <= bound, (key, observed, p)


@pytest.fixture
def submissions(backend, monkeypatch):
    """Records every submission the backend's client makes during a test."""
    calls: list[dict] = []
    real = backend.client.submit

    def spy(*args, **kwargs):
        job = real(*args, **kwargs)
        calls.append({"id": job.id, **kwargs})
        return job

    monkeypatch.setattr(backend.client, "submit", spy)
    return calls


# -- the 20-value sweep ---------------------------------------------------


def test_sampler_sweep_of_20_values_is_one_job(backend, client, submissions):
    qc = ansatz(measure=True)
    shots = 4000
    job = KettleSamplerV2(backend, seed=1234).run([(qc, THETAS)], shots=shots)
    result = job.result()
    assert len(submissions) == 1
    (ids,) = job.job_ids()
    assert ids == [submissions[0]["id"]]
    assert job.job_id() == ids[0]
    kettle_job = client.get(ids[0])
    assert kettle_job.executions == 20 and kettle_job.shots == shots
    pub = result[0]
    assert pub.data.meas.shape == (20,)
    assert pub.data.meas.num_shots == shots and pub.data.meas.num_bits == 2
    assert pub.metadata["shots"] == shots
    assert pub.metadata["kettle_job_ids"] == ids
    for i, theta in enumerate(THETAS):
        probs = exact_probabilities(qc.assign_parameters([theta]))
        assert_counts_match(pub.data.meas.get_counts(i), probs, shots)
    assert job.status() == JobStatus.DONE and job.done() and job.in_final_state()


def test_estimator_sweep_of_20_values_is_one_job_without_shots(backend, client, submissions):
    qc = ansatz(measure=False)
    obs = SparsePauliOp(["ZZ", "XI", "IY", "II"], [0.5, -1.25, 2.0, 0.75])
    job = KettleEstimatorV2(backend).run([(qc, obs, THETAS)])
    pub = job.result()[0]
    assert len(submissions) == 1
    assert submissions[0]["shots"] is None
    kettle_job = client.get(job.job_ids()[0][0])
    assert kettle_job.shots == 0 and kettle_job.executions == 20
    assert all(e.shots == 0 and e.counts is None for e in kettle_job.result.executions)
    assert pub.data.evs.shape == (20,)
    expected = [Statevector(qc.assign_parameters([t])).expectation_value(obs).real for t in THETAS]
    np.testing.assert_allclose(pub.data.evs, expected, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(pub.data.stds, np.zeros(20))
    assert pub.metadata["target_precision"] == 0.0 and pub.metadata["shots"] == 0


# -- Estimator: observables and broadcasting -------------------------------


def test_estimator_observable_kinds(backend):
    qc = QuantumCircuit(3)
    qc.h(0)
    qc.cx(0, 1)
    qc.ry(0.7, 2)
    qc.rx(-0.4, 1)
    qc.sdg(0)
    state = Statevector(qc)
    observables = [
        SparsePauliOp(["XXI", "IIZ", "III", "YZY"], [0.25, -1.5, 3.0, 1e-3]),
        SparsePauliOp(["ZII", "ZII", "XYI"], [1.0, 0.5, -0.5]),  # repeated term, simplified
        Pauli("-ZIY"),
        "IYX",
        {"ZZI": 2.0, "IXX": -0.5, "III": 1.0},
    ]
    if QISKIT_2:  # Qiskit 1.x's estimator PUBs take no SparseObservable
        observables.append(SparseObservable.from_label("0+r"))  # projectors, expanded into Paulis
    pub = KettleEstimatorV2(backend).run([(qc, observables)]).result()[0]
    assert pub.data.evs.shape == (len(observables),)
    expected = [
        state.expectation_value(SparsePauliOp(observables[0])).real,
        state.expectation_value(observables[1]).real,
        state.expectation_value(Pauli("-ZIY")).real,
        state.expectation_value(Pauli("IYX")).real,
        state.expectation_value(SparsePauliOp(["ZZI", "IXX", "III"], [2.0, -0.5, 1.0])).real,
    ]
    if QISKIT_2:
        # ⟨ψ| |0⟩⟨0| ⊗ |+⟩⟨+| ⊗ |r⟩⟨r| |ψ⟩, with qubit 0 the rightmost factor.
        plus, right = np.array([1, 1]) / math.sqrt(2), np.array([1, 1j]) / math.sqrt(2)
        projected = np.kron(np.kron([1, 0], plus), right).conj() @ state.data
        expected.append(abs(projected) ** 2)
    np.testing.assert_allclose(pub.data.evs, expected, rtol=0, atol=1e-10)


def test_estimator_broadcasts_observables_against_parameters(backend, submissions):
    qc = ansatz(measure=False)
    observables = [[SparsePauliOp(["XX", "IY"], [0.5, 0.5])], [Pauli("XX")], ["IY"]]  # shape (3, 1)
    pub = KettleEstimatorV2(backend).run([(qc, observables, THETAS)]).result()[0]
    assert pub.data.evs.shape == (3, 20) and pub.data.stds.shape == (3, 20)
    assert len(submissions) == 1
    # Each distinct observable is sent once: "XX" and "IY" are shared terms,
    # but the three observables differ.
    (rt,) = submissions[0]["result_types"]
    assert len(rt["expectation"]) == 3
    ops = [SparsePauliOp(["XX", "IY"], [0.5, 0.5]), SparsePauliOp("XX"), SparsePauliOp("IY")]
    for j, theta in enumerate(THETAS):
        state = Statevector(qc.assign_parameters([theta]))
        for i, op in enumerate(ops):
            assert abs(pub.data.evs[i, j] - state.expectation_value(op).real) < 1e-10


def test_estimator_elementwise_and_2d_shapes_and_repeated_bindings(backend, client, submissions):
    a, b = Parameter("a"), Parameter("b")
    qc = QuantumCircuit(2)
    qc.rx(a, 0)
    qc.ry(b, 1)
    qc.cz(0, 1)
    qc.rx(a - b, 1)
    values = np.array([[[0.1, 0.2], [0.3, 0.4], [0.1, 0.2]], [[1.0, -1.0], [0.3, 0.4], [2.0, 0.5]]])  # (2, 3, 2)
    observables = ["ZI", "IZ", "XX"]  # (3,): broadcasts along the last axis
    pub = KettleEstimatorV2(backend).run([(qc, observables, values)]).result()[0]
    assert pub.data.evs.shape == (2, 3)
    # 6 value sets, 2 of them repeated: 4 executions in one job.
    assert client.get(submissions[0]["id"]).executions == 4
    for idx in np.ndindex(2, 3):
        state = Statevector(qc.assign_parameters(values[idx]))
        expected = state.expectation_value(SparsePauliOp(observables[idx[1]])).real
        assert abs(pub.data.evs[idx] - expected) < 1e-10


def test_estimator_zipped_observables_on_a_large_state_split_by_observable(backend, submissions):
    """Observables zipped element-wise with 20 parameter sets on 16 qubits:
    computing all 20 for each of the 20 states would waste 380 passes over
    65,536 amplitudes, so each execution goes with its own observable."""
    n = 16
    theta = Parameter("t")
    qc = QuantumCircuit(n)
    qc.h(range(n))
    for q in range(n):
        qc.ry(theta * (q + 1), q)
    for q in range(n - 1):
        qc.cx(q, q + 1)
    observables = [SparsePauliOp.from_sparse_list([("ZX", [k % n, (k + 3) % n], 1.0 + k)], n) for k in range(20)]
    pub = KettleEstimatorV2(backend).run([(qc, observables, THETAS)]).result()[0]
    assert len(submissions) == 20
    assert all(len(s["result_types"][0]["expectation"]) == 1 for s in submissions)
    for k in range(20):
        exact = Statevector(qc.assign_parameters([THETAS[k]])).expectation_value(observables[k]).real
        assert abs(pub.data.evs[k] - exact) < 1e-10


def test_estimator_several_pubs_parameter_vector_and_transpiled_circuit(backend):
    v = ParameterVector("v", 3)
    qc = QuantumCircuit(3)
    for q in range(3):
        qc.ry(v[q], q)
    qc.cx(0, 1)
    qc.cx(1, 2)
    qc.rz(v[0] * v[1], 2)
    custom = QuantumCircuit(1, name="custom")
    custom.h(0)
    custom.s(0)
    qc.append(custom.to_gate(), [0])
    isa = transpile(qc, backend, optimization_level=1, seed_transpiler=1)
    obs = SparsePauliOp(["ZZZ", "XIX"], [1.0, 0.5])
    rng = np.random.default_rng(5)
    values = rng.uniform(-np.pi, np.pi, size=(7, 3))
    estimator = KettleEstimatorV2(backend)
    result = estimator.run(
        [(isa, obs.apply_layout(isa.layout), values), (ansatz(False), "ZZ", 0.3)]
    ).result()  # fmt: skip
    assert result[0].data.evs.shape == (7,) and result[1].data.evs.shape == ()
    for i in range(7):
        exact = Statevector(qc.assign_parameters(values[i])).expectation_value(obs).real
        assert abs(result[0].data.evs[i] - exact) < 1e-10
    exact = Statevector(ansatz(False).assign_parameters([0.3])).expectation_value(SparsePauliOp("ZZ")).real
    assert abs(float(result[1].data.evs) - exact) < 1e-10


def test_estimator_final_measurements_are_ignored(backend):
    # Values come from the state before the final measurements.
    pub = KettleEstimatorV2(backend).run([(ansatz(measure=True), "ZX", [0.9])]).result()[0]
    exact = Statevector(ansatz(False).assign_parameters([0.9])).expectation_value(Pauli("ZX")).real
    assert pub.data.evs.shape == ()
    assert abs(float(pub.data.evs) - exact) < 1e-10


def test_estimator_precision_adds_seeded_noise(backend):
    qc = ansatz(measure=False)
    est = KettleEstimatorV2(backend, default_precision=0.05, seed=11)
    first = est.run([(qc, "ZZ", THETAS)]).result()[0]
    again = est.run([(qc, "ZZ", THETAS)]).result()[0]
    exact = np.array([Statevector(qc.assign_parameters([t])).expectation_value(Pauli("ZZ")).real for t in THETAS])
    np.testing.assert_array_equal(first.data.evs, again.data.evs)
    np.testing.assert_array_equal(first.data.stds, np.full(20, 0.05))
    assert first.metadata["target_precision"] == 0.05
    diff = first.data.evs - exact
    assert np.all(np.abs(diff) < 5 * 0.05) and np.any(diff != 0)
    exact_run = est.run([(qc, "ZZ", THETAS)], precision=0.0).result()[0]
    np.testing.assert_allclose(exact_run.data.evs, exact, rtol=0, atol=1e-10)


# -- Sampler -----------------------------------------------------------------


def test_sampler_two_registers(backend):
    q = QuantumRegister(3, "q")
    alpha = ClassicalRegister(2, "alpha")
    beta = ClassicalRegister(3, "beta")
    qc = QuantumCircuit(q, alpha, beta)
    qc.x(0)
    qc.h(2)
    qc.measure(0, alpha[1])  # alpha = "10"
    qc.measure(1, alpha[0])
    qc.measure(2, beta[0])  # beta = "00?" with ? random
    qc.x(1)
    qc.measure(1, beta[2])  # beta = "10?"
    shots = 500
    pub = KettleSamplerV2(backend, seed=3).run([qc], shots=shots).result()[0]
    assert set(pub.data.keys()) == {"alpha", "beta"}
    assert pub.data.alpha.num_bits == 2 and pub.data.beta.num_bits == 3
    assert pub.data.alpha.num_shots == shots and pub.data.beta.num_shots == shots
    assert pub.data.alpha.shape == () and pub.data.beta.shape == ()
    assert pub.data.alpha.get_counts() == {"10": shots}
    beta = pub.data.beta.get_counts()
    assert set(beta) == {"100", "101"} and sum(beta.values()) == shots
    assert abs(beta["101"] - shots / 2) < 5 * math.sqrt(shots / 4)
    joined = pub.join_data().get_counts()
    assert set(joined) == {"10010", "10110"}
    # Shot i of each register comes from the same shot.
    bits_a = pub.data.alpha.get_bitstrings()
    bits_b = pub.data.beta.get_bitstrings()
    assert Counter(b + a for a, b in zip(bits_a, bits_b)) == Counter(joined)


def test_sampler_matches_statevector_sampler(backend):
    rng = np.random.default_rng(2024)
    p = ParameterVector("p", 4)
    qc = QuantumCircuit(3, 3)
    qc.h(range(3))
    qc.crx(p[0], 0, 1)
    qc.ry(p[1], 2)
    qc.cx(2, 0)
    qc.rzz(p[2], 0, 2)
    qc.u(p[3], 0.3, -0.2, 1)
    qc.ccx(0, 1, 2)
    qc.measure(range(3), range(3))
    values = rng.uniform(0, 2 * np.pi, size=(3, 4))
    shots = 3000
    ours = KettleSamplerV2(backend, seed=99).run([(qc, values)], shots=shots).result()[0]
    ref = StatevectorSampler(seed=99).run([(qc, values)], shots=shots).result()[0]
    assert ours.data.c.shape == ref.data.c.shape == (3,)
    for i in range(3):
        a, b = ours.data.c.get_counts(i), ref.data.c.get_counts(i)
        keys = sorted(set(a) | set(b))
        table = np.array([[a.get(k, 0) for k in keys], [b.get(k, 0) for k in keys]])
        table = table[:, table.sum(axis=0) > 0]
        if table.shape[1] > 1:
            assert chi2_contingency(table).pvalue > 1e-4
        assert_counts_match(a, exact_probabilities(qc.assign_parameters(values[i])), shots)


@pytest.mark.parametrize("source", ["memory", "counts"])
def test_sampler_shot_order_from_memory_or_counts(backend, source):
    """Without the server's ``memory`` the shots are counts put in a seeded
    random order; either way consecutive shots are independent."""
    qc = QuantumCircuit(1, 1)
    qc.h(0)
    qc.measure(0, 0)
    sampler = KettleSamplerV2(backend, seed=5)
    info = sampler._kettle._server()
    if source == "memory" and "memory" not in info.result_types:
        pytest.skip("this server does not list memory")
    if source == "counts":
        without = [t for t in info.result_types if t != "memory"]
        sampler._kettle._info = dataclasses.replace(info, result_types=without)
    shots = 4000
    data = sampler.run([qc], shots=shots).result()[0].data.c
    bits = [int(b) for b in data.get_bitstrings()]
    assert abs(sum(bits) - shots / 2) < 5 * math.sqrt(shots / 4)
    runs = 1 + sum(1 for x, y in zip(bits, bits[1:]) if x != y)
    # Wald-Wolfowitz: about shots/2 + 1 runs for independent fair bits.
    assert abs(runs - (shots / 2 + 1)) < 5 * math.sqrt(shots / 4)


def test_sampler_seed_reproducibility(backend):
    qc = ansatz(measure=True)
    values = THETAS[:5]
    first = KettleSamplerV2(backend, seed=42).run([(qc, values)], shots=300).result()[0]
    again = KettleSamplerV2(backend, seed=42).run([(qc, values)], shots=300).result()[0]
    other = KettleSamplerV2(backend, seed=43).run([(qc, values)], shots=300).result()[0]
    np.testing.assert_array_equal(first.data.meas.array, again.data.meas.array)
    assert not np.array_equal(first.data.meas.array, other.data.meas.array)
    # Executions have consecutive seeds, so repeated value sets still draw
    # their own shots.
    same = KettleSamplerV2(backend, seed=42).run([(qc, [0.5, 0.5])], shots=300).result()[0]
    assert same.metadata["seeds"] == [42, 43]
    assert not np.array_equal(same.data.meas.array[0], same.data.meas.array[1])
    unseeded = [KettleSamplerV2(backend).run([(qc, values)], shots=300).result()[0] for _ in range(2)]
    assert not np.array_equal(unseeded[0].data.meas.array, unseeded[1].data.meas.array)


def test_sampler_several_pubs_shots_and_shapes(backend):
    bell = QuantumCircuit(2, 2)
    bell.h(0)
    bell.cx(0, 1)
    bell.measure([0, 1], [0, 1])
    qc = ansatz(measure=True)
    idle = QuantumCircuit(1, 1)  # measures nothing: all-zero bits
    sampler = KettleSamplerV2(backend, default_shots=256, seed=8)
    job = sampler.run([(bell, None, 100), (qc, THETAS.reshape(4, 5)), idle])
    res = job.result()
    assert len(job.job_ids()) == 3 and all(len(ids) == 1 for ids in job.job_ids())
    assert res[0].data.c.num_shots == 100 and set(res[0].data.c.get_counts()) <= {"00", "11"}
    assert res[1].data.meas.shape == (4, 5) and res[1].data.meas.num_shots == 256
    assert res[1].metadata["shots"] == 256
    assert res[2].data.c.get_counts() == {"0": 256}
    assert res.metadata["version"] == 2


def test_sampler_mid_circuit_measurement_and_reset(backend):
    qc = QuantumCircuit(2, 3)
    qc.h(0)
    qc.measure(0, 0)
    qc.reset(0)
    qc.cx(0, 1)  # q0 is |0>: q1 stays |0>
    with qc.if_test((qc.clbits[0], 1)):
        qc.x(1)
    qc.measure(0, 1)
    qc.measure(1, 2)
    counts = KettleSamplerV2(backend, seed=4).run([qc], shots=1000).result()[0].data.c.get_counts()
    assert set(counts) == {"000", "101"}


def test_parameter_only_in_the_global_phase(backend, client, submissions):
    phi, theta = Parameter("phi"), Parameter("theta")
    qc = QuantumCircuit(1, global_phase=phi)
    qc.rx(theta, 0)
    values = [[0.1, 0.4], [0.2, 0.4], [0.3, 1.0]]  # (phi, theta): 2 distinct thetas
    evs = KettleEstimatorV2(backend).run([(qc, "Z", values)]).result()[0].data.evs
    np.testing.assert_allclose(evs, np.cos([0.4, 0.4, 1.0]), rtol=0, atol=1e-10)
    assert client.get(submissions[0]["id"]).executions == 2
    # Only in the phase: no inputs at all, one job per value set.
    only = QuantumCircuit(1, 1, global_phase=phi)
    only.x(0)
    only.measure(0, 0)
    pub = KettleSamplerV2(backend, seed=2).run([(only, [[0.1], [0.2], [0.3]])], shots=50).result()[0]
    assert pub.data.c.shape == (3,)
    assert all(pub.data.c.get_counts(i) == {"1": 50} for i in range(3))
    assert pub.metadata["seeds"] == [2, 3, 4]


def test_sweep_beyond_max_executions_is_split_with_the_same_seeds(backend, client, submissions):
    limit = backend.info.limits.max_executions
    values = np.linspace(0, 1, limit + 7)
    theta = Parameter("t")
    qc = QuantumCircuit(1)
    qc.ry(theta, 0)
    est = KettleEstimatorV2(backend).run([(qc, "Z", values)])
    ids = est.job_ids()[0]
    assert len(ids) == 2 and len(submissions) == 2
    assert [client.get(i).executions for i in ids] == [limit, 7]
    np.testing.assert_allclose(est.result()[0].data.evs, np.cos(values), rtol=0, atol=1e-10)
    # Sampler: the seeds of the executions do not depend on the split.
    qm = qc.copy()
    qm.measure_all()
    pub = KettleSamplerV2(backend, seed=10).run([(qm, values)], shots=8).result()[0]
    assert pub.metadata["seeds"] == [10 + k for k in range(limit + 7)]
    assert len(pub.metadata["kettle_job_ids"]) == 2


# -- errors and cancelling ---------------------------------------------------


def test_observable_on_a_qubit_the_circuit_lacks(backend):
    qc = QuantumCircuit(2)
    qc.h(0)
    est = KettleEstimatorV2(backend)
    with pytest.raises(ValueError, match="number of qubits"):
        est.run([(qc, "ZII")])
    with pytest.raises(ValueError, match="acts on qubit 2, but the circuit has 2 qubits"):
        observable_to_pauli_sum(SparsePauliOp.from_sparse_list([("Z", [2], 1.0)], 3), num_qubits=2)


def test_non_hermitian_observable(backend):
    qc = QuantumCircuit(2)
    with pytest.raises(ValueError, match="Non-Hermitian|not Hermitian"):
        KettleEstimatorV2(backend).run([(qc, SparsePauliOp(["XY"], [1j]))])
    with pytest.raises(NonHermitianObservableError, match="complex weight"):
        observable_to_pauli_sum(SparsePauliOp(["XY", "ZZ"], [0.5 + 0.25j, 1.0]))


def test_pauli_sum_text():
    assert observable_to_pauli_sum("XIZ") == "1.0*Z0 X2"
    assert observable_to_pauli_sum(SparsePauliOp(["II", "ZX"], [-2.0, 0.5])) == "-2.0 + 0.5*X0 Z1"
    assert observable_to_pauli_sum({"YY": 1e-7, "ZI": -3}) == "1e-07*Y0 Y1 - 3.0*Z1"
    assert observable_to_pauli_sum(SparsePauliOp(["X", "X"], [1.0, -1.0])) == "0.0"


def test_circuit_with_an_instruction_kettle_cannot_run(backend):
    qc = QuantumCircuit(1, 1)
    qc.append(Instruction("mystery", 1, 0, []), [0])
    qc.measure(0, 0)
    with pytest.raises(UnsupportedCircuitError, match="mystery"):
        KettleSamplerV2(backend).run([qc])
    with pytest.raises(UnsupportedCircuitError, match="mystery"):
        KettleEstimatorV2(backend).run([(qc.remove_final_measurements(inplace=False), "Z")])


def test_server_refusal_is_raised_at_run_and_cancels_earlier_pubs(backend, client, submissions):
    good = ansatz(measure=False)
    bad = QuantumCircuit(1, 1)
    bad.h(0)
    bad.measure(0, 0)
    bad.x(0)  # a mid-circuit measurement: no expectation values
    with pytest.raises(InvalidRequestError, match="final"):
        KettleEstimatorV2(backend).run([(good, "ZZ", THETAS), (bad, "Z")])
    assert len(submissions) == 1  # the good PUB's job, cancelled (or already done)
    # A running job stops at its next gate: it may read `running` for a moment.
    assert client.wait(submissions[0]["id"], timeout=30).status in ("cancelled", "completed")


def test_cancel(backend, client):
    n = 18
    qc = QuantumCircuit(n)
    t = Parameter("t")
    for layer in range(60):
        for q in range(n):
            qc.rx(t * (q + 1) + layer, q)
        for q in range(layer % 2, n - 1, 2):
            qc.cx(q, q + 1)
    qc.measure_all()
    job = KettleSamplerV2(backend, seed=1).run([(qc, np.linspace(0, 1, 200))], shots=10)
    assert job.cancel() is True
    kettle_id = job.job_ids()[0][0]
    final = client.wait(kettle_id, timeout=60)
    assert final.status == "cancelled"
    assert job.status() == JobStatus.CANCELLED and job.cancelled() and job.in_final_state()
    with pytest.raises(JobCancelledError):
        job.result()


def test_aer_options_dicts_work_or_are_refused_by_name(backend):
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    aer_style = {
        "default_shots": 50,
        "backend_options": {"precision": "single", "method": "statevector", "noise_model": None},
        "run_options": {"seed_simulator": 3},
    }
    sampler = KettleSamplerV2(backend, options=aer_style)
    counts = sampler.run([qc]).result()[0].data.meas.get_counts()
    assert sum(counts.values()) == 50 and set(counts) <= {"00", "11"}
    again = KettleSamplerV2(backend, options=aer_style).run([qc]).result()[0].data.meas.get_counts()
    assert again == counts, "seed_simulator seeds the run"
    estimator = KettleEstimatorV2(backend, options={"default_precision": 0.0, "run_options": {"seed_simulator": 1}})
    plain = QuantumCircuit(2)
    plain.h(0)
    plain.cx(0, 1)
    value = estimator.run([(plain, SparsePauliOp("ZZ"))]).result()[0].data.evs
    assert abs(float(value) - 1.0) < 1e-6
    for bad, name in [
        ({"backend_options": {"method": "matrix_product_state"}}, "matrix_product_state"),
        ({"backend_options": {"fusion_enable": True}}, "fusion_enable"),
        ({"run_options": {"shots": 5}}, "shots"),
        ({"transpilation": {}}, "transpilation"),
    ]:
        with pytest.raises(ValueError, match=name):
            KettleSamplerV2(backend, options=bad)
    with pytest.raises(TypeError, match="noise_model"):
        KettleSamplerV2(backend, options={"backend_options": {"noise_model": object()}})


def test_estimator_gradients_match_the_parameter_shift_rule(backend, submissions):
    """``gradients=True``: exact derivatives by every circuit parameter from
    the server's adjoint method, in ``circuit.parameters`` order, checked
    against the parameter-shift rule run on the same estimator (each
    parameter sets one rotation's angle, so the rule is exact) to 1e-10."""
    a, b, c = Parameter("a"), Parameter("b"), Parameter("c")
    qc = QuantumCircuit(3)
    qc.h(0)
    qc.rx(a, 0)
    qc.cx(0, 1)
    qc.ry(b, 1)
    qc.crz(c, 1, 2)
    qc.h(2)
    observables = [SparsePauliOp.from_list([("IZZ", 1.0), ("XII", 0.5)]), SparsePauliOp("ZIY")]
    points = np.array([[0.37, -1.21, 2.05], [1.0, 0.5, -0.25]])
    est = KettleEstimatorV2(backend, gradients=True)
    pub = est.run([(qc, [[o] for o in observables], points)]).result()[0]
    assert pub.data.evs.shape == (2, 2)
    assert pub.data.gradients.shape == (2, 2, 3)
    # One job: the values and the gradients come together.
    assert len(submissions) == 1
    assert "adjoint_gradient" in str(submissions[0]["result_types"])
    plain = KettleEstimatorV2(backend)
    np.testing.assert_allclose(pub.data.evs, plain.run([(qc, [[o] for o in observables], points)]).result()[0].data.evs, atol=1e-14)
    shifted = []
    for p in points:
        for k in range(3):
            for s in (np.pi / 2, -np.pi / 2):
                q = p.copy()
                q[k] += s
                shifted.append(q)
    evs = plain.run([(qc, [[o] for o in observables], np.array(shifted))]).result()[0].data.evs
    evs = evs.reshape(2, 2, 3, 2)  # (observable, point, parameter, ±)
    for o in range(2):
        for i in range(2):
            want = [(evs[o, i, k, 0] - evs[o, i, k, 1]) / 2 for k in range(3)]
            np.testing.assert_allclose(pub.data.gradients[o, i], want, rtol=0, atol=1e-10)


def test_estimator_gradients_through_expressions_and_the_global_phase(backend):
    """Parameters inside expressions (2θ, θ/2) get the chain rule; one only
    in the global phase has derivative 0. Checked against a five-point
    finite difference of Statevector expectation values."""
    qc = ansatz(measure=False)
    phi = Parameter("φ")
    qc.global_phase = phi
    op = SparsePauliOp.from_list([("ZX", 1.0), ("YY", -0.3)])
    pub = KettleEstimatorV2(backend, gradients=True).run([(qc, op, [[0.4, 0.9]])]).result()[0]
    names = [p.name for p in qc.parameters]
    assert pub.data.gradients.shape == (1, 2)
    theta = names.index("θ")

    def value(t: float) -> float:
        bound = qc.assign_parameters({p: (t if p.name == "θ" else 0.9) for p in qc.parameters})
        return float(np.real(Statevector(bound).expectation_value(op)))

    h = 1e-3
    fd = (-value(0.4 + 2 * h) + 8 * value(0.4 + h) - 8 * value(0.4 - h) + value(0.4 - 2 * h)) / (12 * h)
    assert abs(pub.data.gradients[0, theta] - fd) < 1e-9
    assert pub.data.gradients[0, names.index("φ")] == 0.0
