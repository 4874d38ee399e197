"""Noise models (issue 18): Qiskit Aer's ``NoiseModel`` run on Kettle,
against Aer with the same model.

The references are exact where Aer gives them exactly: its density-matrix
method's probabilities (``save_probabilities_dict`` on the circuit without
its final measurements, readout errors then applied to them, which is what
Aer does to the bits a measurement records) and density matrices for
expectation values. Kettle's density-matrix results must equal them to
1e-10; its sampled counts (either method) must pass a chi-square test
against them. Where a model puts quantum errors on ``measure`` or ``reset``
(which an exact reference would have to re-implement), Kettle's counts
are compared with Aer's own counts by a two-sample chi-square test. Every
seed is fixed, so every run draws the same samples.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import numpy as np
import pytest

qiskit_aer = pytest.importorskip("qiskit_aer")

from qiskit import QuantumCircuit, transpile  # noqa: E402
from qiskit.circuit.library import RXGate  # noqa: E402
from qiskit.circuit.random import random_circuit  # noqa: E402
from qiskit.quantum_info import DensityMatrix, SparsePauliOp  # noqa: E402
from qiskit_aer import AerSimulator  # noqa: E402
from qiskit_aer.noise import (  # noqa: E402
    NoiseModel,
    ReadoutError,
    amplitude_damping_error,
    coherent_unitary_error,
    depolarizing_error,
    pauli_error,
    phase_amplitude_damping_error,
    phase_damping_error,
    thermal_relaxation_error,
)

from kettle_client import ExecutionResult, Expectation, InvalidRequestError, Job, KettleClient  # noqa: E402
from kettle_client.models import Backend  # noqa: E402
from qiskit_kettle import KettleBackend, UnsupportedCircuitError, circuit_to_program, save_statevector  # noqa: E402
from qiskit_kettle.noise import fit_circuit, restrict_noise  # noqa: E402
from qiskit_kettle.primitives import KettleEstimatorV2, KettleSamplerV2  # noqa: E402

SHOTS = 20_000
ONE_QUBIT = ["x", "sx", "h", "ry", "rx", "rz", "u"]


# --------------------------------------------------------------------------
# Noise models and circuits
# --------------------------------------------------------------------------


def depolarizing_model() -> NoiseModel:
    nm = NoiseModel()
    nm.add_all_qubit_quantum_error(depolarizing_error(0.05, 1), ONE_QUBIT)
    nm.add_all_qubit_quantum_error(depolarizing_error(0.08, 2), ["cx"])
    # A local error replaces the all-qubit one on its qubits, as on Aer.
    nm.add_quantum_error(depolarizing_error(0.3, 1), ["h"], [1])
    return nm


def damping_model() -> NoiseModel:
    nm = NoiseModel()
    nm.add_quantum_error(amplitude_damping_error(0.3), ["x", "sx", "ry"], [0])
    nm.add_quantum_error(amplitude_damping_error(0.15, excited_state_population=0.2), ["x", "sx", "ry"], [1])
    nm.add_quantum_error(phase_damping_error(0.25), ["h"], [2])
    pad = phase_amplitude_damping_error(0.1, 0.2)
    nm.add_all_qubit_quantum_error(pad.tensor(pad), ["cx"])
    # A coherent over-rotation (a unitary channel).
    nm.add_quantum_error(coherent_unitary_error(RXGate(0.2).to_matrix()), ["rx"], [2])
    return nm


def thermal_model() -> NoiseModel:
    t1 = [50e3, 70e3, 40e3]
    t2 = [70e3, 50e3, 60e3]
    nm = NoiseModel()
    for q in range(3):
        pop = 0.1 if q == 2 else 0.0
        nm.add_quantum_error(
            thermal_relaxation_error(t1[q], t2[q], 2000.0, excited_state_population=pop), ONE_QUBIT, [q]
        )
    for a, b in [(0, 1), (1, 0), (1, 2), (2, 1), (0, 2), (2, 0)]:
        # Qiskit's error on (a, b): qubit a is the error's qubit 0 (expand).
        err = thermal_relaxation_error(t1[a], t2[a], 6000.0).expand(thermal_relaxation_error(t1[b], t2[b], 6000.0))
        nm.add_quantum_error(err, ["cx"], [a, b])
    return nm


def readout_model() -> NoiseModel:
    nm = depolarizing_model()
    nm.add_all_qubit_readout_error(ReadoutError([[0.97, 0.03], [0.06, 0.94]]))
    nm.add_readout_error(ReadoutError([[0.8, 0.2], [0.1, 0.9]]), [0])
    nm.add_readout_error(ReadoutError([[0.99, 0.01], [0.3, 0.7]]), [2])
    return nm


MODELS = {
    "depolarizing": depolarizing_model,
    "damping": damping_model,
    "thermal": thermal_model,
    "readout": readout_model,
}


def ghz_rotations() -> QuantumCircuit:
    qc = QuantumCircuit(3, name="ghz_rotations")
    qc.h(0)
    qc.cx(0, 1)
    qc.cx(1, 2)
    qc.ry(0.7, 1)
    qc.rx(0.4, 2)
    qc.x(0)
    qc.sx(2)
    qc.h(1)
    qc.cx(2, 0)
    qc.measure_all()
    return qc


def excitations() -> QuantumCircuit:
    qc = QuantumCircuit(3, name="excitations")
    qc.x(0)
    qc.x(1)
    qc.sx(1)
    qc.h(2)
    qc.rx(1.1, 2)
    qc.ry(0.3, 0)
    qc.cx(0, 2)
    qc.x(0)
    qc.measure_all()
    return qc


CIRCUITS = {"ghz_rotations": ghz_rotations, "excitations": excitations}


def final_measurements(qc: QuantumCircuit) -> list[tuple[int, int]]:
    """(qubit, clbit) of each measurement, all of which must be final."""
    pairs = []
    seen: set[int] = set()
    for inst in reversed(qc.data):
        name = inst.operation.name
        qubits = [qc.find_bit(q).index for q in inst.qubits]
        if name == "measure":
            assert not seen.intersection(qubits), "measurements must be final"
            pairs.append((qubits[0], qc.find_bit(inst.clbits[0]).index))
        elif name != "barrier":
            seen.update(qubits)
    return sorted(pairs, key=lambda p: p[1])


def readout_matrices(nm: NoiseModel | None, qubits: list[int]) -> list[np.ndarray | None]:
    """Each qubit's one-qubit readout error (its own, else the model's
    default), as P[true][recorded], from the model's dict."""
    if nm is None:
        return [None] * len(qubits)
    default = None
    local: dict[int, np.ndarray] = {}
    for error in nm.to_dict(serializable=True)["errors"]:
        if error["type"] != "roerror":
            continue
        probs = np.asarray(error["probabilities"], dtype=float)
        assert probs.shape == (2, 2), "one-qubit readout errors only"
        if "gate_qubits" in error:
            for (q,) in error["gate_qubits"]:
                local[q] = probs
        else:
            default = probs
    return [local.get(q, default) for q in qubits]


