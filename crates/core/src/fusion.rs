//! Gate fusion: merges runs of gates on a few qubits into one matrix, so that
//! one pass over memory does the work of many gates.
//!
//! The planner keeps several open blocks on pairwise disjoint qubit sets (gates
//! on disjoint qubits commute, so blocks can grow independently, the way
//! qsim's fuser follows each qubit's time line). A gate joins the blocks it
//! touches if their union stays within the size limit; otherwise those blocks
//! are emitted first and the gate starts a new one. Blocks of diagonal gates
//! stay diagonal (and may grow larger, since a diagonal costs one
//! multiplication per amplitude whatever its size); a block of one gate is
//! emitted unchanged, controls and all. The fused matrix's exact zeros then
//! pick its kernel, so a run of permutations stays a permutation.
//!
//! In cache ([`Bound::Arithmetic`], inside a stage) the multiply-adds are
//! the cost, not the passes: diagonals with complex phases are gathered
//! apart from the other blocks, which then stay real or imaginary term by
//! term (half the dense kernel's multiply-adds), and lone one-qubit gates
//! on different qubits are paired into one sweep.

use kettle_ir::{GateMatrix, Qubit};
use num_complex::Complex64;
use smallvec::SmallVec;

use crate::blocking::CacheBlocking;
use crate::op::{KernelOp, OpMatrix};

/// How the planner fuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FusionConfig {
    /// Off: every gate is applied on its own.
    pub enabled: bool,
    /// Largest dense block, in qubits (1–6). Dense products cost `2^k`
    /// multiply-adds per amplitude, so past about 4 qubits at f64 a block
    /// costs more arithmetic than the memory passes it saves.
    pub max_qubits: u32,
    /// Largest diagonal block, in qubits (up to 12).
    pub max_diagonal_qubits: u32,
    /// Cache blocking of runs of gates into stages (ignored when fusion is off).
    pub blocking: CacheBlocking,
    /// Largest dense block inside a stage of cache blocking, in qubits (1–6).
    /// In cache a block's arithmetic is its whole cost, so this is smaller
    /// than `max_qubits`.
    pub stage_max_qubits: u32,
}

impl Default for FusionConfig {
    fn default() -> Self {
        FusionConfig {
            enabled: true,
            max_qubits: 4,
            max_diagonal_qubits: 10,
            blocking: CacheBlocking::Auto,
            stage_max_qubits: 2,
        }
    }
}

impl FusionConfig {
    /// No fusion at all.
    pub fn disabled() -> Self {
        FusionConfig {
            enabled: false,
            ..FusionConfig::default()
        }
    }

    fn dense_limit(&self) -> usize {
        self.max_qubits.clamp(1, 6) as usize
    }

    fn diagonal_limit(&self) -> usize {
        self.max_diagonal_qubits
            .clamp(1, 12)
            .max(self.max_qubits.clamp(1, 6)) as usize
    }
}

/// Gates an open block holds before they are replaced by their product.
const COLLAPSE_AT: usize = 256;

/// What limits the fused blocks where they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bound {
    /// Between passes over memory: fewer, larger blocks.
    Memory,
    /// In cache (inside a stage): the multiply-adds. Diagonals with complex
    /// phases (`rz`, `p`, `rzz`) are kept apart from the other blocks and
    /// gathered with each other, so that those stay real or imaginary term
    /// by term (`rx`, `ry`, `h`, `cz`, `cx`), which the dense kernel runs at
    /// half the multiply-adds, and the phases cost one pass of the diagonal
    /// kernel for a whole chain of them (qaoa's ring of `rzz`).
    Arithmetic,
}

/// An open block: gates on a set of qubits, in circuit order.
struct Block {
    qubits: SmallVec<[Qubit; 8]>,
    ops: Vec<KernelOp>,
    diagonal: bool,
    /// Some diagonal entry of a gate has a non-zero imaginary part.
    phased: bool,
}

/// Whether a diagonal operation multiplies by a complex phase somewhere.
fn is_phased(op: &KernelOp) -> bool {
    matches!(&op.matrix, OpMatrix::Diagonal(d) if d.iter().any(|x| x.im != 0.0))
}

