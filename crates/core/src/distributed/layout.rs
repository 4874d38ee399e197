//! Where each qubit lives when a state is split over `2^p` ranks, and the
//! plan of exchanges that brings qubits to where gates need them.
//!
//! The state's `n` qubits sit at *positions*: positions `0..n-p` are local
//! (they index amplitudes inside a rank's slice), positions `n-p..n` are
//! global (bit `j` of the rank number is position `n-p+j`). A gate needs its
//! targets local unless it is diagonal: a diagonal's global targets, and
//! every control on a global position, are fixed bits on each rank, so the
//! rank applies a smaller operation (or none) without communicating.
//!
//! The planner first applies every gate it can without communicating,
//! leaving those that need a global qubit local and every later gate that
//! shares a qubit with one left (a cut along each qubit's time line, see
//! [`plan`]). Then it swaps the global qubits the first gate left needs
//! with local qubits in one *exchange*, and swaps in at the same time every
//! other global qubit that the next gates will need (up to all `p`), each
//! against the local qubit needed last (Belady's rule, as cuStateVec's
//! lazy wire ordering does; a qubit whose gates are all done is the best
//! one to send out). An exchange of `k` swaps moves `1 - 2^-k` of every
//! slice once. Qubits are never swapped back to restore an order: the
//! layout travels with the state, and results are read through it.
//!
//! A permutation of basis states on global qubits alone (X, CX and Toffoli
//! between global qubits, controlled swaps, with any phases) moves no
//! amplitude either: it changes which global bits each rank's slice stands
//! for, the rank's *label*, and leaves a diagonal of its phases. Every
//! reading of a rank's global bits goes through [`Layout::label`], and
//! every search for the rank that holds some global bits through
//! [`Layout::rank_of`].
//!
//! A state still |0…0⟩ may take any layout for free; it starts with the
//! qubits the run never needs local as its global ones, where there are
//! any ([`lay_out_fresh`]).

use std::collections::VecDeque;

use kettle_ir::{Control, Qubit};
use num_complex::Complex64;
use smallvec::SmallVec;

use crate::op::{KernelOp, LeftBehind, OpMatrix};

/// The position of every qubit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// `position[q]`: where qubit `q` sits.
    position: Vec<Qubit>,
    /// Global positions (the last `global` of the `n`).
    global: u32,
    /// Rank `r`'s slice holds the amplitudes whose global bits read
    /// `labels[r]` (bit `j`: position `n-p+j`).
    labels: Vec<usize>,
}

impl Layout {
    /// Every qubit at its own position, the top `global` ones global.
    pub fn identity(num_qubits: u32, global: u32) -> Layout {
        assert!(global <= num_qubits, "more global qubits than qubits");
        Layout {
            position: (0..num_qubits).collect(),
            global,
            labels: (0..1 << global).collect(),
        }
    }

    /// Qubits in all.
    pub fn num_qubits(&self) -> u32 {
        self.position.len() as u32
    }

    /// Local positions: qubits of one rank's slice.
    pub fn local_qubits(&self) -> u32 {
        self.num_qubits() - self.global
    }

    /// The position of qubit `q`.
    pub fn position(&self, q: Qubit) -> Qubit {
        self.position[q as usize]
    }

    /// The qubit at position `p`.
    pub fn qubit_at(&self, p: Qubit) -> Qubit {
        self.position
            .iter()
            .position(|&x| x == p)
            .expect("every position holds a qubit") as Qubit
    }

    /// The global bits of the amplitudes rank `rank` holds (bit `j`:
    /// position `n-p+j`): its label.
    pub fn label(&self, rank: usize) -> usize {
        self.labels[rank]
    }

    /// The rank that holds the amplitudes whose global bits read `label`.
    pub fn rank_of(&self, label: usize) -> usize {
        self.labels
            .iter()
            .position(|&l| l == label)
            .expect("every label is some rank's")
    }

