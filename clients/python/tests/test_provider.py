"""qiskit_kettle against the real server, compared with Qiskit Aer."""

from __future__ import annotations

import copy
import math
import pickle
import warnings
from typing import Any

import numpy as np
import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister, transpile
from qiskit.circuit import Parameter, ParameterVector
from qiskit.circuit.library import QFTGate, UnitaryGate
from qiskit.providers import JobStatus
from qiskit.quantum_info import SparsePauliOp, Statevector, random_unitary
from qiskit_aer import AerSimulator

from kettle_client import KettleClient, ProgramError
from qiskit_kettle import KettleBackend, KettleJob, KettleProvider, UnsupportedCircuitError, circuit_to_program


def header_field(header: Any, name: str) -> Any:
    """A field of a result header: a dict on Qiskit 2, an object on 1.x."""
    return header[name] if isinstance(header, dict) else getattr(header, name)


def bell() -> QuantumCircuit:
    qc = QuantumCircuit(2, name="bell")
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return qc


def ghz(n: int) -> QuantumCircuit:
    qc = QuantumCircuit(n, n, name=f"ghz{n}")
    qc.h(0)
    for i in range(n - 1):
        qc.cx(i, i + 1)
    qc.measure(range(n), range(n))
    return qc


def near_half(count: int, shots: int) -> bool:
    return abs(count - shots / 2) <= 5 * math.sqrt(shots) / 2


def test_provider_and_target(provider: KettleProvider, backend: KettleBackend) -> None:
    assert provider.backends() == [backend] and provider.backend("kettle") is backend
    with pytest.raises(KeyError):
        provider.backend("aer_simulator")
    assert isinstance(backend.client, KettleClient)
    t = backend.target
    assert t.num_qubits == backend.client.backend().qubit_limit("f64")
    names = set(backend.operation_names)
    assert {"cx", "h", "rz", "sx", "u", "ecr", "rzz", "global_phase", "measure", "reset", "if_else", "switch_case"} <= names
    assert backend.coupling_map is None  # all-to-all
    assert backend.max_circuits and backend.max_circuits >= 1


def test_bell_counts(backend: KettleBackend) -> None:
    job = backend.run(transpile(bell(), backend), shots=4000)
    assert isinstance(job, KettleJob)
    counts = job.result().get_counts()
    assert set(counts) == {"00", "11"} and sum(counts.values()) == 4000
    assert near_half(counts["00"], 4000)
    assert job.status() == JobStatus.DONE


def test_ghz_counts(backend: KettleBackend) -> None:
    qc = transpile(ghz(5), backend)
    assert qc.num_qubits == 5  # no ancillas: the target has no coupling map
    counts = backend.run(qc, shots=3000).result().get_counts()
    assert set(counts) == {"00000", "11111"} and near_half(counts["11111"], 3000)


def test_seed_gives_the_same_counts(backend: KettleBackend) -> None:
    qc = QuantumCircuit(3)
    qc.h(range(3))
    qc.measure_all()
    a = backend.run(qc, shots=500, seed_simulator=42).result().get_counts()
    b = backend.run(qc, shots=500, seed_simulator=42).result().get_counts()
    c = backend.run(qc, shots=500, seed_simulator=43).result().get_counts()
    assert a == b and a != c


def test_memory(backend: KettleBackend) -> None:
    if "memory" not in backend.client.backend().result_types:
        pytest.skip("this kettle has no memory result type")
    qc = QuantumCircuit(QuantumRegister(3, "q"), ClassicalRegister(2, "a"), ClassicalRegister(1, "b"))
    qc.h(0)
    qc.cx(0, 1)
    qc.h(2)
    qc.measure([0, 1, 2], [0, 1, 2])
    result = backend.run(qc, shots=300, memory=True, seed_simulator=5).result()
    memory = result.get_memory()
    counts = result.get_counts()
    assert len(memory) == 300
    assert {m: memory.count(m) for m in set(memory)} == counts
    aer = AerSimulator().run(qc, shots=300, memory=True).result().get_memory()
    assert set(memory) == set(aer) == {"0 00", "0 11", "1 00", "1 11"}
    with pytest.raises(Exception):
        backend.run(qc, shots=10).result().get_memory()