/// Fuses a straight run of unitary operations (no measurement between them).
pub(crate) fn fuse(ops: Vec<KernelOp>, config: &FusionConfig, bound: Bound) -> Vec<KernelOp> {
    let ops = ops.into_iter().filter(|op| !op.is_identity());
    if !config.enabled {
        return ops.collect();
    }
    let mut out = Vec::new();
    let mut open: Vec<Block> = Vec::new();
    for op in ops {
        let qubits: SmallVec<[Qubit; 8]> = op.qubits().collect();
        let diagonal = matches!(op.matrix, OpMatrix::Diagonal(_));
        let op_phased = is_phased(&op);
        // Blocks this gate touches, in creation order.
        let (mut hits, rest): (Vec<Block>, Vec<Block>) = open
            .drain(..)
            .partition(|b| b.qubits.iter().any(|q| qubits.contains(q)));
        open = rest;
        if bound == Bound::Arithmetic {
            // A phased diagonal (or a real one next to phases) joins the
            // diagonal blocks it touches; any other gate joins the blocks
            // without phases. The blocks it does not join come earlier on
            // their qubits, so they are emitted first.
            let with_diagonals =
                diagonal && (op_phased || hits.iter().any(|b| b.diagonal && b.phased));
            let (join, before): (Vec<Block>, Vec<Block>) = hits.into_iter().partition(|b| {
                if with_diagonals {
                    b.diagonal
                } else {
                    !(b.diagonal && b.phased)
                }
            });
            out.extend(before.into_iter().map(emit));
            hits = join;
        }
        let phased = op_phased || hits.iter().any(|b| b.phased);
        let mut union = qubits.clone();
        for b in &hits {
            union.extend(b.qubits.iter().copied().filter(|q| !qubits.contains(q)));
        }
        let all_diagonal = diagonal && hits.iter().all(|b| b.diagonal);
        let limit = if all_diagonal {
            config.diagonal_limit()
        } else {
            config.dense_limit()
        };
        if union.len() <= limit && !qubits.is_empty() {
            // The hits act on disjoint qubits, so their operations commute
            // and may be concatenated in any order. Growing the first one's
            // list in place keeps a long run of gates on the same qubits
            // linear (a million `rx` on one qubit took minutes when every
            // gate copied the list).
            let mut hits = hits.into_iter();
            let mut ops = hits.next().map(|b| b.ops).unwrap_or_default();
            for b in hits {
                ops.extend(b.ops);
            }
            ops.push(op);
            if ops.len() >= COLLAPSE_AT {
                // A block on a few qubits may collect a whole program's gates
                // (a million on 4 qubits): hold their product instead. The
                // product is applied to the identity's columns at the end,
                // which gives it back exactly, so the result does not change.
                ops = vec![emit(Block {
                    qubits: union.clone(),
                    ops,
                    diagonal: all_diagonal,
                    phased,
                })];
            }
            open.push(Block {
                qubits: union,
                ops,
                diagonal: all_diagonal,
                phased,
            });
        } else {
            out.extend(hits.into_iter().map(emit));
            if qubits.is_empty() || qubits.len() > config.dense_limit() {
                out.push(op);
            } else {
                open.push(Block {
                    qubits,
                    ops: vec![op],
                    diagonal,
                    phased: op_phased,
                });
            }
        }
    }
    out.extend(open.into_iter().map(emit));
    if bound == Bound::Arithmetic && config.dense_limit() >= 2 {
        pair_single_qubit_gates(&mut out);
    }
    out
}

/// How far ahead [`pair_single_qubit_gates`] looks for a partner.
const PAIR_WINDOW: usize = 64;