    /// Applies `op` (on positions: a [`Step::Permute`]) to every rank's
    /// label: where its controls hold, the label's bits at its targets
    /// move from the pattern `src[r]` to `r`.
    pub(crate) fn permute_labels(&mut self, op: &KernelOp) {
        let OpMatrix::Monomial { src, .. } = &op.matrix else {
            panic!("a permutation of labels is a monomial");
        };
        let local = self.local_qubits();
        let bit = |p: Qubit| 1usize << (p - local);
        let mut to = vec![0; src.len()];
        for (r, &s) in src.iter().enumerate() {
            to[s] = r;
        }
        for label in &mut self.labels {
            if !op
                .controls
                .iter()
                .all(|c| (*label & bit(c.qubit) != 0) == c.on)
            {
                continue;
            }
            let pattern: usize = (op.targets.iter().enumerate())
                .map(|(i, &t)| usize::from(*label & bit(t) != 0) << i)
                .sum();
            for (i, &t) in op.targets.iter().enumerate() {
                *label &= !bit(t);
                if (to[pattern] >> i) & 1 == 1 {
                    *label |= bit(t);
                }
            }
        }
    }

    /// Whether every qubit sits at its own position.
    pub fn is_identity(&self) -> bool {
        self.position
            .iter()
            .enumerate()
            .all(|(q, &p)| p == q as Qubit)
    }

    fn is_global(&self, q: Qubit) -> bool {
        self.position(q) >= self.local_qubits()
    }

    /// Swaps the qubits at positions `a` and `b`.
    pub(crate) fn swap_positions(&mut self, a: Qubit, b: Qubit) {
        for p in &mut self.position {
            if *p == a {
                *p = b;
            } else if *p == b {
                *p = a;
            }
        }
    }

    /// The state index (bit `q` for qubit `q`) of the amplitude at physical
    /// index `physical` (bit `position(q)` for qubit `q`; a rank's slice
    /// starts at its [`label`](Self::label) times the slice length).
    pub fn logical_index(&self, physical: u64) -> u64 {
        self.position
            .iter()
            .enumerate()
            .map(|(q, &p)| ((physical >> p) & 1) << q)
            .sum()
    }

    /// `op` with its qubits replaced by their positions.
    fn place(&self, op: &KernelOp) -> KernelOp {
        KernelOp {
            targets: op.targets.iter().map(|&q| self.position(q)).collect(),
            controls: op
                .controls
                .iter()
                .map(|c| Control {
                    qubit: self.position(c.qubit),
                    on: c.on,
                })
                .collect(),
            matrix: op.matrix.clone(),
        }
    }
}

/// Whether `op` swaps two qubits and does nothing else: the planner moves
/// the qubits' labels instead of their amplitudes.
fn is_swap(op: &KernelOp) -> bool {
    let one = Complex64::new(1.0, 0.0);
    op.targets.len() == 2
        && op.controls.is_empty()
        && matches!(&op.matrix, OpMatrix::Monomial { src, phase }
            if src.as_slice() == [0, 2, 1, 3] && phase.iter().all(|&p| p == one))
}

/// Qubits an operation needs at local positions: the targets of anything
/// but a diagonal or a swap.
fn needs_local(op: &KernelOp) -> &[Qubit] {
    match op.matrix {
        OpMatrix::Diagonal(_) => &[],
        _ if is_swap(op) => &[],
        _ => &op.targets,
    }
}

/// One step of a distributed run. Each rank reads an operation's global
/// positions through its label at that step, and applies the operations
/// between two exchanges as one program.
#[derive(Clone, Debug)]
pub(crate) enum Step {
    /// Operations on positions: global ones only as controls or diagonal
    /// targets (see [`local_op`]).
    Ops(Vec<KernelOp>),
    /// Swap the qubits at these `(global, local)` position pairs, all in
    /// one exchange.
    Exchange(Vec<(Qubit, Qubit)>),
    /// Swap the qubits at these two positions in the layout only: a swap
    /// gate, which moves no amplitude.
    Relabel(Qubit, Qubit),
    /// Permute every rank's label ([`Layout::permute_labels`]): a
    /// permutation on global qubits alone, which moves no amplitude.
    Permute(KernelOp),
}