def test_statevector_matches_qiskit(backend: KettleBackend) -> None:
    qc = QuantumCircuit(4)
    qc.h(0)
    qc.cx(0, 1)
    qc.sxdg(2)
    qc.rzx(0.3, 0, 2)
    qc.ecr(1, 3)
    qc.iswap(2, 3)
    qc.ryy(0.7, 0, 3)
    qc.append(UnitaryGate(random_unitary(4, seed=3)), [1, 2])
    qc.ccz(0, 1, 2)
    qc.dcx(3, 0)
    qc.append(QFTGate(3), [1, 2, 3])
    qc.global_phase = 0.9
    expected = Statevector(qc)
    qc.save_statevector()
    qc.measure_all()
    result = backend.run(qc, shots=100).result()
    sv = result.get_statevector()
    assert isinstance(sv, Statevector)
    assert np.allclose(sv.data, expected.data, atol=1e-10, rtol=0)
    aer_sim = AerSimulator()
    aer = aer_sim.run(transpile(qc, aer_sim, optimization_level=1), shots=100).result().get_statevector()
    assert np.allclose(sv.data, np.asarray(aer), atol=1e-10, rtol=0)
    assert sum(result.get_counts().values()) == 100
    # Transpiled to the backend, the same state (level 1: levels 2 and 3 may
    # elide swaps and permute the qubits, for Aer as for Kettle).
    t = transpile(qc, backend, optimization_level=1, seed_transpiler=1)
    sv2 = backend.run(t).result().get_statevector()
    assert np.allclose(sv2.data, expected.data, atol=1e-10, rtol=0)


def test_statevector_without_measurements(backend: KettleBackend) -> None:
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cp(0.4, 0, 1)
    qc.x(1)
    qc.save_statevector()
    result = backend.run(qc).result()
    assert np.allclose(result.get_statevector().data, Statevector(_unitary_part(qc)).data, atol=1e-12, rtol=0)


def _unitary_part(qc: QuantumCircuit) -> QuantumCircuit:
    out = qc.copy_empty_like()
    for inst in qc.data:
        if inst.operation.name not in ("save_statevector", "measure", "barrier"):
            out.append(inst)
    return out


def test_misplaced_save_statevector_is_refused(backend: KettleBackend) -> None:
    qc = QuantumCircuit(2, 2)
    qc.h(0)
    qc.measure(0, 0)
    qc.save_statevector()
    with pytest.raises(UnsupportedCircuitError, match="after a measurement"):
        backend.run(qc)
    qc = QuantumCircuit(2, 2)
    qc.h(0)
    qc.save_statevector()
    qc.cx(0, 1)
    with pytest.raises(UnsupportedCircuitError, match="followed only by measurements"):
        backend.run(qc)
    qc = QuantumCircuit(1)
    qc.save_density_matrix()
    with pytest.raises(UnsupportedCircuitError, match="save_density_matrix"):
        backend.run(qc)


def test_multiple_registers_like_aer(backend: KettleBackend) -> None:
    qr = QuantumRegister(4, "q")
    a, b, c = ClassicalRegister(2, "a"), ClassicalRegister(1, "b"), ClassicalRegister(3, "c")
    qc = QuantumCircuit(qr, a, b, c, name="regs")
    qc.x(0)
    qc.h(1)
    qc.x(3)
    qc.measure(0, a[1])
    qc.measure(1, b[0])
    qc.measure(3, c[0])
    qc.measure(2, c[2])
    ours = backend.run(qc, shots=400, seed_simulator=3).result()
    aer = AerSimulator().run(qc, shots=400, seed_simulator=3).result()
    assert set(ours.get_counts()) == set(aer.get_counts()) == {"001 0 10", "001 1 10"}
    for field in ("creg_sizes", "memory_slots"):
        assert header_field(ours.results[0].header, field) == header_field(aer.results[0].header, field)
    # measure_all on a circuit that has a register adds a second one.
    qc2 = QuantumCircuit(2, 1)
    qc2.x(1)
    qc2.measure(1, 0)
    qc2.measure_all()
    assert set(backend.run(qc2, shots=20).result().get_counts()) == set(
        AerSimulator().run(qc2, shots=20).result().get_counts()
    ) == {"10 1"}