def exact_distribution(qc: QuantumCircuit, nm: NoiseModel | None) -> dict[str, float]:
    """The exact distribution of the recorded bits on Aer's density-matrix
    method: the probabilities of the measured qubits before the final
    measurements, then each qubit's readout error."""
    pairs = final_measurements(qc)
    qubits = [q for q, _ in pairs]
    bare = qc.remove_final_measurements(inplace=False)
    bare.save_probabilities(qubits)
    sim = AerSimulator(method="density_matrix", noise_model=nm)
    probs = np.asarray(sim.run(bare, shots=1, seed_simulator=1).result().data(0)["probabilities"], dtype=float)
    for j, matrix in enumerate(readout_matrices(nm, qubits)):
        if matrix is None:
            continue
        # Axis j of the probability tensor (bit j of the index) is qubit j's.
        tensor = probs.reshape([2] * len(qubits))
        axis = len(qubits) - 1 - j
        tensor = np.moveaxis(np.tensordot(matrix.T, np.moveaxis(tensor, axis, 0), axes=1), 0, axis)
        probs = tensor.reshape(-1)
    out: dict[str, float] = {}
    for index, p in enumerate(probs):
        if p <= 1e-15:
            continue
        bits = ["0"] * qc.num_clbits
        for j, (_, clbit) in enumerate(pairs):
            bits[qc.num_clbits - 1 - clbit] = "1" if index >> j & 1 else "0"
        key = "".join(bits)
        out[key] = out.get(key, 0.0) + float(p)
    return out


def renormalized_density_matrix(qc: QuantumCircuit, nm: NoiseModel) -> DensityMatrix:
    """The final state of a circuit of gates, each followed by its error
    with Aer's threshold: the error's circuits of probability at most 1e-10
    left out and the others' probabilities renormalised (what Aer samples
    from). Aer's density-matrix method leaves them out without
    renormalising (its state then has trace 1 - the mass left out: about
    1.3e-9 per ``cx`` of FakeManilaV2's model); Kettle renormalises."""
    from qiskit.quantum_info import SuperOp

    def channel(error: Any) -> SuperOp:
        kept = [(c, p) for c, p in zip(error.circuits, error.probabilities) if p > 1e-10]
        total = sum(p for _, p in kept)
        return SuperOp(sum(p / total * SuperOp(c).data for c, p in kept))

    rho = DensityMatrix.from_label("0" * qc.num_qubits)
    for inst in qc.remove_final_measurements(inplace=False).data:
        if inst.operation.name == "barrier":
            continue
        qubits = [qc.find_bit(q).index for q in inst.qubits]
        rho = rho.evolve(inst.operation, qubits)
        name = inst.operation.name
        error = nm._local_quantum_errors.get(name, {}).get(tuple(qubits), nm._default_quantum_errors.get(name))
        if error is not None:
            rho = rho.evolve(channel(error), qubits)
    return rho


def exact_density_matrix(qc: QuantumCircuit, nm: NoiseModel | None) -> DensityMatrix:
    bare = qc.remove_final_measurements(inplace=False)
    bare.save_density_matrix()
    sim = AerSimulator(method="density_matrix", noise_model=nm)
    return DensityMatrix(sim.run(bare, shots=1, seed_simulator=1).result().data(0)["density_matrix"])


# --------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------


def chi2_bound(dof: int) -> float:
    """A bound a chi-square statistic of ``dof`` degrees of freedom exceeds
    with probability far below 1e-6 (mean + 6 standard deviations + 10)."""
    return dof + 6 * math.sqrt(2 * dof) + 10


