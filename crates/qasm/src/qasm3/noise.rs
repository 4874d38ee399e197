//! Noise channels by name, as Kettle's front ends spell them (issue 18):
//! Braket's noise pragmas (`#pragma braket noise depolarizing(0.01) q[0]`)
//! and the `channel` operation of the JSON format, which also knows Qiskit
//! Aer's names. One table serves both, so that a name means the same
//! channel, with the same parameters in the same order, wherever it is read.

use kettle_ir::{Channel, ChannelError, Complex64, GateMatrix};

/// A channel Kettle reads by name.
pub(crate) struct NamedChannel {
    /// Its name, as its library spells it ([`Channel::name`]).
    pub(crate) name: &'static str,
    /// Its parameters' names, in its library's order (for messages).
    pub(crate) params: &'static [&'static str],
    /// Whether Braket's noise pragma knows it (Aer's names are JSON only:
    /// a pragma Braket would refuse should not pass here either).
    pub(crate) braket: bool,
    /// Builds it from its parameters on this many qubits (only Aer's
    /// `depolarizing_error` takes its size from its qubits; the others
    /// have a fixed size, which the caller checks against the qubits given).
    build: fn(&[f64], u32) -> Result<Channel, ChannelError>,
}

impl NamedChannel {
    /// The channel with `params` (as many as [`NamedChannel::params`]) on
    /// `num_qubits` qubits.
    ///
    /// # Errors
    /// Parameters out of range, as the IR's constructors find them.
    pub(crate) fn build(&self, params: &[f64], num_qubits: u32) -> Result<Channel, ChannelError> {
        debug_assert_eq!(params.len(), self.params.len());
        (self.build)(params, num_qubits)
    }
}

/// Every channel Kettle reads by name.
const NAMED_CHANNELS: &[NamedChannel] = &[
    NamedChannel {
        name: "bit_flip",
        params: &["probability"],
        braket: true,
        build: |p, _| Channel::bit_flip(p[0]),
    },
    NamedChannel {
        name: "phase_flip",
        params: &["probability"],
        braket: true,
        build: |p, _| Channel::phase_flip(p[0]),
    },
    NamedChannel {
        name: "pauli_channel",
        params: &["probX", "probY", "probZ"],
        braket: true,
        build: |p, _| Channel::pauli_channel(p[0], p[1], p[2]),
    },
    NamedChannel {
        name: "depolarizing",
        params: &["probability"],
        braket: true,
        build: |p, _| Channel::depolarizing(p[0]),
    },
    NamedChannel {
        name: "two_qubit_depolarizing",
        params: &["probability"],
        braket: true,
        build: |p, _| Channel::two_qubit_depolarizing(p[0]),
    },
    NamedChannel {
        name: "two_qubit_dephasing",
        params: &["probability"],
        braket: true,
        build: |p, _| Channel::two_qubit_dephasing(p[0]),
    },
    NamedChannel {
        name: "amplitude_damping",
        params: &["gamma"],
        braket: true,
        build: |p, _| Channel::amplitude_damping(p[0]),
    },
    NamedChannel {
        name: "generalized_amplitude_damping",
        params: &["gamma", "probability"],
        braket: true,
        build: |p, _| Channel::generalized_amplitude_damping(p[0], p[1]),
    },
    NamedChannel {
        name: "phase_damping",
        params: &["gamma"],
        braket: true,
        build: |p, _| Channel::phase_damping(p[0]),
    },
    NamedChannel {
        name: "depolarizing_error",
        params: &["param"],
        braket: false,
        build: |p, n| Channel::depolarizing_mixed(p[0], n),
    },
    NamedChannel {
        name: "thermal_relaxation_error",
        params: &["t1", "t2", "time", "excited_state_population"],
        braket: false,
        build: |p, _| Channel::thermal_relaxation(p[0], p[1], p[2], p[3]),
    },
    NamedChannel {
        name: "reset_error",
        params: &["p0", "p1"],
        braket: false,
        build: |p, _| Channel::reset_error(p[0], p[1]),
    },
];

/// The channel called `name`.
pub(crate) fn named_channel(name: &str) -> Option<&'static NamedChannel> {
    NAMED_CHANNELS.iter().find(|c| c.name == name)
}

/// Every channel name the front ends read: the named channels, then
/// `kraus` (and `mixture`, in the JSON format).
pub fn noise_channel_names() -> Vec<&'static str> {
    NAMED_CHANNELS
        .iter()
        .map(|c| c.name)
        .chain(["kraus", "mixture"])
        .collect()
}

/// The names of the channels `keep` selects, for "expected one of" messages.
pub(crate) fn channel_names(keep: impl Fn(&NamedChannel) -> bool) -> String {
    let names: Vec<String> = NAMED_CHANNELS
        .iter()
        .filter(|c| keep(c))
        .map(|c| format!("`{}`", c.name))
        .collect();
    names.join(", ")
}

/// Which of `params` an error is about: the first whose value the error
/// names (so that a message can point at the argument that is wrong, not
/// just at the channel). `None` for errors about no single parameter, such
/// as a sum of probabilities above 1.
pub(crate) fn offending_param(error: &ChannelError, params: &[f64]) -> Option<usize> {
    match error {
        ChannelError::Parameter { value, .. } => {
            params.iter().position(|p| p.to_bits() == value.to_bits())
        }
        _ => None,
    }
}

/// A matrix on `num_qubits` qubits, given row-major in Braket's qubit order
/// (the first listed qubit is the most significant bit of an index), in
/// Kettle's (bit `i` of an index is `qubits[i]`, the first listed qubit
/// the least significant): the bits of every row and column index are
/// reversed, so the qubits stay in the order the program wrote them.
pub(crate) fn from_big_endian(num_qubits: u32, data: &[Complex64]) -> GateMatrix {
    let dim = 1usize << num_qubits;
    let reverse = |i: usize| {
        if num_qubits == 0 {
            i
        } else {
            i.reverse_bits() >> (usize::BITS - num_qubits)
        }
    };
    let mut out = vec![Complex64::new(0.0, 0.0); dim * dim];
    for r in 0..dim {
        for c in 0..dim {
            out[reverse(r) * dim + reverse(c)] = data[r * dim + c];
        }
    }
    GateMatrix::new(num_qubits, out).expect("a square matrix of 2^n rows")
}