def test_several_circuits_in_one_run(backend: KettleBackend) -> None:
    circuits = [bell(), ghz(3), ghz(4)]
    job = backend.run(circuits, shots=1000, seed_simulator=7)
    assert len(job.kettle_ids) == 3 and job.job_id() == ",".join(job.kettle_ids)
    result = job.result()
    counts = result.get_counts()
    assert [set(c) for c in counts] == [{"00", "11"}, {"000", "111"}, {"0000", "1111"}]
    assert set(result.get_counts("ghz3")) == {"000", "111"}
    assert set(result.get_counts(circuits[2])) == {"0000", "1111"}


def test_parameter_binds_sweep(backend: KettleBackend) -> None:
    theta = Parameter("θ")
    v = ParameterVector("v", 2)
    qc = QuantumCircuit(2, 2)
    qc.rx(theta, 0)
    qc.ry(v[0] + v[1], 1)
    qc.measure([0, 1], [0, 1])
    thetas = np.linspace(0, math.pi, 20)
    binds = [{theta: thetas, v[0]: [0.1] * 20, v[1]: list(thetas / 2)}]
    result = backend.run(qc, shots=2000, parameter_binds=binds, seed_simulator=9).result()
    counts = result.get_counts()
    assert len(counts) == 20 and len(backend.run(qc, shots=10, parameter_binds=binds).kettle_ids) == 1
    for t, c in zip(thetas, counts):
        p1 = math.sin(t / 2) ** 2
        ones = sum(n for k, n in c.items() if k[-1] == "1")
        assert abs(ones - 2000 * p1) <= 5 * math.sqrt(2000 * p1 * (1 - p1)) + 1
    with pytest.raises(UnsupportedCircuitError, match="unbound parameters"):
        backend.run(qc)


def test_parameter_names_in_qasm3() -> None:
    theta = Parameter("θ")
    v = ParameterVector("v", 3)
    q = Parameter("q")  # clashes with the qubit register's name
    qc = QuantumCircuit(2)
    qc.rx(theta, 0)
    qc.ry(v[0] + v[2], 1)
    qc.rz(q, 0)
    qc.measure_all()
    program = circuit_to_program(qc)
    assert program.format == "qasm3"
    assert list(program.parameters) == list(qc.parameters)
    for param, name in program.parameters.items():
        assert f"input float[64] {name};" in program.source
    assert program.inputs({theta: 0.1, v[0]: [1, 2], v[2]: 3, q: 0.0})[program.parameters[v[0]]] == [1.0, 2.0]


def test_parameterised_circuit_through_the_client(backend: KettleBackend) -> None:
    theta = Parameter("theta")
    qc = QuantumCircuit(1, 1)
    qc.rx(theta, 0)
    qc.measure(0, 0)
    program = circuit_to_program(qc)
    values = [0.0, 1.0, 2.0]
    job = backend.client.submit(
        program.source, program.format, inputs=program.inputs({theta: values}), result_types=["probabilities"], wait=30
    )
    for ex, t in zip(job.result.executions, values):
        assert ex.probabilities.get("1", 0.0) == pytest.approx(math.sin(t / 2) ** 2, abs=1e-12)


def test_if_else_like_aer(backend: KettleBackend) -> None:
    qc = QuantumCircuit(3, 3)
    qc.h(0)
    qc.measure(0, 0)
    with qc.if_test((qc.clbits[0], 1)) as else_:
        qc.x(1)
        qc.sxdg(2)
    with else_:
        qc.h(2)
    with qc.for_loop(range(2)):
        qc.z(1)
    aer_qc = qc.copy()
    aer_qc.x(1)  # Aer has no box
    aer_qc.measure([1, 2], [1, 2])
    if hasattr(qc, "box"):  # Qiskit 2.0 and later
        with qc.box():
            qc.delay(100, 1)
            qc.x(1)
    else:
        qc.delay(100, 1)
        qc.x(1)
    qc.measure([1, 2], [1, 2])
    program = circuit_to_program(qc)
    assert program.format == "qasm3" and "if (" in program.source
    shots = 4000
    ours = backend.run(transpile(qc, backend), shots=shots, seed_simulator=1).result().get_counts()
    aer = AerSimulator().run(aer_qc, shots=shots, seed_simulator=1).result().get_counts()
    # c0 random; c1 = not c0 (x in the true branch, then the box's x); c2 random.
    exact = {"001": 0.25, "101": 0.25, "010": 0.25, "110": 0.25}
    assert set(ours) == set(aer) == set(exact)
    for k, p in exact.items():
        assert abs(ours[k] - shots * p) <= 5 * math.sqrt(shots * p * (1 - p))


