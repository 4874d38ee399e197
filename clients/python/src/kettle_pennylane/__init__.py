"""A native PennyLane device for Kettle: ``qml.device("kettle", wires=2, url=…)``.

Registered as PennyLane's ``kettle`` plugin (the ``pennylane.plugins`` entry
point of ``kettle-client[pennylane]``). See :mod:`kettle_pennylane.device`.
"""

from __future__ import annotations

from .convert import NATIVE_GATES, Program, pauli_sum, tape_to_program
from .device import KettleDevice, KettleDeviceError

__all__ = ["NATIVE_GATES", "KettleDevice", "KettleDeviceError", "Program", "pauli_sum", "tape_to_program"]