def assert_counts_match(counts: Mapping[str, int], probs: Mapping[str, float], shots: int, what: str) -> None:
    """Counts against exact probabilities: every outcome possible, each
    within 5 sigma (+1), and a chi-square test over the outcomes expected at
    least 5 times (the rest pooled)."""
    assert sum(counts.values()) == shots, what
    assert set(counts) <= {k for k, p in probs.items() if p > 1e-12}, (what, set(counts) - set(probs))
    for key, p in probs.items():
        sigma = math.sqrt(shots * p * (1 - p))
        assert abs(counts.get(key, 0) - shots * p) <= 5 * sigma + 1, (what, key, counts.get(key, 0), shots * p)
    big = [k for k, p in probs.items() if shots * p >= 5]
    chi2 = sum((counts.get(k, 0) - shots * probs[k]) ** 2 / (shots * probs[k]) for k in big)
    rest_p = 1.0 - sum(probs[k] for k in big)
    dof = len(big) - 1
    if shots * rest_p >= 5:
        rest = shots - sum(counts.get(k, 0) for k in big)
        chi2 += (rest - shots * rest_p) ** 2 / (shots * rest_p)
        dof += 1
    assert chi2 <= chi2_bound(max(dof, 1)), (what, chi2, dof)
    # And the total variation distance, for a readable failure.
    tv = 0.5 * sum(abs(counts.get(k, 0) / shots - probs.get(k, 0.0)) for k in set(counts) | set(probs))
    assert tv <= 5 * math.sqrt(len(probs) / shots), (what, tv)


def assert_samples_agree(ours: Mapping[str, int], theirs: Mapping[str, int], what: str) -> None:
    """Two samples of the same size from one distribution: the two-sample
    chi-square statistic over the outcomes seen at least 10 times in all
    (the rest pooled)."""
    n = sum(ours.values())
    assert n == sum(theirs.values()), what
    keys = set(ours) | set(theirs)
    big = [k for k in keys if ours.get(k, 0) + theirs.get(k, 0) >= 10]
    small = [k for k in keys if k not in big]
    cells = [(ours.get(k, 0), theirs.get(k, 0)) for k in big]
    pooled = (sum(ours.get(k, 0) for k in small), sum(theirs.get(k, 0) for k in small))
    if sum(pooled) >= 10:
        cells.append(pooled)
    chi2 = sum((a - b) ** 2 / (a + b) for a, b in cells)
    assert chi2 <= chi2_bound(max(len(cells) - 1, 1)), (what, chi2, len(cells))


# --------------------------------------------------------------------------
# The client, against a fake server (no noise support needed)
# --------------------------------------------------------------------------


def test_models_read_method_std_error_methods_and_channels() -> None:
    ex = ExecutionResult.from_dict(
        {
            "seed": 1,
            "shots": 100,
            "method": "statevector",
            "expectations": [{"observable": "Z0", "value": 0.5, "std_error": 0.01}],
        }
    )
    assert ex.method == "statevector"
    assert ex.expectations == [Expectation("Z0", 0.5, 0.01)]
    old = ExecutionResult.from_dict({"seed": 1, "shots": 0, "expectations": [{"observable": "Z0", "value": 1.0}]})
    assert old.method is None and old.expectations is not None and old.expectations[0].std_error == 0.0
    info = Backend.from_dict(
        {
            "name": "kettle",
            "methods": ["automatic", "statevector", "density_matrix"],
            "channels": ["kraus"],
            "noise_models": ["qiskit_aer"],
        }
    )
    assert info.methods == ["automatic", "statevector", "density_matrix"] and info.channels == ["kraus"]
    assert info.supports_noise and not Backend.from_dict({"name": "old"}).supports_noise
    job = Job.from_dict({"id": "j", "status": "queued", "method": "density_matrix", "noisy": True})
    assert job.method == "density_matrix" and job.noisy
    old_job = Job.from_dict({"id": "j", "status": "queued"})
    assert old_job.method is None and not old_job.noisy


def test_submit_sends_the_noise_model_as_aer_serializes_it() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(201, json={"id": "j1", "status": "queued"})

    nm = readout_model()
    with KettleClient("http://kettle.test", transport=httpx.MockTransport(handler)) as client:
        client.submit("OPENQASM 2.0;", noise_model=nm, method="density_matrix")
        client.submit("OPENQASM 2.0;", noise_model=nm.to_dict(serializable=True))
        client.submit("OPENQASM 2.0;")
        with pytest.raises(TypeError, match="noise_model"):
            client.submit("OPENQASM 2.0;", noise_model=object())
    want = json.loads(json.dumps(nm.to_dict(serializable=True)))
    # Aer's dict has random error ids; all else must be what Aer gives its core.
    def strip(doc: dict[str, Any]) -> list[Any]:
        return [{k: v for k, v in e.items() if k != "id"} for e in doc["errors"]]

    assert strip(seen[0]["noise_model"]) == strip(want) and seen[0]["method"] == "density_matrix"
    assert strip(seen[1]["noise_model"]) == strip(want) and "method" not in seen[1]
    assert "noise_model" not in seen[2] and "method" not in seen[2]