def test_switch_case_like_aer(backend: KettleBackend) -> None:
    m, r = ClassicalRegister(2, "m"), ClassicalRegister(2, "r")
    qc = QuantumCircuit(QuantumRegister(4, "q"), m, r)
    qc.h([0, 1])
    qc.measure([0, 1], m)
    # r[0] = 1 exactly when m is 00 or 11; r[1] = m[0] through a switch on one bit.
    with qc.switch(m) as case:
        with case(0):
            qc.x(2)
        with case(1, 2):
            qc.id(2)
        with case(case.DEFAULT):
            qc.x(2)
    with qc.switch(m[0]) as case:
        with case(True):
            qc.x(3)
        with case(case.DEFAULT):
            qc.id(3)
    qc.measure([2, 3], r)
    program = circuit_to_program(qc)
    assert "switch" not in program.source and "else" in program.source
    shots = 4000
    ours = backend.run(qc, shots=shots, seed_simulator=3).result().get_counts()
    aer = AerSimulator().run(qc, shots=shots, seed_simulator=3).result().get_counts()
    exact = {"01 00": 0.25, "10 01": 0.25, "00 10": 0.25, "11 11": 0.25}
    assert set(ours) == set(aer) == set(exact)
    for k, p in exact.items():
        assert abs(ours[k] - shots * p) <= 5 * math.sqrt(shots * p * (1 - p))


def test_unsupported_control_flow(backend: KettleBackend) -> None:
    qc = QuantumCircuit(1, 1)
    qc.h(0)
    qc.measure(0, 0)
    with qc.while_loop((qc.clbits[0], 1)):
        qc.h(0)
        qc.measure(0, 0)
    with pytest.raises(UnsupportedCircuitError, match="while_loop"):
        backend.run(qc)


def test_server_errors_carry_the_line(backend: KettleBackend) -> None:
    bad = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0],q[2];\nmeasure q -> c;\n'
    with pytest.raises(ProgramError) as e:
        backend.client.submit(bad)
    assert e.value.line == 6 and "line 6" in str(e.value)
    too_big = QuantumCircuit(backend.target.num_qubits + 1)
    too_big.h(0)
    too_big.measure_all()
    with pytest.raises(Exception) as e2:
        backend.run(too_big, shots=10)
    assert "qubit" in str(e2.value)


def test_job_cancel(backend: KettleBackend) -> None:
    qc = QuantumCircuit(20)
    for _ in range(300):
        qc.rx(0.1, range(20))
        qc.cx(0, 19)
    qc.measure_all()
    job = backend.run(qc, shots=10)
    assert job.status() in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.DONE)
    if job.cancel():
        from qiskit.providers import JobError

        with pytest.raises(JobError, match="cancelled"):
            job.result(timeout=60)
        assert job.status() == JobStatus.CANCELLED


def test_aer_only_options(backend: KettleBackend) -> None:
    qc = bell()
    with pytest.raises(TypeError, match="noise_model"):
        backend.run(qc, noise_model=object())
    with pytest.warns(UserWarning, match="method"):
        job = backend.run(qc, shots=10, method="matrix_product_state")
    assert sum(job.result().get_counts().values()) == 10
    # No noise model is an ideal run: nothing to warn about.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        job = backend.run(qc, shots=10, noise_model=None)
    assert sum(job.result().get_counts().values()) == 10


def test_the_backend_copies_and_pickles_with_its_own_connection(backend: KettleBackend) -> None:
    """Qiskit's runtime local mode deep-copies a backend, and multiprocessing
    pickles it: each copy rebuilds its HTTP client from the settings."""
    copies = [copy.deepcopy(backend), pickle.loads(pickle.dumps(backend)), copy.copy(backend)]
    for other in copies[:2]:
        assert other.client is not backend.client
        assert other.client.url == backend.client.url
    for other in copies:
        counts = other.run(bell(), shots=20, seed_simulator=1).result().get_counts()
        assert sum(counts.values()) == 20
    client = pickle.loads(pickle.dumps(backend.client))
    assert client.health()
    client.close()