/// Replaces pairs of dense one-qubit operations on different qubits, with
/// nothing between them on either qubit, by their tensor product at the
/// first one's place. Gates on disjoint qubits never meet in [`fuse`], so a
/// layer of `rx` in cache would otherwise cost one sweep of the chunk per
/// gate; the product costs the same multiply-adds in one sweep.
fn pair_single_qubit_gates(ops: &mut Vec<KernelOp>) {
    let single = |op: &KernelOp| {
        op.controls.is_empty() && op.targets.len() == 1 && matches!(op.matrix, OpMatrix::Dense(_))
    };
    let mut removed = vec![false; ops.len()];
    for i in 0..ops.len() {
        if removed[i] || !single(&ops[i]) {
            continue;
        }
        let a = ops[i].targets[0];
        let mut partner = None;
        for j in (i + 1..ops.len()).take(PAIR_WINDOW) {
            if removed[j] {
                continue;
            }
            let op = &ops[j];
            if op.qubits().any(|q| q == a) {
                break;
            }
            if single(op) {
                partner = Some(j);
                break;
            }
        }
        let Some(j) = partner else { continue };
        // Nothing between `i` and `j` touches `a`; `j` is the first single
        // after `i`, and whatever lies between on its qubit would make
        // moving it earlier wrong, so check that too.
        let b = ops[j].targets[0];
        if ops[i + 1..j]
            .iter()
            .zip(&removed[i + 1..j])
            .any(|(op, &gone)| !gone && op.qubits().any(|q| q == b))
        {
            continue;
        }
        let block = Block {
            qubits: [a, b].into_iter().collect(),
            ops: vec![ops[i].clone(), ops[j].clone()],
            diagonal: false,
            phased: false,
        };
        ops[i] = emit(block);
        removed[j] = true;
    }
    let mut removed = removed.into_iter();
    ops.retain(|_| !removed.next().unwrap_or(false));
}

/// Folds `P · D₁ ⋯ Dₖ · P`, where `P` is a permutation that is its own
/// inverse (x, cx, swap, ccx) and the `Dᵢ` are diagonal on `P`'s qubits,
/// into the diagonals `P·Dᵢ·P`: `rzz` written as `cx · rz · cx` becomes one
/// diagonal, which then fuses with its neighbours however many there are.
/// Operations between them on other qubits commute and stay where they are.
pub(crate) fn fold_conjugated_diagonals(mut ops: Vec<KernelOp>) -> Vec<KernelOp> {
    // Folded operations are marked and dropped at the end, in place: a
    // program may have a million operations, and a second vector of them
    // would double the compiler's peak memory.
    let mut removed = vec![false; ops.len()];
    for i in 0..ops.len() {
        if removed[i] {
            continue;
        }
        let p = &ops[i];
        let Some(perm) = involution(p) else { continue };
        let qubits: SmallVec<[Qubit; 8]> = p.qubits().collect();
        let mut diagonals = Vec::new();
        let mut close = None;
        for (j, op) in ops.iter().enumerate().skip(i + 1) {
            if removed[j] || !op.qubits().any(|q| qubits.contains(&q)) {
                continue;
            }
            if op == p {
                close = Some(j);
            } else if matches!(op.matrix, OpMatrix::Diagonal(_))
                && op.qubits().all(|q| qubits.contains(&q))
            {
                diagonals.push(j);
                continue;
            }
            break;
        }
        let Some(close) = close.filter(|_| !diagonals.is_empty()) else {
            continue;
        };
        for j in diagonals {
            let d = &ops[j];
            let d_qubits: SmallVec<[Qubit; 8]> = d.qubits().collect();
            let pos = positions(&qubits, &d_qubits);
            let d_full = d.full_diagonal();
            let conjugated = perm.iter().map(|&s| d_full[gather(s, &pos)]).collect();
            ops[j] = KernelOp {
                targets: qubits.iter().copied().collect(),
                controls: SmallVec::new(),
                matrix: OpMatrix::Diagonal(conjugated),
            };
        }
        removed[i] = true;
        removed[close] = true;
    }
    let mut removed = removed.into_iter();
    ops.retain(|_| !removed.next().unwrap_or(false));
    ops
}

/// For a permutation without phases that is its own inverse, the source
/// of each row of its matrix on `targets ++ controls`; `None` otherwise.
fn involution(op: &KernelOp) -> Option<Vec<usize>> {
    if !matches!(op.matrix, OpMatrix::Monomial { .. }) || op.qubits().count() > 6 {
        return None;
    }
    let (_, m) = op.full_matrix();
    let one = Complex64::new(1.0, 0.0);
    let src: Vec<usize> = (0..m.dim())
        .map(|r| (0..m.dim()).find(|&c| m.get(r, c) != Complex64::new(0.0, 0.0)))
        .collect::<Option<_>>()?;
    let pure = src
        .iter()
        .enumerate()
        .all(|(r, &c)| m.get(r, c) == one && src[c] == r);
    pure.then_some(src)
}