def test_fit_circuit_drops_idle_qubits_and_renumbers_the_noise() -> None:
    qc = QuantumCircuit(6, 2)
    qc.h(4)
    qc.cx(4, 1)
    qc.barrier()
    qc.measure([1, 4], [0, 1])
    fitted, kept = fit_circuit(qc)
    assert kept == [1, 4] and fitted.num_qubits == 2 and fitted.num_clbits == 2
    assert [fitted.find_bit(q).index for q in fitted.data[1].qubits] == [1, 0]
    nm = NoiseModel()
    nm.add_all_qubit_quantum_error(depolarizing_error(0.1, 1), ["h"])
    nm.add_quantum_error(depolarizing_error(0.2, 2), ["cx"], [4, 1])
    nm.add_quantum_error(depolarizing_error(0.2, 2), ["cx"], [2, 3])
    nm.add_readout_error(ReadoutError([[0.9, 0.1], [0.1, 0.9]]), [4])
    doc = restrict_noise(nm.to_dict(serializable=True), kept)
    where = [(e["type"], e["operations"], e.get("gate_qubits")) for e in doc["errors"]]
    assert where == [("qerror", ["h"], None), ("qerror", ["cx"], [[1, 0]]), ("roerror", ["measure"], [[1]])]
    # Same distribution, fitted or not.
    same = NoiseModel()
    same.add_all_qubit_quantum_error(depolarizing_error(0.1, 1), ["h"])
    same.add_quantum_error(depolarizing_error(0.2, 2), ["cx"], [1, 0])
    same.add_readout_error(ReadoutError([[0.9, 0.1], [0.1, 0.9]]), [1])
    assert exact_distribution(qc, nm) == pytest.approx(exact_distribution(fitted, same), abs=1e-12)


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("circuit", sorted(CIRCUITS))
def test_the_reference_is_what_aer_samples(model: str, circuit: str) -> None:
    """The exact reference (density matrix, then readout errors) against
    Aer's own counts, so that the tests below check Kettle against Aer."""
    nm = MODELS[model]()
    qc = CIRCUITS[circuit]()
    counts = AerSimulator(noise_model=nm).run(qc, shots=SHOTS, seed_simulator=99).result().get_counts()
    assert_counts_match(counts, exact_distribution(qc, nm), SHOTS, f"aer {model}/{circuit}")


# --------------------------------------------------------------------------
# End to end against Aer
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fresh_backend(client: KettleClient) -> Iterator[KettleBackend]:
    """A backend of its own (options are set on it)."""
    yield KettleBackend(client)


def test_backend_lists_methods_and_channels(client: KettleClient) -> None:
    info = client.backend()
    assert info.methods == ["automatic", "statevector", "density_matrix"], info.raw
    assert info.channels, "the server names the channels programs may use"
    assert info.supports_noise and "qiskit_aer" in info.noise_models
    assert info.simd in ("avx512", "avx2", "portable"), info.raw


def test_jobs_say_their_method_and_noise(client: KettleClient) -> None:
    program = circuit_to_program(ghz_rotations())
    noisy = client.submit(program.source, program.format, noise_model=depolarizing_model(), method="statevector")
    assert noisy.noisy and noisy.method == "statevector"
    ideal = client.submit(program.source, program.format)
    assert not ideal.noisy and ideal.method == "statevector"
    ideal_ex = client.result(ideal.id, timeout=60).executions[0]
    assert ideal_ex.method == "statevector"


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("circuit", sorted(CIRCUITS))
@pytest.mark.parametrize("method", ["statevector", "density_matrix"])
def test_counts_match_aer_exact_distribution(backend: KettleBackend, model: str, circuit: str, method: str) -> None:
    nm = MODELS[model]()
    qc = CIRCUITS[circuit]()
    probs = exact_distribution(qc, nm)
    result = backend.run(qc, noise_model=nm, method=method, shots=SHOTS, seed_simulator=11).result()
    assert_counts_match(result.get_counts(), probs, SHOTS, f"{model}/{circuit}/{method}")
    assert result.results[0].metadata["method"] == method


#: Gates Kettle's programs keep by name and Aer's density matrix runs.
NAMED_GATES = [
    "id", "x", "y", "z", "h", "s", "sdg", "t", "tdg", "sx", "sxdg", "rx", "ry", "rz", "p", "u", "u1", "u2", "u3",
    "cx", "cy", "cz", "swap", "cp", "rxx", "rzz",
]  # fmt: skip


def test_errors_follow_every_gate_by_its_qiskit_name(client: KettleClient) -> None:
    """An error on each of Qiskit's gate names that Kettle's programs keep
    (``id`` included) follows that gate, on its qubits in order: exact
    probabilities against Aer's density matrix, to 1e-10."""
    from qiskit.circuit.library import get_standard_gate_name_mapping

    mapping = get_standard_gate_name_mapping()
    for name in NAMED_GATES:
        gate = mapping[name]
        if gate.params:
            gate = type(gate)(*[0.3 + 0.2 * i for i in range(len(gate.params))])
        qc = QuantumCircuit(2, name=name)
        qc.h(0)
        qc.ry(0.4, 1)
        qc.append(gate, [0] if gate.num_qubits == 1 else [0, 1])
        qc.measure_all()
        nm = NoiseModel()
        damping = amplitude_damping_error(0.3)
        # On two qubits, damping on the gate's first and depolarizing on its second.
        error = damping if gate.num_qubits == 1 else depolarizing_error(0.2, 1).tensor(damping)
        nm.add_all_qubit_quantum_error(error, [name])
        program = circuit_to_program(qc)
        job = client.submit(program.source, program.format, noise_model=nm, method="density_matrix",
                            result_types=["probabilities"])  # fmt: skip
        got = client.result(job.id, timeout=60).executions[0].probabilities or {}
        want = exact_distribution(qc, nm)
        for key in set(got) | set(want):
            assert got.get(key, 0.0) == pytest.approx(want.get(key, 0.0), abs=1e-10), (name, key)