/// If `op` (on qubits) permutes the basis states of global qubits alone
/// (a monomial whose targets and controls are all global in `layout`):
/// the permutation of labels (on positions, without its phases) and the
/// diagonal of its phases (on qubits), applied after it; `None` for the
/// identity's phases.
fn global_permutation(op: &KernelOp, layout: &Layout) -> Option<(KernelOp, Option<KernelOp>)> {
    let OpMatrix::Monomial { src, phase } = &op.matrix else {
        return None;
    };
    if !op.qubits().all(|q| layout.is_global(q)) {
        return None;
    }
    let one = Complex64::new(1.0, 0.0);
    let phases = (!phase.iter().all(|&p| p == one)).then(|| KernelOp {
        targets: op.targets.clone(),
        controls: op.controls.clone(),
        matrix: OpMatrix::Diagonal(phase.clone()),
    });
    let permutation = KernelOp {
        matrix: OpMatrix::Monomial {
            src: src.clone(),
            phase: vec![one; src.len()],
        },
        ..layout.place(op)
    };
    Some((permutation, phases))
}

/// Positions that select lanes inside a SIMD block at either precision
/// (16 f32 lanes).
const LANE_POSITIONS: Qubit = 4;

/// How far ahead the planner looks for qubits to bring in with the one a
/// gate needs now, and for the next use of a qubit it might send out.
const LOOK_AHEAD: usize = 4096;

/// Operations a round may pass over and leave for a later one before it
/// stops looking further (as in cache blocking: planning stays linear in
/// the run's length).
const SCAN_LIMIT: usize = 512;

/// Plans `ops` (on qubits) for a state laid out as `layout`, which becomes
/// the layout after the last step.
///
/// The plan is made of *rounds*, each its operations and then one
/// exchange. A round takes, in circuit order, every operation that needs
/// no global qubit local and commutes with every earlier one it left
/// (shares no qubit with it, or both act diagonally on those they share:
/// diagonals, and controls); an operation it cannot take is left, and
/// closes its qubits for the round. Operations left keep their order, and
/// one taken commutes with every earlier one left ([`LeftBehind`]), so the
/// rounds apply the same unitary as the run (the argument of cache
/// blocking's stages). An exchange is then a cut through the circuit along
/// each qubit's own time line, not across all of them at one gate: a
/// rank's operations between two exchanges are as many as can be, and its
/// program plans them into as few passes as its chunks allow.
pub(crate) fn plan(ops: &[KernelOp], layout: &mut Layout) -> Vec<Step> {
    let n = layout.num_qubits() as usize;
    let mut steps = Vec::new();
    let push_op = |steps: &mut Vec<Step>, op: KernelOp| match steps.last_mut() {
        Some(Step::Ops(run)) => run.push(op),
        _ => steps.push(Step::Ops(vec![op])),
    };
    let mut remaining: VecDeque<&KernelOp> = ops.iter().collect();
    while !remaining.is_empty() {
        let mut closed = LeftBehind::default();
        let mut left = Vec::new();
        while left.len() < SCAN_LIMIT && closed.closed() < n {
            let Some(op) = remaining.pop_front() else {
                break;
            };
            let free = closed.lets_pass(op);
            let permutation = free.then(|| global_permutation(op, layout)).flatten();
            let blocked = !free
                || (permutation.is_none() && needs_local(op).iter().any(|&q| layout.is_global(q)));
            if blocked {
                closed.leave(op);
                left.push(op);
            } else if is_swap(op) {
                // Qubit a's state moves to b's position and b's to a's.
                let (pa, pb) = (
                    layout.position(op.targets[0]),
                    layout.position(op.targets[1]),
                );
                layout.swap_positions(pa, pb);
                steps.push(Step::Relabel(pa, pb));
            } else if let Some((permutation, phases)) = permutation {
                layout.permute_labels(&permutation);
                steps.push(Step::Permute(permutation));
                if let Some(phases) = phases {
                    push_op(&mut steps, layout.place(&phases));
                }
            } else {
                push_op(&mut steps, layout.place(op));
            }
        }
        for op in left.into_iter().rev() {
            remaining.push_front(op);
        }
        if !remaining.is_empty() {
            // The first operation left needs a global qubit local.
            let swaps = choose_swaps(remaining.iter().copied(), layout);
            debug_assert!(!swaps.is_empty());
            for &(g, l) in &swaps {
                layout.swap_positions(g, l);
            }
            steps.push(Step::Exchange(swaps));
        }
    }
    steps
}

