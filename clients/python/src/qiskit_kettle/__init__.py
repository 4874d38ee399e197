"""Qiskit provider for Kettle: run circuits on a Kettle server as on Qiskit Aer.

>>> from qiskit import QuantumCircuit, transpile
>>> from qiskit_kettle import KettleProvider
>>> backend = KettleProvider("http://127.0.0.1:8080").backend()
>>> qc = QuantumCircuit(2); qc.h(0); qc.cx(0, 1); qc.measure_all()
>>> backend.run(transpile(qc, backend), shots=1000, seed_simulator=7).result().get_counts()
"""

from __future__ import annotations

from .backend import KettleBackend, SaveStatevector, build_target, save_statevector
from .convert import Program, UnsupportedCircuitError, circuit_to_program
from .job import KettleJob
from .primitives import KettleEstimatorV2, KettlePrimitiveJob, KettleSamplerV2
from .provider import KettleProvider

__all__ = [
    "KettleBackend",
    "KettleJob",
    "KettleProvider",
    "Program",
    "SaveStatevector",
    "UnsupportedCircuitError",
    "build_target",
    "circuit_to_program",
    "save_statevector",
]