def test_errors_on_gates_sent_as_definitions_are_warned_about(backend: KettleBackend) -> None:
    nm = NoiseModel()
    nm.add_all_qubit_quantum_error(depolarizing_error(0.1, 2), ["ecr"])
    qc = QuantumCircuit(2, name="ecr")
    qc.ecr(0, 1)
    qc.measure_all()
    with pytest.warns(UserWarning, match="ecr"):
        backend.run(qc, noise_model=nm, shots=10).result()
    with pytest.warns(UserWarning, match="ecr"):
        KettleSamplerV2(backend, noise_model=nm).run([qc], shots=10).result()


def test_automatic_method_and_run_options(backend: KettleBackend) -> None:
    nm = readout_model()
    qc = ghz_rotations()
    result = backend.run([qc, excitations()], noise_model=nm, shots=SHOTS, seed_simulator=5, memory=True).result()
    assert_counts_match(result.get_counts(0), exact_distribution(qc, nm), SHOTS, "automatic")
    assert result.results[0].metadata["method"] in ("statevector", "density_matrix")
    assert len(result.get_memory(1)) == SHOTS
    again = backend.run(qc, noise_model=nm, shots=SHOTS, seed_simulator=5).result().get_counts()
    assert again == result.get_counts(0), "seed_simulator makes noisy runs reproducible"


def test_density_matrix_probabilities_and_expectations_equal_aer(client: KettleClient) -> None:
    observables = ["Z0 Z1", "X0", "0.5*Y1 Z2 - 0.25*X0 X1 X2 + 1", "Z2"]
    qiskit_obs = [
        SparsePauliOp("IZZ"),
        SparsePauliOp("IIX"),
        SparsePauliOp.from_list([("ZYI", 0.5), ("XXX", -0.25), ("III", 1.0)]),
        SparsePauliOp("ZII"),
    ]
    for model in sorted(MODELS):
        nm = MODELS[model]()
        for name in sorted(CIRCUITS):
            qc = CIRCUITS[name]()
            program = circuit_to_program(qc)
            job = client.submit(
                program.source, program.format, noise_model=nm, method="density_matrix",
                result_types=["probabilities", {"expectation": observables}],
            )  # fmt: skip
            ex = client.result(job.id, timeout=120).executions[0]
            assert ex.method == "density_matrix"
            want = exact_distribution(qc, nm)
            got = ex.probabilities or {}
            for key in set(got) | set(want):
                assert got.get(key, 0.0) == pytest.approx(want.get(key, 0.0), abs=1e-10), (model, name, key)
            rho = exact_density_matrix(qc, nm)
            assert ex.expectations is not None
            for e, obs in zip(ex.expectations, qiskit_obs, strict=True):
                assert e.value == pytest.approx(float(np.real(rho.expectation_value(obs))), abs=1e-10), (model, name)
                assert e.std_error == 0.0


def test_statevector_method_expectations_are_trajectory_means(client: KettleClient) -> None:
    nm = damping_model()
    qc = excitations()
    program = circuit_to_program(qc)
    job = client.submit(
        program.source, program.format, noise_model=nm, method="statevector", shots=4000, seed=3,
        result_types=[{"expectation": ["Z0", "Z1 Z2", "X2"]}],
    )  # fmt: skip
    ex = client.result(job.id, timeout=120).executions[0]
    assert ex.method == "statevector"
    rho = exact_density_matrix(qc, nm)
    assert ex.expectations is not None
    for e, label in zip(ex.expectations, ["IIZ", "ZZI", "XII"], strict=True):
        exact = float(np.real(rho.expectation_value(SparsePauliOp(label))))
        assert 0 < e.std_error < 0.05, e
        assert abs(e.value - exact) <= 5 * e.std_error + 1e-3, (label, e, exact)


def test_noisy_circuits_have_no_state_vector(client: KettleClient, backend: KettleBackend) -> None:
    nm = depolarizing_model()
    qc = ghz_rotations().remove_final_measurements(inplace=False)
    program = circuit_to_program(qc)
    with pytest.raises(InvalidRequestError):
        client.submit(program.source, program.format, noise_model=nm, result_types=["statevector"])
    with pytest.raises(InvalidRequestError):
        client.submit(program.source, program.format, noise_model=nm, method="statevector",
                      result_types=["probabilities"])  # fmt: skip
    with pytest.raises(UnsupportedCircuitError, match="state vector"):
        backend.run(save_statevector(qc.copy()), noise_model=nm)
    # An ideal noise model (no error) is no noise, as on Aer: the state is there.
    sv = backend.run(save_statevector(qc.copy()), noise_model=NoiseModel()).result().get_statevector()
    assert abs(np.linalg.norm(sv.data) - 1) < 1e-12
    # A noisy circuit without measurements still runs (nothing to report).
    assert backend.run(qc, noise_model=nm).result().success