/// The `(global, local)` position pairs to swap before `ops`, whose first
/// operation needs a global qubit local.
fn choose_swaps<'a>(
    ops: impl Iterator<Item = &'a KernelOp>,
    layout: &Layout,
) -> Vec<(Qubit, Qubit)> {
    let n = layout.num_qubits() as usize;
    // The first time each qubit is needed local, and used at all.
    let mut first_need = vec![usize::MAX; n];
    let mut first_use = vec![usize::MAX; n];
    for (j, op) in ops.take(LOOK_AHEAD).enumerate() {
        for &q in needs_local(op) {
            let f = &mut first_need[q as usize];
            *f = (*f).min(j);
        }
        for q in op.qubits() {
            let f = &mut first_use[q as usize];
            *f = (*f).min(j);
        }
    }
    // Global qubits to bring in, the soonest needed first.
    let mut incoming: Vec<Qubit> = (0..n as Qubit)
        .filter(|&q| layout.is_global(q) && first_need[q as usize] != usize::MAX)
        .collect();
    incoming.sort_by_key(|&q| (first_need[q as usize], q));
    // Local qubits to send out, the latest needed first; those at the
    // positions inside a SIMD block last (an exchange that swaps one moves
    // single amplitudes instead of whole blocks); among equals, the latest
    // used in any way (a control sent out makes its gate run on the ranks
    // holding a 1 there only, over their whole slices, while the others
    // idle), then the highest positions (longer contiguous runs).
    let mut outgoing: Vec<Qubit> = (0..n as Qubit)
        .filter(|&q| !layout.is_global(q) && first_need[q as usize] != 0)
        .collect();
    outgoing.sort_by_key(|&q| {
        let p = layout.position(q);
        (
            p < LANE_POSITIONS,
            std::cmp::Reverse(first_need[q as usize]),
            std::cmp::Reverse(first_use[q as usize]),
            std::cmp::Reverse(p),
        )
    });
    let mut swaps = Vec::new();
    for (&inc, &out) in incoming.iter().zip(&outgoing) {
        // Only a trade that brings a qubit in before the one sent out is
        // needed again; the gate at `at` always gets its qubits.
        if first_need[inc as usize] != 0 && first_need[inc as usize] >= first_need[out as usize] {
            break;
        }
        swaps.push((layout.position(inc), layout.position(out)));
    }
    swaps
}

/// `op` (on positions) as the rank labelled `label` applies it to its slice
/// of `local` qubits, or `None` where it does nothing there: controls on
/// global positions are the label's bits (held: dropped; not held: no operation),
/// and a diagonal's global targets select part of its diagonal.
pub(crate) fn local_op(op: &KernelOp, local: u32, label: usize) -> Option<KernelOp> {
    let bit = |q: Qubit| (label >> (q - local)) & 1 == 1;
    let mut controls: SmallVec<[Control; 4]> = SmallVec::new();
    for c in &op.controls {
        if c.qubit < local {
            controls.push(*c);
        } else if bit(c.qubit) != c.on {
            return None;
        }
    }
    if op.targets.iter().all(|&t| t < local) {
        return Some(KernelOp {
            targets: op.targets.clone(),
            controls,
            matrix: op.matrix.clone(),
        });
    }
    let OpMatrix::Diagonal(diag) = &op.matrix else {
        panic!("a global target of a non-diagonal operation (the planner brings those in)");
    };
    // The diagonal's entries with its global targets at this rank's bits.
    let fixed: usize = op
        .targets
        .iter()
        .enumerate()
        .filter(|&(_, &t)| t >= local)
        .map(|(i, &t)| usize::from(bit(t)) << i)
        .sum();
    let kept: SmallVec<[(usize, Qubit); 4]> = op
        .targets
        .iter()
        .enumerate()
        .filter(|&(_, &t)| t < local)
        .map(|(i, &t)| (i, t))
        .collect();
    let sub: Vec<Complex64> = (0..1usize << kept.len())
        .map(|j| {
            let index = kept
                .iter()
                .enumerate()
                .fold(fixed, |acc, (b, &(i, _))| acc | ((j >> b) & 1) << i);
            diag[index]
        })
        .collect();
    if !kept.is_empty() {
        return Some(KernelOp {
            targets: kept.iter().map(|&(_, t)| t).collect(),
            controls,
            matrix: OpMatrix::Diagonal(sub),
        });
    }
    // A phase on the whole slice, or on the part where the local controls
    // hold: a diagonal on the first control's qubit.
    let phase = sub[0];
    let one = Complex64::new(1.0, 0.0);
    if phase == one {
        return None;
    }
    let (target, diag) = match controls.first() {
        Some(c) => {
            let d = if c.on {
                vec![one, phase]
            } else {
                vec![phase, one]
            };
            let t = c.qubit;
            controls.remove(0);
            (t, d)
        }
        None => (0, vec![phase, phase]),
    };
    Some(KernelOp {
        targets: [target].into_iter().collect(),
        controls,
        matrix: OpMatrix::Diagonal(diag),
    })
}

