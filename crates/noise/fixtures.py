"""Writes the JSON fixtures of kettle-noise's tests: noise models as Qiskit
Aer serialises them (`NoiseModel.to_dict(serializable=True)`), each error
beside the superoperator Qiskit computes for it.

Run with a Python that has qiskit and qiskit-aer (the workspace's client
venvs have Aer 0.17 and 0.18), from the workspace root:

    target/python-client-qiskit1-venv/bin/python crates/noise/fixtures.py
    target/python-client-venv/bin/python crates/noise/fixtures.py

Each run writes the fixtures of its Aer version, named after it.
Fixture layout: {"description", "aer_version", "model": <to_dict>,
"expected": [one per entry of model["errors"], in order: for a quantum
error {"superop": <SuperOp(error).data as [re, im] rows>}, for a readout
error {"assignment": <its 2x2 matrix>}]}. The random `id` of each error is
removed so that the files are reproducible.
"""

import json
import os

import numpy as np
import qiskit_aer
from qiskit.providers.fake_provider import GenericBackendV2
from qiskit.quantum_info import Kraus, PauliList, SuperOp, random_quantum_channel, random_unitary
from qiskit_aer.noise import (
    NoiseModel,
    PauliLindbladError,
    ReadoutError,
    amplitude_damping_error,
    coherent_unitary_error,
    depolarizing_error,
    kraus_error,
    mixed_unitary_error,
    pauli_error,
    phase_amplitude_damping_error,
    phase_damping_error,
    reset_error,
    thermal_relaxation_error,
)

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tests", "fixtures")
VERSION = qiskit_aer.__version__
TAG = "aer" + "".join(VERSION.split(".")[:2])


def complex_rows(m):
    return [[[float(z.real), float(z.imag)] for z in row] for row in np.asarray(m)]


def errors_in_dict_order(nm):
    """The error objects in the order `NoiseModel.to_dict` lists them."""
    out = []
    for _name, error in nm._default_quantum_errors.items():
        out.append(("q", error))
    for _name, qubit_dict in nm._local_quantum_errors.items():
        for _qubits, error in qubit_dict.items():
            out.append(("q", error))
    if nm._default_readout_error is not None:
        out.append(("r", nm._default_readout_error))
    for _qubits, error in nm._local_readout_errors.items():
        out.append(("r", error))
    return out


def fixture(nm, description):
    model = nm.to_dict(serializable=True)
    for entry in model["errors"]:
        entry.pop("id", None)
    expected = []
    for kind, error in errors_in_dict_order(nm):
        if kind == "q":
            expected.append({"superop": complex_rows(SuperOp(error).data)})
        else:
            expected.append({"assignment": np.asarray(error.probabilities).tolist()})
    assert len(expected) == len(model["errors"])
    return {"description": description, "aer_version": VERSION, "model": model, "expected": expected}


def backend_model():
    backend = GenericBackendV2(num_qubits=3, seed=1234)
    return NoiseModel.from_backend(backend)


def handbuilt_model():
    nm = NoiseModel()
    # All-qubit errors on one-qubit gates (u3 and u1 are aliases of the IR's u and p).
    nm.add_all_qubit_quantum_error(depolarizing_error(0.05, 1), ["x", "sx"])
    nm.add_all_qubit_quantum_error(pauli_error([("X", 0.1), ("Y", 0.05), ("I", 0.85)]), ["h"])
    nm.add_all_qubit_quantum_error(amplitude_damping_error(0.2), ["u3"])
    nm.add_all_qubit_quantum_error(phase_amplitude_damping_error(0.1, 0.15, 0.3), ["u1"])
    nm.add_all_qubit_quantum_error(phase_damping_error(0.25), ["rz"])
    # Local errors override them on their qubits.
    nm.add_quantum_error(thermal_relaxation_error(50.0, 30.0, 5.0, 0.05), ["x"], [1])
    nm.add_quantum_error(thermal_relaxation_error(40.0, 70.0, 3.0), ["sx"], [2])
    # Two-qubit errors: symmetric and not.
    nm.add_all_qubit_quantum_error(depolarizing_error(0.1, 2), ["cx"])
    nm.add_quantum_error(
        amplitude_damping_error(0.3).tensor(pauli_error([("X", 0.2), ("I", 0.8)])), ["cx"], [0, 1]
    )
    nm.add_quantum_error(pauli_error([("XZ", 0.3), ("YI", 0.1), ("II", 0.6)]), ["cx"], [1, 0])
    channel = Kraus(random_quantum_channel(4, seed=7))
    nm.add_quantum_error(kraus_error(channel.data), ["cz"], [0, 2])
    nm.add_quantum_error(coherent_unitary_error(random_unitary(4, seed=11).data), ["swap"], [1, 2])
    nm.add_all_qubit_quantum_error(
        mixed_unitary_error([(random_unitary(2, seed=3).data, 0.3), (np.eye(2), 0.7)]), ["y"]
    )
    # Composed and expanded errors.
    nm.add_all_qubit_quantum_error(
        depolarizing_error(0.1, 1).compose(amplitude_damping_error(0.2)), ["z"]
    )
    nm.add_all_qubit_quantum_error(
        reset_error(0.1, 0.05).expand(depolarizing_error(0.2, 1)), ["ecr"]
    )
    # Measurement (before it), reset (after it) and readout errors.
    nm.add_all_qubit_quantum_error(pauli_error([("X", 0.02), ("I", 0.98)]), ["measure"])
    nm.add_all_qubit_quantum_error(reset_error(0.03, 0.01), ["reset"])
    nm.add_all_qubit_readout_error(ReadoutError([[0.95, 0.05], [0.1, 0.9]]))
    nm.add_readout_error(ReadoutError([[0.8, 0.2], [0.25, 0.75]]), [2])
    # A Pauli-Lindblad error (type "plerror", with rates).
    nm.add_quantum_error(
        PauliLindbladError(PauliList(["XX", "ZI", "YZ"]), [0.1, 0.2, 0.05]), ["rzz"], [0, 1]
    )
    return nm


def main():
    os.makedirs(HERE, exist_ok=True)
    fixtures = {
        f"backend_{TAG}.json": fixture(
            backend_model(),
            "NoiseModel.from_backend(GenericBackendV2(num_qubits=3, seed=1234))",
        ),
        f"handbuilt_{TAG}.json": fixture(
            handbuilt_model(),
            "every kind of error of qiskit_aer.noise, local and all-qubit, and readout errors",
        ),
    }
    for name, data in fixtures.items():
        with open(os.path.join(HERE, name), "w") as f:
            json.dump(data, f, separators=(",", ":"))
            f.write("\n")
        print(name, os.path.getsize(os.path.join(HERE, name)), "bytes")


if __name__ == "__main__":
    main()