def test_measure_and_reset_errors_match_aer_samples(backend: KettleBackend) -> None:
    """Quantum errors on ``measure`` and ``reset``, a mid-circuit reset and
    measurement: Kettle's counts against Aer's (two samples)."""
    nm = NoiseModel()
    nm.add_all_qubit_quantum_error(pauli_error([("X", 0.1), ("I", 0.9)]), ["measure"])
    nm.add_all_qubit_quantum_error(pauli_error([("X", 0.2), ("I", 0.8)]), ["reset"])
    nm.add_all_qubit_quantum_error(depolarizing_error(0.05, 1), ["h", "x"])
    nm.add_all_qubit_quantum_error(depolarizing_error(0.1, 2), ["cx"])
    nm.add_readout_error(ReadoutError([[0.95, 0.05], [0.1, 0.9]]), [1])
    qc = QuantumCircuit(3, 4, name="measure_reset")
    qc.h(0)
    qc.cx(0, 1)
    qc.measure(1, 3)
    qc.reset(1)
    qc.x(2)
    qc.cx(0, 2)
    qc.h(1)
    qc.measure([0, 1, 2], [0, 1, 2])
    aer = AerSimulator(noise_model=nm).run(qc, shots=SHOTS, seed_simulator=17).result().get_counts()
    for method in ("statevector", "density_matrix"):
        ours = backend.run(qc, noise_model=nm, method=method, shots=SHOTS, seed_simulator=17).result().get_counts()
        assert_samples_agree(ours, aer, method)


def test_classical_control_on_noisy_bits_matches_aer_samples(backend: KettleBackend) -> None:
    """A mid-circuit measurement whose recorded bit (readout error
    included) drives an ``if_else``, on a device-sized register with an idle
    qubit: Kettle's counts against Aer's, both methods."""
    nm = NoiseModel()
    nm.add_all_qubit_quantum_error(depolarizing_error(0.05, 1), ["h", "x", "sx"])
    nm.add_all_qubit_quantum_error(amplitude_damping_error(0.2), ["rx"])
    nm.add_all_qubit_quantum_error(depolarizing_error(0.1, 2), ["cx"])
    nm.add_readout_error(ReadoutError([[0.85, 0.15], [0.1, 0.9]]), [0])
    qc = QuantumCircuit(4, 3, name="feed_forward")
    qc.h(0)
    qc.cx(0, 1)
    qc.measure(0, 0)
    with qc.if_test((qc.clbits[0], 1)) as else_:
        qc.x(2)
    with else_:
        qc.rx(1.2, 2)
        qc.sx(1)
    qc.measure([1, 2], [1, 2])
    aer = AerSimulator(noise_model=nm).run(qc, shots=SHOTS, seed_simulator=23).result().get_counts()
    for method in ("statevector", "density_matrix"):
        ours = backend.run(qc, noise_model=nm, method=method, shots=SHOTS, seed_simulator=23).result()
        assert_samples_agree(ours.get_counts(), aer, f"feed-forward {method}")
        assert ours.results[0].metadata["method"] == method


def test_set_options_and_aer_method_names(fresh_backend: KettleBackend) -> None:
    nm = thermal_model()
    qc = excitations()
    fresh_backend.set_options(noise_model=nm, method="density_matrix", shots=SHOTS)
    try:
        result = fresh_backend.run(qc, seed_simulator=2).result()
        assert result.results[0].metadata["method"] == "density_matrix"
        assert_counts_match(result.get_counts(), exact_distribution(qc, nm), SHOTS, "set_options")
        with pytest.warns(UserWarning, match="matrix_product_state"):
            fresh_backend.set_options(method="matrix_product_state")
        assert fresh_backend.options.method == "automatic"
        # A run's own option wins: no noise.
        ideal = fresh_backend.run(qc, noise_model=None, seed_simulator=2).result().get_counts()
        assert_counts_match(ideal, exact_distribution(qc, None), SHOTS, "ideal")
    finally:
        fresh_backend.set_options(noise_model=None, method="automatic", shots=1024)


# --------------------------------------------------------------------------
# Primitives
# --------------------------------------------------------------------------


def test_sampler_with_aer_options_and_keyword(backend: KettleBackend) -> None:
    nm = readout_model()
    qc = ghz_rotations()
    probs = exact_distribution(qc, nm)
    for sampler in (
        KettleSamplerV2(backend, options={"default_shots": SHOTS, "backend_options": {"noise_model": nm},
                                          "run_options": {"seed_simulator": 4}}),  # fmt: skip
        KettleSamplerV2(backend, default_shots=SHOTS, seed=4, noise_model=nm, method="statevector"),
    ):
        assert sampler.noise_model is nm
        counts = sampler.run([qc]).result()[0].data.meas.get_counts()
        assert_counts_match(counts, probs, SHOTS, f"sampler {sampler.method}")