/// Lays out a state still |0…0⟩ for `ops` (on qubits, as the planner
/// will see them) with the free swaps of [`initial_swaps`], and takes out
/// of `ops` the gates that start its product state on global qubits
/// ([`take_global_prefix`]), whose qubit states it returns.
pub(crate) fn lay_out_fresh(ops: &mut Vec<KernelOp>, layout: &mut Layout) -> Vec<[Complex64; 2]> {
    for (a, b) in initial_swaps(ops, layout) {
        layout.swap_positions(a, b);
    }
    take_global_prefix(ops, layout)
}

/// The position swaps that lay out a state still |0…0⟩ for `ops` (on
/// qubits): free, since its one non-zero amplitude has no 1 anywhere. A
/// qubit that `ops` never need local (within the planner's look-ahead) is
/// the best global one, and takes the place of the global qubit needed
/// soonest. Needed local is as the planner sees it, and more: a gate alone
/// on a qubit before anything else touches it needs nothing, since on a
/// global qubit it runs first, as part of a product state
/// ([`take_global_prefix`]), and neither does an X or Y, which on a global
/// qubit relabels ranks.
///
/// GHZ's first qubit, for one: its Hadamard starts the product and it is
/// only a control after, so with it global every rank takes its share of
/// the chain from the start and 2 ranks exchange nothing, where the top
/// qubit global kept the state on one rank until the chain's last gate.
/// Qubits that are all needed sooner or later stay where they are: putting
/// those needed latest global (Belady's rule, which the exchanges follow)
/// cut swaps but not exchanges, and cost rqc_24 a second exchange at 4
/// ranks.
fn initial_swaps(ops: &[KernelOp], layout: &Layout) -> Vec<(Qubit, Qubit)> {
    let n = layout.num_qubits() as usize;
    let mut first_need = vec![usize::MAX; n];
    let mut open = vec![true; n];
    for (j, op) in ops.iter().take(LOOK_AHEAD).enumerate() {
        let alone = op.targets.len() == 1 && op.controls.is_empty();
        if alone && open[op.targets[0] as usize] {
            continue;
        }
        for q in op.qubits() {
            open[q as usize] = false;
        }
        let relabels = global_permutation(op, layout).is_some()
            || (alone && matches!(op.matrix, OpMatrix::Monomial { .. }));
        if !relabels {
            for &q in needs_local(op) {
                let f = &mut first_need[q as usize];
                *f = (*f).min(j);
            }
        }
    }
    // Never needed, the highest first; out for them, the soonest needed.
    let mut incoming: Vec<Qubit> = (0..n as Qubit)
        .filter(|&q| !layout.is_global(q) && first_need[q as usize] == usize::MAX)
        .collect();
    incoming.sort_by_key(|&q| std::cmp::Reverse(layout.position(q)));
    let mut outgoing: Vec<Qubit> = (0..n as Qubit)
        .filter(|&q| layout.is_global(q) && first_need[q as usize] != usize::MAX)
        .collect();
    outgoing.sort_by_key(|&q| (first_need[q as usize], layout.position(q)));
    incoming
        .iter()
        .zip(&outgoing)
        .map(|(&inc, &out)| (layout.position(out), layout.position(inc)))
        .collect()
}