/// One operation for a block: the gate itself if it is alone, else the
/// product of its gates on the block's qubits (ascending).
fn emit(mut block: Block) -> KernelOp {
    if block.ops.len() == 1 {
        return block.ops.pop().expect("one op");
    }
    let mut qubits = block.qubits;
    qubits.sort_unstable();
    let dim = 1usize << qubits.len();
    if block.diagonal {
        let mut diag = vec![Complex64::new(1.0, 0.0); dim];
        for op in &block.ops {
            let op_diag = op.full_diagonal();
            let op_qubits: SmallVec<[Qubit; 8]> = op.qubits().collect();
            let pos = positions(&qubits, &op_qubits);
            for (r, d) in diag.iter_mut().enumerate() {
                *d *= op_diag[gather(r, &pos)];
            }
        }
        return KernelOp {
            targets: qubits.iter().copied().collect(),
            controls: SmallVec::new(),
            matrix: OpMatrix::Diagonal(diag),
        };
    }
    // Column-major product: apply each gate to every column of the running
    // matrix, which costs 2^k per entry instead of a full matrix product.
    let mut cols = vec![Complex64::new(0.0, 0.0); dim * dim];
    for c in 0..dim {
        cols[c * dim + c] = Complex64::new(1.0, 0.0);
    }
    for op in &block.ops {
        let (op_qubits, m) = op.full_matrix();
        let pos = positions(&qubits, &op_qubits);
        for col in cols.chunks_exact_mut(dim) {
            apply_small(col, &m, &pos);
        }
    }
    let mut data = vec![Complex64::new(0.0, 0.0); dim * dim];
    for c in 0..dim {
        for r in 0..dim {
            data[r * dim + c] = cols[c * dim + r];
        }
    }
    let matrix = GateMatrix::new(qubits.len() as u32, data).expect("block size is bounded");
    KernelOp::from_matrix(&matrix, &qubits, &[])
}

/// Bit position in the block of each of `op_qubits`.
fn positions(block: &[Qubit], op_qubits: &[Qubit]) -> SmallVec<[u32; 8]> {
    op_qubits
        .iter()
        .map(|q| block.iter().position(|b| b == q).expect("op inside block") as u32)
        .collect()
}

/// Bits of `r` at `pos`, packed (bit `i` from position `pos[i]`).
fn gather(r: usize, pos: &[u32]) -> usize {
    pos.iter()
        .enumerate()
        .map(|(i, &p)| ((r >> p) & 1) << i)
        .sum()
}