def test_estimator_with_noise_equals_aer(backend: KettleBackend) -> None:
    from qiskit.circuit import Parameter
    from qiskit_aer.primitives import EstimatorV2 as AerEstimator

    nm = thermal_model()
    a, b = Parameter("a"), Parameter("b")
    qc = QuantumCircuit(3)
    qc.h(0)
    qc.ry(a, 1)
    qc.cx(0, 1)
    qc.rx(b, 2)
    qc.cx(1, 2)
    qc.sx(0)
    values = np.array([[0.1, 0.2], [1.3, -0.4], [2.0, 0.9]])
    obs = [[SparsePauliOp("ZZI")], [SparsePauliOp.from_list([("XIX", 0.5), ("IYZ", -1.0)])], [SparsePauliOp("IIZ")]]
    options = {"backend_options": {"noise_model": nm, "method": "density_matrix"}}
    ours = KettleEstimatorV2(backend, options=options).run([(qc, obs, values)]).result()[0]
    theirs = AerEstimator(options=options).run([(qc, obs, values)]).result()[0]
    assert ours.data.evs.shape == theirs.data.evs.shape == (3, 3)
    assert np.allclose(ours.data.evs, theirs.data.evs, atol=1e-10, rtol=0)
    assert np.all(ours.data.stds == 0)
    # Trajectories: within 5 of the standard errors the stds report, plus a
    # floor for values near 0 whose spread comes from rare error branches
    # (a sample that saw few of them underestimates its own error).
    est = KettleEstimatorV2(backend, noise_model=nm, method="statevector", shots=20_000,
                            options={"run_options": {"seed_simulator": 9}})  # fmt: skip
    sampled = est.run([(qc, obs, values)]).result()[0]
    assert np.all(sampled.data.stds > 0)
    assert np.all(np.abs(sampled.data.evs - theirs.data.evs) <= 5 * sampled.data.stds + 2e-3)
    assert sampled.metadata["shots"] == 20_000
    with pytest.raises(ValueError, match="gradients"):
        KettleEstimatorV2(backend, noise_model=nm, gradients=True)


# --------------------------------------------------------------------------
# A device: KettleBackend.from_backend
# --------------------------------------------------------------------------


#: Two devices' calibrations: IBM's 5-qubit Manila and 7-qubit Nairobi
#: (Qiskit's generic 5- and 7-qubit devices where qiskit-ibm-runtime's fake
#: provider is missing).
DEVICES = ["manila", "nairobi"]


def device(name: str) -> Any:
    try:
        from qiskit_ibm_runtime.fake_provider import FakeManilaV2, FakeNairobiV2
    except ImportError:
        from qiskit.providers.fake_provider import GenericBackendV2

        return GenericBackendV2(num_qubits=5 if name == "manila" else 7, seed=42)
    return FakeManilaV2() if name == "manila" else FakeNairobiV2()


@pytest.fixture(scope="module", params=DEVICES)
def device_pair(request: Any, client: KettleClient) -> tuple[Any, KettleBackend]:
    dev = device(request.param)
    return dev, KettleBackend.from_backend(dev, client)


def test_from_backend_uses_the_device_target_and_noise(device_pair: tuple[Any, KettleBackend]) -> None:
    dev, device_backend = device_pair
    assert device_backend.target.num_qubits == dev.target.num_qubits
    assert set(device_backend.target.operation_names) == set(dev.target.operation_names)
    assert sorted(device_backend.coupling_map.get_edges()) == sorted(dev.coupling_map.get_edges())
    assert isinstance(device_backend.options.noise_model, NoiseModel)
    assert not device_backend.options.noise_model.is_ideal()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_from_backend_random_circuits_match_aer_from_backend(
    device_pair: tuple[Any, KettleBackend], seed: int
) -> None:
    dev, device_backend = device_pair
    qc = random_circuit(4, depth=4, max_operands=2, measure=True, seed=300 + seed)
    isa = transpile(qc, device_backend, optimization_level=1, seed_transpiler=seed)
    assert set(isa.count_ops()) <= set(dev.target.operation_names) | {"barrier"}
    for inst in isa.data:  # respects the coupling map
        if len(inst.qubits) == 2:
            pair = tuple(isa.find_bit(q).index for q in inst.qubits)
            assert pair in set(dev.coupling_map.get_edges()), pair
    aer = AerSimulator.from_backend(dev)
    theirs = aer.run(isa, shots=SHOTS, seed_simulator=seed).result().get_counts()
    ours = device_backend.run(isa, shots=SHOTS, seed_simulator=seed).result().get_counts()
    assert_samples_agree(ours, theirs, f"random circuit {seed}")


