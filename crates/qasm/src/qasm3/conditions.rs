//! Conditions on measured bits: the small algebra the lowering keeps for a
//! value that is only known when the circuit runs, and its translation to
//! nested [`Operation::IfElse`]s.
//!
//! A test is "these clbits, read as an integer, equal this value"
//! ([`Condition`]); `!`, `&&` and `||` combine tests, and `!=` is a negated
//! `==`. Bits whose value is known while lowering (never measured) are folded
//! into the test, so `c == 3` on a register of which only `c[0]` was
//! measured tests `c[0]` alone (and is false outright if the known bits
//! disagree with 3).

use kettle_ir::{Clbit, Condition, Operation};

/// One bit of a value: known while lowering, or read from a clbit at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BitRef {
    Known(bool),
    Clbit(Clbit),
}

/// A boolean known only at run time.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Cond {
    Test(Condition),
    Not(Box<Cond>),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
}

/// A boolean: known while lowering or at run time.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Truth {
    Known(bool),
    Runtime(Cond),
}

impl Truth {
    pub(crate) fn not(self) -> Truth {
        match self {
            Truth::Known(b) => Truth::Known(!b),
            // One bit: test it for the other value.
            Truth::Runtime(Cond::Test(c)) if c.clbits.len() == 1 && c.value <= 1 => {
                Truth::Runtime(Cond::Test(Condition {
                    clbits: c.clbits,
                    value: c.value ^ 1,
                }))
            }
            Truth::Runtime(Cond::Not(c)) => Truth::Runtime(*c),
            Truth::Runtime(c) => Truth::Runtime(Cond::Not(Box::new(c))),
        }
    }

    pub(crate) fn and(self, other: Truth) -> Truth {
        match (self, other) {
            (Truth::Known(false), _) | (_, Truth::Known(false)) => Truth::Known(false),
            (Truth::Known(true), x) | (x, Truth::Known(true)) => x,
            (Truth::Runtime(a), Truth::Runtime(b)) => {
                Truth::Runtime(Cond::And(Box::new(a), Box::new(b)))
            }
        }
    }

    /// `self == other` for booleans: `(a && b) || (!a && !b)`.
    pub(crate) fn equal(self, other: Truth) -> Truth {
        let both = self.clone().and(other.clone());
        let neither = self.not().and(other.not());
        both.or(neither)
    }

    pub(crate) fn or(self, other: Truth) -> Truth {
        match (self, other) {
            (Truth::Known(true), _) | (_, Truth::Known(true)) => Truth::Known(true),
            (Truth::Known(false), x) | (x, Truth::Known(false)) => x,
            (Truth::Runtime(a), Truth::Runtime(b)) => {
                Truth::Runtime(Cond::Or(Box::new(a), Box::new(b)))
            }
        }
    }
}

/// `bits == value`, the bits read little-endian.
pub(crate) fn equals(bits: &[BitRef], value: i64) -> Truth {
    let Ok(value) = u64::try_from(value) else {
        return Truth::Known(false);
    };
    if bits.len() < 64 && value >> bits.len() != 0 {
        return Truth::Known(false);
    }
    let mut clbits = Vec::new();
    let mut wanted: u64 = 0;
    for (i, bit) in bits.iter().enumerate() {
        let want = i < 64 && (value >> i) & 1 == 1;
        match *bit {
            BitRef::Known(b) if b != want => return Truth::Known(false),
            BitRef::Known(_) => {}
            BitRef::Clbit(c) => {
                if want {
                    // At most 64 bits can be wanted set, so the shift is in range.
                    wanted |= 1u64.checked_shl(clbits.len() as u32).unwrap_or(0);
                }
                clbits.push(c);
            }
        }
    }
    if clbits.is_empty() {
        return Truth::Known(true);
    }
    Truth::Runtime(Cond::Test(Condition::equals(clbits, wanted)))
}

/// `bits != 0`: the value as a condition.
pub(crate) fn nonzero(bits: &[BitRef]) -> Truth {
    if bits.contains(&BitRef::Known(true)) {
        return Truth::Known(true);
    }
    let mut measured = bits.iter().filter_map(|b| match b {
        BitRef::Clbit(c) => Some(*c),
        BitRef::Known(_) => None,
    });
    match (measured.next(), measured.next()) {
        (None, _) => Truth::Known(false),
        // One measured bit: test it for 1 rather than the register for "not 0".
        (Some(c), None) => Truth::Runtime(Cond::Test(Condition::bit(c, true))),
        _ => equals(bits, 0).not(),
    }
}