/// Takes out of `ops` the gates that act on a global qubit (of `layout`)
/// alone before anything else touches it: they commute with every gate
/// before them, so they can run first, on |0⟩, where they make a product
/// state that each rank writes without communicating. Returns, per global
/// position (ascending), the qubit's state after them: `[⟨0|ψ⟩, ⟨1|ψ⟩]`.
fn take_global_prefix(ops: &mut Vec<KernelOp>, layout: &Layout) -> Vec<[Complex64; 2]> {
    let n = layout.num_qubits() as usize;
    let zero = Complex64::new(0.0, 0.0);
    let mut state = vec![[Complex64::new(1.0, 0.0), zero]; n];
    let mut open = vec![true; n];
    ops.retain(|op| {
        let alone = op.targets.len() == 1 && op.controls.is_empty();
        let q = op.targets.first().copied().unwrap_or(0) as usize;
        if alone && open[q] && layout.is_global(q as Qubit) {
            let [a, b] = state[q];
            state[q] = [
                op.entry(0, 0) * a + op.entry(0, 1) * b,
                op.entry(1, 0) * a + op.entry(1, 1) * b,
            ];
            return false;
        }
        for q in op.qubits() {
            open[q as usize] = false;
        }
        true
    });
    let mut globals: Vec<(Qubit, [Complex64; 2])> = (0..n as Qubit)
        .filter(|&q| layout.is_global(q))
        .map(|q| (layout.position(q), state[q as usize]))
        .collect();
    globals.sort_by_key(|&(p, _)| p);
    globals.into_iter().map(|(_, s)| s).collect()
}

/// What a plan's exchanges move, per rank.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExchangeVolume {
    /// Exchanges (each one all-to-all within groups of ranks).
    pub exchanges: u64,
    /// Amplitudes each rank sends in all.
    pub amplitudes_sent: u64,
}

impl std::ops::Add for ExchangeVolume {
    type Output = ExchangeVolume;

    fn add(self, other: ExchangeVolume) -> ExchangeVolume {
        ExchangeVolume {
            exchanges: self.exchanges + other.exchanges,
            amplitudes_sent: self.amplitudes_sent + other.amplitudes_sent,
        }
    }
}

impl ExchangeVolume {
    /// The amplitudes sent per rank in slices: a state of `num_qubits`
    /// split over `ranks` ranks (a power of two) has slices of
    /// `2^num_qubits / ranks` amplitudes.
    pub fn slices_sent(&self, num_qubits: u32, ranks: usize) -> f64 {
        let slice = (1u64 << (num_qubits - ranks.trailing_zeros())) as f64;
        self.amplitudes_sent as f64 / slice
    }
}

/// What `steps` send per rank, each slice holding `2^local` amplitudes.
pub(crate) fn volume(steps: &[Step], local: u32) -> ExchangeVolume {
    let slice = 1u64 << local;
    let mut v = ExchangeVolume::default();
    for step in steps {
        if let Step::Exchange(swaps) = step {
            let k = swaps.len() as u32;
            v.exchanges += 1;
            v.amplitudes_sent += slice - (slice >> k);
        }
    }
    v
}