def test_from_backend_bell_exact_and_estimator(device_pair: tuple[Any, KettleBackend]) -> None:
    from qiskit_aer.primitives import EstimatorV2 as AerEstimator

    dev, device_backend = device_pair
    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    isa = transpile(bell, device_backend, optimization_level=1, seed_transpiler=3)
    observables = [SparsePauliOp(p).apply_layout(isa.layout) for p in ("ZZ", "XX", "ZI", "IZ")]
    # Both primitives take the backend's noise model (from_backend's).
    est = KettleEstimatorV2(device_backend, options={"backend_options": {"method": "density_matrix"}})
    assert est.noise_model is device_backend.options.noise_model
    ours = est.run([(isa, observables)]).result()[0].data.evs
    aer = AerEstimator(options={"backend_options": {"noise_model": NoiseModel.from_backend(dev),
                                                    "method": "density_matrix"}})  # fmt: skip
    theirs = aer.run([(isa, observables)]).result()[0].data.evs
    # The device's errors have circuits of probability below 1e-10, which
    # Aer's density matrix drops without renormalising, and Kettle drops
    # renormalising (as Aer's trajectories sample): the values differ by
    # about that mass (1e-9), and equal the renormalised reference to 1e-10.
    assert np.allclose(ours, theirs, atol=1e-8, rtol=0)
    rho = renormalized_density_matrix(isa, NoiseModel.from_backend(dev))
    exact = [float(np.real(rho.expectation_value(o))) for o in observables]
    assert np.allclose(ours, exact, atol=1e-10, rtol=0), (ours, exact)
    assert abs(ours[0] - 1.0) > 1e-3, "noise lowers ⟨ZZ⟩"
    # The device's noise is there: |11⟩ prepared and read is sometimes not 11
    # (readout errors of 0.07% to 4% per qubit, on either device).
    flips = QuantumCircuit(2)
    flips.x([0, 1])
    flips.measure_all()
    counts = device_backend.run(transpile(flips, device_backend, seed_transpiler=3), shots=SHOTS).result()
    assert SHOTS - counts.get_counts().get("11", 0) >= 5, counts.get_counts()
    measured = isa.copy()
    measured.measure_all()
    counts = KettleSamplerV2(device_backend, default_shots=SHOTS, seed=8).run([measured]).result()[0]
    theirs_counts = AerSimulator.from_backend(dev).run(measured, shots=SHOTS, seed_simulator=8).result()
    assert_samples_agree(counts.data.meas.get_counts(), theirs_counts.get_counts(), "sampler from_backend")


def test_from_backend_large_device_runs_the_used_qubits(client: KettleClient) -> None:
    """A 20-qubit device: a 3-qubit circuit transpiled for it has 20 qubits,
    which Kettle runs as the 3 it uses, with their noise (as Aer's
    truncation does)."""
    from qiskit.providers.fake_provider import GenericBackendV2

    dev = GenericBackendV2(num_qubits=20, seed=7)
    kettle = KettleBackend.from_backend(dev, client)
    qc = QuantumCircuit(3)
    qc.h(0)
    qc.cx(0, 1)
    qc.cx(1, 2)
    qc.measure_all()
    isa = transpile(qc, kettle, optimization_level=1, seed_transpiler=1)
    assert isa.num_qubits == 20
    ours = kettle.run(isa, shots=SHOTS, seed_simulator=1, method="density_matrix").result()
    job = client.get(ours.results[0].metadata["kettle_job_id"])
    assert job.qubits == 3
    theirs = AerSimulator.from_backend(dev).run(isa, shots=SHOTS, seed_simulator=1).result().get_counts()
    assert_samples_agree(ours.get_counts(), theirs, "20-qubit device")


def test_from_backend_relaxes_qubits_during_delays(device_pair: tuple[Any, KettleBackend]) -> None:
    """``AerSimulator.from_backend``'s model relaxes a qubit for the length
    of each ``delay`` (a custom noise pass, outside the serialised model);
    Kettle's backend applies the same pass and sends its errors as Kraus
    pragmas."""
    dev, device_backend = device_pair
    qc = QuantumCircuit(2)
    qc.x([0, 1])
    qc.delay(60, 0, unit="us")
    qc.measure_all()
    isa = transpile(qc, device_backend, optimization_level=0, seed_transpiler=1)
    assert "delay" in isa.count_ops()
    ours = device_backend.run(isa, shots=SHOTS, seed_simulator=2).result().get_counts()
    theirs = AerSimulator.from_backend(dev).run(isa, shots=SHOTS, seed_simulator=2).result().get_counts()
    assert_samples_agree(ours, theirs, "delay")

    def ones(counts: dict[str, int], bit: int) -> float:
        return sum(n for k, n in counts.items() if k[::-1][bit] == "1") / sum(counts.values())

    # The delayed qubit decays; the other only by its gates' errors.
    assert ones(ours, 0) < ones(ours, 1) - 0.05, ours


def test_aer_noise_instructions_in_a_circuit_run_as_kraus_pragmas(client: KettleClient) -> None:
    """An Aer ``QuantumError`` appended to a circuit (what custom noise
    passes insert) is sent as a ``kraus`` pragma; a non-symmetric
    two-qubit channel checks the bit order against Qiskit's density
    matrix."""
    from qiskit.quantum_info import Kraus, random_quantum_channel
    from qiskit_aer.noise import QuantumError

    error = QuantumError(Kraus(random_quantum_channel(4, seed=3)))
    qc = QuantumCircuit(3)
    qc.h(0)
    qc.cx(0, 1)
    qc.append(error, [1, 2])
    qc.ry(0.3, 2)
    measured = qc.copy()
    measured.measure_all()
    program = circuit_to_program(measured)
    assert program.format == "qasm3" and "#pragma braket noise kraus(" in program.source
    job = client.submit(program.source, program.format, method="density_matrix", result_types=["probabilities"])
    got = client.result(job.id, timeout=120).executions[0].probabilities or {}
    rho = DensityMatrix(QuantumCircuit(3)).evolve(qc)
    want = rho.probabilities_dict()
    for key in set(got) | set(want):
        assert got.get(key, 0.0) == pytest.approx(want.get(key, 0.0), abs=1e-10), key