/// `v ← m · v` where `m` acts on the bits `pos` of `v`'s index.
fn apply_small(v: &mut [Complex64], m: &GateMatrix, pos: &[u32]) {
    let k = pos.len();
    let mask: usize = pos.iter().map(|&p| 1usize << p).sum();
    let sub = 1usize << k;
    let scatter = |i: usize| -> usize {
        pos.iter()
            .enumerate()
            .map(|(b, &p)| ((i >> b) & 1) << p)
            .sum()
    };
    let offsets: SmallVec<[usize; 64]> = (0..sub).map(scatter).collect();
    let mut tmp: SmallVec<[Complex64; 64]> = SmallVec::from_elem(Complex64::new(0.0, 0.0), sub);
    for base in 0..v.len() {
        if base & mask != 0 {
            continue;
        }
        for (r, t) in tmp.iter_mut().enumerate() {
            *t = (0..sub).map(|c| m.get(r, c) * v[base | offsets[c]]).sum();
        }
        for r in 0..sub {
            v[base | offsets[r]] = tmp[r];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kettle_ir::{Gate, StandardGate};

    fn op(g: StandardGate, params: &[f64], qubits: &[Qubit]) -> KernelOp {
        KernelOp::from_gate(&Gate::standard(g, params), qubits, &[])
    }

    #[test]
    fn brickwork_fuses_into_few_blocks() {
        use StandardGate::*;
        let mut ops = Vec::new();
        for q in 0..4 {
            ops.push(op(Rx, &[0.1 * f64::from(q)], &[q]));
        }
        ops.push(op(Cz, &[], &[0, 1]));
        ops.push(op(Cz, &[], &[2, 3]));
        let cfg = FusionConfig {
            max_qubits: 2,
            ..FusionConfig::default()
        };
        let fused = fuse(ops, &cfg, Bound::Memory);
        assert_eq!(fused.len(), 2);
        assert!(fused.iter().all(|o| o.targets.len() == 2));
    }

    #[test]
    fn diagonal_runs_stay_diagonal_and_permutations_stay_moves() {
        use StandardGate::*;
        let ops = vec![
            op(Cp, &[0.3], &[0, 1]),
            op(Cp, &[0.2], &[0, 2]),
            op(Rz, &[0.7], &[3]),
            op(Cp, &[0.1], &[0, 3]),
        ];
        let fused = fuse(ops, &FusionConfig::default(), Bound::Memory);
        assert_eq!(fused.len(), 1);
        assert!(matches!(fused[0].matrix, OpMatrix::Diagonal(_)));
        let perms = vec![op(Cx, &[], &[0, 1]), op(Cx, &[], &[1, 2]), op(X, &[], &[0])];
        let fused = fuse(perms, &FusionConfig::default(), Bound::Memory);
        assert_eq!(fused.len(), 1);
        assert!(matches!(fused[0].matrix, OpMatrix::Monomial { .. }));
    }

    #[test]
    fn cx_rz_cx_folds_into_a_diagonal() {
        use StandardGate::*;
        let ops = vec![
            op(Cx, &[], &[0, 1]),
            op(Ry, &[0.4], &[3]),
            op(Rz, &[0.7], &[1]),
            op(Cp, &[0.2], &[0, 1]),
            op(Cx, &[], &[0, 1]),
            op(Cx, &[], &[1, 2]),
            op(H, &[], &[2]),
            op(Cx, &[], &[1, 2]),
        ];
        let folded = fold_conjugated_diagonals(ops.clone());
        // The first cx pair folds; the second encloses an h and stays.
        assert_eq!(folded.len(), 6);
        assert!(matches!(folded[1].matrix, OpMatrix::Diagonal(_)));
        assert!(matches!(folded[2].matrix, OpMatrix::Diagonal(_)));
        let product = |ops: &[KernelOp]| {
            let mut all = Vec::new();
            for o in ops {
                all.push(o.clone());
            }
            let block = Block {
                qubits: (0..4).collect(),
                ops: all,
                diagonal: false,
                phased: false,
            };
            emit(block)
        };
        let (a, b) = (product(&ops), product(&folded));
        for r in 0..16 {
            for c in 0..16 {
                assert!((a.entry(r, c) - b.entry(r, c)).norm() < 1e-14);
            }
        }
    }

    #[test]
    fn in_cache_phases_stay_apart_and_single_gates_pair_up() {
        // Two qaoa rounds on a ring of 6 and an rqc-like layer: in cache the
        // `rzz` chain becomes diagonals wider than the dense limit, the `rx`
        // layer pairs up, no dense block carries a complex phase, and the
        // product is unchanged.
        use StandardGate::*;
        let n = 6u32;
        let mut ops = Vec::new();
        for q in 0..n {
            ops.push(op(H, &[], &[q]));
        }
        for round in 0..2 {
            for i in 0..n {
                let j = (i + 1) % n;
                ops.push(op(Cx, &[], &[i, j]));
                ops.push(op(Rz, &[0.3 + f64::from(round)], &[j]));
                ops.push(op(Cx, &[], &[i, j]));
            }
            for q in 0..n {
                ops.push(op(Rx, &[0.7], &[q]));
            }
        }
        for q in 0..n {
            ops.push(op([Rx, Rz][q as usize % 2], &[0.2 * f64::from(q)], &[q]));
        }
        for q in (0..n).step_by(2) {
            ops.push(op(Cz, &[], &[q, q + 1]));
        }
        let cfg = FusionConfig {
            max_qubits: 2,
            ..FusionConfig::default()
        };
        let folded = fold_conjugated_diagonals(ops.clone());
        let fused = fuse(folded, &cfg, Bound::Arithmetic);
        assert!(
            fused
                .iter()
                .any(|o| matches!(o.matrix, OpMatrix::Diagonal(_)) && o.targets.len() > 2),
            "the rzz chain is gathered"
        );
        for o in &fused {
            if let OpMatrix::Dense(m) = &o.matrix {
                assert!(o.targets.len() <= 2);
                assert!(
                    m.iter().all(|x| x.re == 0.0 || x.im == 0.0),
                    "dense block on {:?} with complex entries",
                    o.targets
                );
            }
        }
        let singles = fused
            .iter()
            .filter(|o| o.targets.len() == 1 && matches!(o.matrix, OpMatrix::Dense(_)))
            .count();
        assert!(singles <= 2, "{singles} one-qubit blocks left unpaired");
        let product = |ops: Vec<KernelOp>| {
            emit(Block {
                qubits: (0..n).collect(),
                ops,
                diagonal: false,
                phased: false,
            })
        };
        let (a, b) = (product(ops), product(fused));
        for r in 0..1 << n {
            for c in 0..1 << n {
                assert!((a.entry(r, c) - b.entry(r, c)).norm() < 1e-12);
            }
        }
    }

    #[test]
    fn a_long_run_on_one_qubit_fuses_into_its_product() {
        // Quadratic before: each gate copied the block's list (300,000 gates
        // would take minutes). The product of rx(0.1) 300,000 times is
        // rx(30,000), up to rounding.
        use StandardGate::*;
        let n = 300_000;
        let ops = vec![op(Rx, &[0.1], &[0]); n];
        let fused = fuse(ops, &FusionConfig::default(), Bound::Memory);
        assert_eq!(fused.len(), 1);
        let OpMatrix::Dense(got) = &fused[0].matrix else {
            panic!("rx fuses into a dense matrix");
        };
        let want = Gate::standard(Rx, &[0.1 * n as f64]).matrix();
        for (g, w) in got.iter().zip(want.data()) {
            assert!((g - w).norm() < 1e-9, "{g} vs {w}");
        }
    }

    #[test]
    fn blocks_that_collapse_into_their_product_give_the_same_matrix() {
        // 1000 gates on 4 qubits make one block, collapsed every
        // `COLLAPSE_AT` gates; the fused matrix must equal, bit for bit, the
        // product of all the gates at once.
        use StandardGate::*;
        let ops: Vec<KernelOp> = (0..1000u32)
            .map(|i| {
                let angle = 0.37 * f64::from(i % 11);
                let q = (i / 4) % 4;
                match i % 4 {
                    0 => op(Rx, &[angle], &[q]),
                    1 => op(Cx, &[], &[q, (q + 1) % 4]),
                    2 => op(Ry, &[angle], &[(q + 2) % 4]),
                    _ => op(Cz, &[], &[(q + 2) % 4, (q + 3) % 4]),
                }
            })
            .collect();
        let fused = fuse(ops.clone(), &FusionConfig::default(), Bound::Memory);
        assert_eq!(fused.len(), 1);
        let whole = emit(Block {
            qubits: (0..4).collect(),
            ops,
            diagonal: false,
            phased: false,
        });
        for r in 0..16 {
            for c in 0..16 {
                assert_eq!(fused[0].entry(r, c), whole.entry(r, c), "({r}, {c})");
            }
        }
    }

    #[test]
    fn identities_vanish_and_disabled_keeps_order() {
        use StandardGate::*;
        let ops = vec![op(Id, &[], &[0]), op(H, &[], &[0]), op(Rz, &[0.0], &[1])];
        assert_eq!(
            fuse(ops.clone(), &FusionConfig::disabled(), Bound::Memory).len(),
            1
        );
        assert_eq!(fuse(ops, &FusionConfig::default(), Bound::Memory).len(), 1);
    }
}
