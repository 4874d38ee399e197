//! Why a command stopped, and the exit code that tells a script which kind
//! of problem it was.

use std::fmt;

use kettle_core::SimError;

/// Exit code of a usage or input error (clap's own usage errors use it too).
pub(crate) const EXIT_INPUT: u8 = 2;
/// Exit code of a failure that is not the user's input.
pub(crate) const EXIT_INTERNAL: u8 = 1;

/// A message for stderr (one line, or a few for source errors) and whether
/// the user's input caused it.
#[derive(Debug)]
pub(crate) struct Failure {
    message: String,
    input: bool,
}

impl Failure {
    /// The user's file, arguments or circuit are wrong: exit code 2.
    pub(crate) fn input(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            input: true,
        }
    }

    /// Something else went wrong (writing output, the machine): exit code 1.
    pub(crate) fn internal(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            input: false,
        }
    }

    pub(crate) fn exit_code(&self) -> u8 {
        if self.input {
            EXIT_INPUT
        } else {
            EXIT_INTERNAL
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::internal(format!("kettle: {e}"))
    }
}

impl From<SimError> for Failure {
    fn from(e: SimError) -> Self {
        // The circuit, its size or the options are the user's; the rest is ours.
        let input = matches!(
            e,
            SimError::Circuit(_)
                | SimError::Gate(_)
                | SimError::MemoryBudget { .. }
                | SimError::TooManyShots { .. }
                | SimError::DensityTooLarge { .. }
                | SimError::Observable(_)
                | SimError::QubitOutOfRange { .. }
                | SimError::DuplicateQubit { .. }
                | SimError::IndexOutOfRange { .. }
                | SimError::Distributed(_)
        );
        Failure {
            message: format!("kettle: {e}"),
            input,
        }
    }
}