def test_pauli_evolution_is_the_exact_exponential(backend: KettleBackend) -> None:
    from qiskit.circuit.library import PauliEvolutionGate

    from qiskit_kettle import save_statevector
    from qiskit_kettle.convert import UnsupportedCircuitError

    hamiltonian = SparsePauliOp(["ZZZ", "XIX", "IYI"], coeffs=[1.0, 0.5, 0.3])
    qc = QuantumCircuit(3)
    qc.h([0, 1, 2])
    qc.append(PauliEvolutionGate(hamiltonian, time=0.7), [0, 1, 2])
    expected = Statevector(qc)
    sent = qc.copy()
    save_statevector(sent)
    got = backend.run(sent, shots=0).result().get_statevector()
    assert np.allclose(np.asarray(got), expected.data, atol=1e-10)
    # Commuting terms: the definition is exact, also with a parameter.
    t = Parameter("t")
    ising = QuantumCircuit(3)
    ising.h([0, 1, 2])
    ising.append(PauliEvolutionGate(SparsePauliOp(["ZZI", "IZZ"]), time=t), [0, 1, 2])
    bound = ising.assign_parameters({t: 0.4})
    sent = bound.copy()
    save_statevector(sent)
    got = backend.run(sent, shots=0).result().get_statevector()
    assert np.allclose(np.asarray(got), Statevector(bound).data, atol=1e-10)
    # Non-commuting with an unbound time: refused by name.
    free = QuantumCircuit(3)
    free.append(PauliEvolutionGate(hamiltonian, time=t), [0, 1, 2])
    with pytest.raises(UnsupportedCircuitError, match="PauliEvolutionGate"):
        backend.run(free, shots=10, parameter_binds=[{t: [0.1]}])


def test_the_state_is_saved_after_initialize(backend: KettleBackend) -> None:
    """Qiskit's ``Initialize`` begins with a reset of qubits still in |0⟩."""
    from qiskit_kettle import save_statevector

    amplitudes = np.array([1, 1j, -1, 0.5], dtype=complex)
    amplitudes /= np.linalg.norm(amplitudes)
    qc = QuantumCircuit(2)
    qc.reset(1)
    qc.initialize(amplitudes, [0, 1])
    qc.cx(0, 1)
    expected = Statevector(qc)
    save_statevector(qc)
    qc.measure_all()
    got = backend.run(qc, shots=10).result().get_statevector()
    assert np.allclose(np.asarray(got), expected.data, atol=1e-10)
    late = QuantumCircuit(1)
    late.h(0)
    late.reset(0)
    save_statevector(late)
    with pytest.raises(UnsupportedCircuitError, match="reset"):
        backend.run(late, shots=10)


def test_a_state_past_the_listed_qubits_comes_back_sparse(backend: KettleBackend) -> None:
    from qiskit_kettle import save_statevector

    n = backend.info.max_listed_qubits + 1
    qc = QuantumCircuit(n)
    qc.x(0)
    qc.h(n - 1)
    expected = Statevector(qc)
    save_statevector(qc)
    qc.measure_all()
    result = backend.run(qc, shots=10).result()
    assert np.allclose(np.asarray(result.get_statevector()), expected.data, atol=1e-12)


def test_the_provider_imports_without_aer_and_says_when_it_needs_it() -> None:
    """Qiskit Aer is optional: the package imports without it, a noise model
    given as a dict needs none, and only building one (``from_backend``)
    asks for it, by name."""
    import subprocess
    import sys

    code = """
import sys
sys.modules["qiskit_aer"] = None  # an import of it now fails
import qiskit_kettle, qiskit_kettle.primitives, qiskit_kettle.noise
from kettle_client import KettleClient
from qiskit.providers.fake_provider import GenericBackendV2
from qiskit_kettle import KettleBackend
from qiskit_kettle.backend import _prepare
from qiskit import QuantumCircuit
qc = QuantumCircuit(1, 1); qc.x(0); qc.measure(0, 0)
doc = {"errors": [{"type": "roerror", "operations": ["measure"], "probabilities": [[0.9, 0.1], [0.2, 0.8]]}]}
from qiskit_kettle.noise import NoiseSpec
req = _prepare(qc, {"shots": 10, "noise": NoiseSpec(doc)}, None, None)
assert req["submit"]["noise_model"] == doc, req
try:
    KettleBackend.from_backend(GenericBackendV2(2), KettleClient("http://127.0.0.1:9"))
except ImportError as e:
    print("refused:", e)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "refused: building a noise model needs Qiskit Aer (pip install qiskit-aer)" in out.stdout