/// Clbits a condition reads, counted once per test.
pub(crate) fn clbit_count(cond: &Cond) -> usize {
    match cond {
        Cond::Test(c) => c.clbits.len(),
        Cond::Not(c) => clbit_count(c),
        Cond::And(a, b) | Cond::Or(a, b) => clbit_count(a).saturating_add(clbit_count(b)),
    }
}

/// Operations in `ops`, `if` blocks counted with their contents.
pub(crate) fn count_ops(ops: &[Operation]) -> u64 {
    ops.iter()
        .map(|op| match op {
            Operation::IfElse {
                then_ops, else_ops, ..
            } => 1u64
                .saturating_add(count_ops(then_ops))
                .saturating_add(count_ops(else_ops)),
            _ => 1,
        })
        .fold(0u64, u64::saturating_add)
}

/// How deeply `if` blocks nest in `ops` (0 for none).
pub(crate) fn nesting(ops: &[Operation]) -> usize {
    ops.iter()
        .map(|op| match op {
            Operation::IfElse {
                then_ops, else_ops, ..
            } => 1 + nesting(then_ops).max(nesting(else_ops)),
            _ => 0,
        })
        .max()
        .unwrap_or(0)
}

/// The operations that run `then_ops` when `cond` holds and `else_ops`
/// otherwise: `a && b` nests `b`'s test in `a`'s, `a || b` nests it in the
/// else branch, `!a` swaps the branches. A branch that appears twice is
/// copied; the caller counts the copies against the operation limit.
pub(crate) fn branch(cond: &Cond, then_ops: Vec<Operation>, else_ops: Vec<Operation>) -> Operation {
    match cond {
        Cond::Test(c) => Operation::IfElse {
            condition: c.clone(),
            then_ops,
            else_ops,
        },
        Cond::Not(c) => branch(c, else_ops, then_ops),
        Cond::And(a, b) => {
            let inner = branch(b, then_ops, else_ops.clone());
            branch(a, vec![inner], else_ops)
        }
        Cond::Or(a, b) => {
            let inner = branch(b, then_ops.clone(), else_ops);
            branch(a, then_ops, vec![inner])
        }
    }
}

/// Operations [`branch`] produces (its `if`s included) from branches of
/// `then_len` and `else_len` operations; the excess over the two is what it
/// copies, which the caller counts against the operation limit.
pub(crate) fn total_ops(cond: &Cond, then_len: u64, else_len: u64) -> u64 {
    match cond {
        Cond::Test(_) => 1u64.saturating_add(then_len).saturating_add(else_len),
        Cond::Not(c) => total_ops(c, else_len, then_len),
        Cond::And(a, b) => total_ops(a, total_ops(b, then_len, else_len), else_len),
        Cond::Or(a, b) => total_ops(a, then_len, total_ops(b, then_len, else_len)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_bits_fold_into_tests() {
        let bits = [BitRef::Clbit(4), BitRef::Known(true), BitRef::Clbit(7)];
        assert_eq!(
            equals(&bits, 0b110),
            Truth::Runtime(Cond::Test(Condition::equals(vec![4, 7], 0b10)))
        );
        assert_eq!(equals(&bits, 0b100), Truth::Known(false));
        assert_eq!(equals(&bits, 8), Truth::Known(false));
        assert_eq!(equals(&bits, -1), Truth::Known(false));
        assert_eq!(nonzero(&bits), Truth::Known(true));
        assert_eq!(equals(&[BitRef::Known(false)], 0), Truth::Known(true));
    }

    #[test]
    fn and_nests_and_counts_copies() {
        let t = |c| Cond::Test(Condition::bit(c, true));
        let cond = Cond::And(Box::new(t(0)), Box::new(t(1)));
        let x = Operation::Barrier { qubits: vec![0] };
        let op = branch(&cond, vec![x.clone()], vec![x.clone(), x]);
        assert_eq!(count_ops(std::slice::from_ref(&op)), 1 + 1 + 1 + 2 + 2);
        assert_eq!(total_ops(&cond, 1, 2), 7);
        assert_eq!(nesting(std::slice::from_ref(&op)), 2);
        let or = Cond::Or(Box::new(cond.clone()), Box::new(t(2)));
        let y = Operation::Barrier { qubits: vec![1] };
        let op = branch(&or, vec![y.clone(); 3], vec![y; 5]);
        assert_eq!(count_ops(std::slice::from_ref(&op)), total_ops(&or, 3, 5));
        assert_eq!(nesting(&[op]), 3);
    }
}