/// What a per-gate scheme (QuEST's) sends per rank on the same operations
/// with the qubits in place: a whole slice for each global qubit that a
/// non-diagonal operation targets.
pub(crate) fn per_gate_volume(ops: &[KernelOp], layout: &Layout) -> ExchangeVolume {
    let slice = 1u64 << layout.local_qubits();
    let mut v = ExchangeVolume::default();
    for op in ops {
        let global = needs_local(op)
            .iter()
            .filter(|&&q| layout.is_global(q))
            .count() as u64;
        v.exchanges += global;
        v.amplitudes_sent += global * slice;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use kettle_ir::{Gate, StandardGate};

    fn op(g: StandardGate, params: &[f64], qubits: &[Qubit]) -> KernelOp {
        KernelOp::from_gate(&Gate::standard(g, params), qubits, &[])
    }

    /// The swaps of each exchange among `steps`.
    fn exchanges(steps: &[Step]) -> Vec<Vec<(Qubit, Qubit)>> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Exchange(w) => Some(w.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn diagonals_and_controls_on_global_qubits_need_no_exchange() {
        use StandardGate::*;
        // 6 qubits, 2 global (4 and 5).
        let ops = vec![
            op(H, &[], &[0]),
            op(Rz, &[0.3], &[5]),
            op(Cz, &[], &[4, 5]),
            op(Cx, &[], &[5, 1]),
            op(Rzz, &[0.2], &[4, 2]),
        ];
        let mut layout = Layout::identity(6, 2);
        let steps = plan(&ops, &mut layout);
        assert_eq!(steps.len(), 1);
        assert!(layout.is_identity());
    }

    #[test]
    fn a_control_of_the_gate_that_needs_the_exchange_stays_local() {
        use StandardGate::*;
        // 8 qubits, 1 global (7): cx(6, 7) needs 7 local. Sending 6 out
        // would make the cx an X on the ranks holding 6 = 1 alone, over
        // their whole slices; 5 goes instead (nothing uses it again).
        let ops = vec![op(H, &[], &[6]), op(Cx, &[], &[6, 7])];
        let mut layout = Layout::identity(8, 1);
        let steps = plan(&ops, &mut layout);
        assert_eq!(exchanges(&steps), vec![vec![(7, 5)]]);
    }

    #[test]
    fn a_fresh_state_puts_global_the_qubits_never_needed_local() {
        use StandardGate::*;
        // GHZ on 8 qubits: qubit 0's h starts a product state and it is a
        // control after, so it takes the global place of the qubit needed
        // soonest (6 of 6 and 7); the rest are needed, and stay.
        let mut ghz = vec![op(H, &[], &[0])];
        ghz.extend((1..8).map(|q| op(Cx, &[], &[q - 1, q])));
        assert_eq!(initial_swaps(&ghz, &Layout::identity(8, 1)), vec![(7, 0)]);
        assert_eq!(initial_swaps(&ghz, &Layout::identity(8, 2)), vec![(6, 0)]);
        let mut layout = Layout::identity(8, 2);
        let mut ops = ghz.clone();
        let product = lay_out_fresh(&mut ops, &mut layout);
        assert_eq!((layout.position(0), layout.position(6)), (6, 0));
        assert_eq!(ops.len(), 7, "the h runs as the product state");
        assert!(
            product[0][1].norm() > 0.7,
            "qubit 0's |1⟩ at global position 6"
        );
        // Only 7 then needs an exchange, once.
        assert_eq!(exchanges(&plan(&ops, &mut layout)).len(), 1);
        // X on a global qubit relabels ranks: not a need; an h after any
        // other gate is, so 2 stays global, and 1 (never needed) replaces 3.
        let ops = vec![
            op(H, &[], &[1]),
            op(Cx, &[], &[1, 0]),
            op(Cz, &[], &[2, 0]),
            op(X, &[], &[2]),
            op(H, &[], &[3]),
            op(Cx, &[], &[3, 0]),
            op(H, &[], &[3]),
        ];
        assert_eq!(initial_swaps(&ops, &Layout::identity(4, 2)), vec![(3, 1)]);
        // Every qubit needed sooner or later: nothing moves.
        let ring: Vec<KernelOp> = (0..8).map(|q| op(Cx, &[], &[q, (q + 1) % 8])).collect();
        assert!(initial_swaps(&ring, &Layout::identity(8, 2)).is_empty());
    }

    #[test]
    fn one_exchange_brings_in_every_qubit_needed_soon() {
        use StandardGate::*;
        // 8 qubits, 3 global (5, 6, 7): h on each of them, then on 0..5.
        let mut ops: Vec<KernelOp> = (5..8).map(|q| op(H, &[], &[q])).collect();
        ops.extend((0..5).map(|q| op(H, &[], &[q])));
        let mut layout = Layout::identity(8, 3);
        let steps = plan(&ops, &mut layout);
        let exchanges: Vec<_> = exchanges(&steps).iter().map(Vec::len).collect();
        // All three come in at once; what goes out is needed again later,
        // so 5, 6, 7 then leave again in one exchange for the qubits needed last.
        assert_eq!(exchanges[0], 3);
        assert!(exchanges.len() <= 2, "{exchanges:?}");
        let v = volume(&steps, 5);
        assert!(v.amplitudes_sent < per_gate_volume(&ops, &Layout::identity(8, 3)).amplitudes_sent);
    }

    #[test]
    fn a_round_takes_every_gate_off_the_time_line_of_one_it_leaves() {
        use StandardGate::*;
        // 4 qubits, 1 global (3).
        let ops = vec![
            op(H, &[], &[3]),
            op(Cx, &[], &[0, 1]),
            op(H, &[], &[0]),
            op(Cx, &[], &[2, 3]),
            op(H, &[], &[1]),
            op(H, &[], &[2]),
        ];
        let mut layout = Layout::identity(4, 1);
        let steps = plan(&ops, &mut layout);
        // h 3 is left (3 is global), and cx 2,3 after it, which closes 2,
        // and h 2: the round takes cx 0,1, h 0 and h 1; then 3 comes in
        // against 1 (done, as 0 is, and higher), and the rest follows.
        let shape: Vec<usize> = steps
            .iter()
            .map(|s| match s {
                Step::Ops(ops) => ops.len(),
                _ => 0,
            })
            .collect();
        assert_eq!(shape, [3, 0, 3]);
        assert!(matches!(&steps[1], Step::Exchange(w) if w == &[(3, 1)]));
        assert_eq!(layout.position(3), 1);
    }

    #[test]
    fn permutations_on_global_qubits_permute_labels() {
        use StandardGate::*;
        // 8 qubits, 2 global (6: rank bit 0, 7: rank bit 1).
        let ops = vec![
            KernelOp::from_gate(&Gate::standard(X, &[]), &[7], &[Control::one(6)]),
            op(Y, &[], &[6]),
        ];
        let mut layout = Layout::identity(8, 2);
        let steps = plan(&ops, &mut layout);
        assert!(steps.iter().all(|s| !matches!(s, Step::Exchange(_))));
        // cx 6 → 7, then y on 6: label bit 1 ^= bit 0, then bit 0 flips.
        let labels: Vec<usize> = (0..4).map(|r| layout.label(r)).collect();
        assert_eq!(labels, [0b01, 0b10, 0b11, 0b00]);
        assert!((0..4).all(|l| layout.label(layout.rank_of(l)) == l));
        // Y's phases (−i, i) are left as a diagonal on position 6.
        assert!(steps.iter().any(|s| matches!(s, Step::Ops(ops)
            if ops.len() == 1 && ops[0].targets.as_slice() == [6]
                && matches!(ops[0].matrix, OpMatrix::Diagonal(_)))));
    }

    #[test]
    fn local_ops_fix_global_bits() {
        use StandardGate::*;
        // cp(θ) on positions 1 (local) and 3 (global: rank bit 0) with 3
        // local qubits.
        let cp = op(Cp, &[0.7], &[1, 3]);
        let phase = Complex64::from_polar(1.0, 0.7);
        let one = Complex64::new(1.0, 0.0);
        // Rank 0b01: bit 0 set: the phase where qubit 1 is 1.
        let l = local_op(&cp, 3, 0b01).unwrap();
        assert_eq!(l.targets.as_slice(), &[1]);
        assert_eq!(l.matrix, OpMatrix::Diagonal(vec![one, phase]));
        // Rank 0b10: bit 0 clear: nothing.
        assert!(local_op(&cp, 3, 0b10).is_none());
        // cx with a control on position 4 (rank bit 1): x where it holds.
        let cx = op(Cx, &[], &[4, 0]);
        assert!(local_op(&cx, 3, 0b00).is_none());
        let l = local_op(&cx, 3, 0b10).unwrap();
        assert!(l.controls.is_empty());
        // rz on a global qubit: a phase on the whole slice (rank bit 0 clear).
        let rz = op(Rz, &[0.4], &[3]);
        let l = local_op(&rz, 3, 0).unwrap();
        assert_eq!(
            l.matrix,
            OpMatrix::Diagonal(vec![Complex64::from_polar(1.0, -0.2); 2])
        );
    }
}
