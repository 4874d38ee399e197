//! Noise on the state-vector method: each shot follows one trajectory, a
//! sampled branch of every channel.
//!
//! A straight run of gates and unitary mixtures (Pauli, depolarizing, …)
//! is a [`Segment`]. Its shots' choices are drawn before anything is
//! simulated (Qulacs' and CUDA-Q's pre-trajectory sampling): per channel,
//! which shots take a non-identity branch (geometric skips, so the cost is
//! the number of errors, not shots × channels), then the shots are grouped
//! by their choices and each distinct trajectory is simulated once for all
//! its shots. The chosen unitaries are inserted as gates and fused with the
//! run's own (qsim's trajectories), and no norm is ever needed.
//!
//! The run is cut into windows fused apart: a trajectory reuses the
//! noiseless plan of every window where it chose nothing, recompiles only
//! those where it did, and starts from a shared noiseless prefix: the
//! trajectories are taken in the order of their first error, and one
//! cursor state is advanced window by window between them.
//!
//! A channel whose Kraus operators are not all unitary is a [`KrausStep`]:
//! its operators' probabilities `‖K_i ψ‖²` come from one sweep over the
//! state, and the shots split among them as at a measurement.

use std::collections::HashMap;
use std::sync::Arc;

use kettle_ir::{Channel, ChannelForm, GateMatrix, Qubit};
use rand::Rng;
use rand_distr::{Binomial, Distribution, Geometric, StandardUniform};
use smallvec::SmallVec;

use crate::blocking::{ChunkShape, plan};
use crate::float::Float;
use crate::fusion::FusionConfig;
use crate::gradient::{Term, matrix_elements};
use crate::op::KernelOp;
use crate::par::Parallelism;
use crate::program::Instr;
use crate::state::StateVector;

/// The non-identity choices of one trajectory through a segment: `(item,
/// branch)` pairs in item order.
pub(crate) type Choices = Arc<[(u32, u16)]>;

/// Picks drawn in one batch are at most about this many, which bounds the
/// memory of a batch whatever the shots.
const PICKS_PER_BATCH: f64 = 4e6;

/// Items per window: at least this many, and at most 16 windows.
const MIN_WINDOW_ITEMS: usize = 32;
const MAX_WINDOWS: usize = 16;

/// A unitary mixture on its qubits, for trajectories. It holds the shared
/// channel, not operations: a noise model may put one after each of a
/// million gates, and only the branches a trajectory chooses become
/// operations.
#[derive(Clone, Debug)]
pub(crate) struct Mixture {
    channel: Channel,
    qubits: SmallVec<[Qubit; 2]>,
    /// Probability of changing nothing (branches that are the identity up
    /// to a phase).
    clean: f64,
}

impl Mixture {
    /// The channel's unitary branches on `qubits`; `None` for a Kraus map.
    pub(crate) fn new(channel: &Channel, qubits: &[Qubit]) -> Option<Mixture> {
        let ChannelForm::Mixture(branches) = channel.form() else {
            return None;
        };
        let clean = branches
            .iter()
            .filter(|(_, u)| u.is_phase_times_identity())
            .map(|(p, _)| p)
            .sum();
        Some(Mixture {
            channel: channel.clone(),
            qubits: qubits.into(),
            clean,
        })
    }

    /// The branches that change something: `(index, probability, unitary)`.
    fn branches(&self) -> impl Iterator<Item = (usize, f64, &GateMatrix)> {
        let ChannelForm::Mixture(branches) = self.channel.form() else {
            unreachable!("built from a mixture")
        };
        branches
            .iter()
            .enumerate()
            .filter(|(_, (_, u))| !u.is_phase_times_identity())
            .map(|(i, (p, u))| (i, *p, u))
    }

    /// Branch `i`'s operation.
    fn op(&self, i: u16) -> KernelOp {
        let ChannelForm::Mixture(branches) = self.channel.form() else {
            unreachable!("built from a mixture")
        };
        KernelOp::from_matrix(&branches[usize::from(i)].1, &self.qubits, &[])
    }

    /// The one operation a mixture always applies, if it has one branch
    /// and changes something: it is then a gate.
    pub(crate) fn as_gate(&self) -> Option<KernelOp> {
        let mut changing = self.branches();
        match (changing.next(), changing.next()) {
            (Some((i, _, _)), None) if self.clean == 0.0 => Some(self.op(i as u16)),
            _ => None,
        }
    }

    /// Whether it never changes anything.
    pub(crate) fn is_identity(&self) -> bool {
        self.branches().next().is_none()
    }

    /// A branch that changes something, drawn given that one is taken.
    fn pick<R: Rng>(&self, rng: &mut R) -> u16 {
        let total: f64 = self.branches().map(|(_, p, _)| p).sum();
        let u: f64 = StandardUniform.sample(rng);
        let mut at = u * total;
        let mut last = 0;
        for (i, p, _) in self.branches() {
            last = i;
            if at < p {
                return i as u16;
            }
            at -= p;
        }
        last as u16
    }
}

/// One element of a segment.
#[derive(Clone, Debug)]
pub(crate) enum Item {
    Gate(KernelOp),
    Mixture(Mixture),
}

/// A straight run of gates and unitary mixtures (see the module
/// documentation).
#[derive(Clone, Debug)]
pub(crate) struct Segment {
    items: Vec<Item>,
    /// Window `w` holds `items[cuts[w]..cuts[w + 1]]`.
    cuts: Vec<usize>,
    /// Each window's plan when nothing is chosen in it.
    plans: Vec<Vec<Instr>>,
    /// Indices of the mixtures among the items.
    mixtures: Vec<usize>,
    /// Expected non-identity choices per shot.
    errors_per_shot: f64,
    num_qubits: u32,
    chunk: Option<ChunkShape>,
    fusion: FusionConfig,
    /// The run starts from |0…0⟩.
    fresh: bool,
}

impl Segment {
    pub(crate) fn new(
        items: Vec<Item>,
        num_qubits: u32,
        chunk: Option<ChunkShape>,
        fusion: &FusionConfig,
        fresh: bool,
    ) -> Segment {
        let per_window = items.len().div_ceil(MAX_WINDOWS).max(MIN_WINDOW_ITEMS);
        let mut cuts: Vec<usize> = (0..items.len()).step_by(per_window).collect();
        cuts.push(items.len());
        let mixtures: Vec<usize> = (0..items.len())
            .filter(|&i| matches!(items[i], Item::Mixture(_)))
            .collect();
        let errors_per_shot = items
            .iter()
            .map(|i| match i {
                Item::Mixture(m) => 1.0 - m.clean,
                Item::Gate(_) => 0.0,
            })
            .sum();
        let mut segment = Segment {
            items,
            cuts,
            plans: Vec::new(),
            mixtures,
            errors_per_shot,
            num_qubits,
            chunk,
            fusion: *fusion,
            fresh,
        };
        segment.plans = (0..segment.windows())
            .map(|w| segment.plan_window(w, &[]))
            .collect();
        segment
    }

    /// Gates in the run (mixtures not counted).
    pub(crate) fn gates(&self) -> usize {
        self.items
            .iter()
            .filter(|i| matches!(i, Item::Gate(_)))
            .count()
    }

    /// Operations the noiseless plan applies.
    pub(crate) fn planned_ops(&self) -> usize {
        self.plans.iter().map(|p| ops_in(p)).sum()
    }

    pub(crate) fn windows(&self) -> usize {
        self.cuts.len() - 1
    }

    /// The window of the first choice in `choices`, or the end for none.
    pub(crate) fn first_window(&self, choices: &[(u32, u16)]) -> usize {
        choices.first().map_or(self.windows(), |&(item, _)| {
            self.cuts.partition_point(|&c| c <= item as usize) - 1
        })
    }

    /// Shots to draw at once: bounded so that a batch's picks fit in memory.
    pub(crate) fn batch_shots(&self) -> u64 {
        (PICKS_PER_BATCH / self.errors_per_shot.max(1e-12)).clamp(1.0, 1e12) as u64
    }

    /// Draws `shots` trajectories and groups them: `(choices, shots)` with
    /// the noiseless trajectory (no choices) last and the others in the
    /// order of their choices, so that the first errors never go back.
    pub(crate) fn sample<R: Rng>(&self, shots: u64, rng: &mut R) -> Vec<(Choices, u64)> {
        let mut picks: Vec<(u64, u32, u16)> = Vec::new();
        for &item in &self.mixtures {
            let Item::Mixture(m) = &self.items[item] else {
                unreachable!("mixtures index mixtures")
            };
            let hit = (1.0 - m.clean).clamp(0.0, 1.0);
            if hit <= 0.0 || m.is_identity() {
                continue;
            }
            // Shots taking an error, in order: geometric gaps between them.
            let gap = Geometric::new(hit).expect("hit is a probability above 0");
            let mut shot = gap.sample(rng);
            while shot < shots {
                picks.push((shot, item as u32, m.pick(rng)));
                shot = shot.saturating_add(1).saturating_add(gap.sample(rng));
            }
        }
        picks.sort_unstable();
        let mut groups: HashMap<Vec<(u32, u16)>, u64> = HashMap::new();
        let mut noisy_shots = 0;
        for run in picks.chunk_by(|a, b| a.0 == b.0) {
            let key: Vec<(u32, u16)> = run.iter().map(|&(_, item, b)| (item, b)).collect();
            *groups.entry(key).or_insert(0) += 1;
            noisy_shots += 1;
        }
        let mut out: Vec<(Choices, u64)> = groups.into_iter().map(|(k, n)| (k.into(), n)).collect();
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if noisy_shots < shots {
            out.push((Arc::from(Vec::new()), shots - noisy_shots));
        }
        out
    }

    /// Applies windows `from..to` to `state` with `choices` (those in other
    /// windows are ignored); returns the operations applied.
    pub(crate) fn apply<F: Float>(
        &self,
        state: &mut StateVector<F>,
        from: usize,
        to: usize,
        choices: &[(u32, u16)],
        par: &Parallelism,
    ) -> usize {
        let mut applied = 0;
        for w in from..to {
            let (lo, hi) = (self.cuts[w] as u32, self.cuts[w + 1] as u32);
            let mine: Vec<(u32, u16)> = choices
                .iter()
                .copied()
                .filter(|&(i, _)| (lo..hi).contains(&i))
                .collect();
            if mine.is_empty() {
                state.apply_passes(&self.plans[w], par);
                applied += ops_in(&self.plans[w]);
            } else {
                let plan = self.plan_window(w, &mine);
                state.apply_passes(&plan, par);
                applied += ops_in(&plan);
            }
        }
        applied
    }

    /// Window `w` with `choices` (all in it) applied, planned for passes.
    fn plan_window(&self, w: usize, choices: &[(u32, u16)]) -> Vec<Instr> {
        let mut ops = Vec::new();
        let mut chosen = choices.iter().peekable();
        for i in self.cuts[w]..self.cuts[w + 1] {
            match &self.items[i] {
                Item::Gate(op) => ops.push(op.clone()),
                Item::Mixture(m) => {
                    if let Some(&(_, b)) = chosen.next_if(|(item, _)| *item as usize == i) {
                        ops.push(m.op(b));
                    }
                }
            }
        }
        if ops.is_empty() {
            return Vec::new();
        }
        plan(
            ops,
            self.num_qubits,
            self.chunk,
            &self.fusion,
            crate::program::untouched_if(self.fresh && w == 0),
        )
    }
}

/// Operations in a plan of passes and stages.
fn ops_in(plan: &[Instr]) -> usize {
    plan.iter()
        .map(|i| match i {
            Instr::Stage(s) => s.ops.len(),
            _ => 1,
        })
        .sum()
}

/// A channel with Kraus operators that are not all unitary, for
/// trajectories (the shared channel and its qubits; the operators' products
/// are formed where a trajectory meets it).
#[derive(Clone, Debug)]
pub(crate) struct KrausStep {
    channel: Channel,
    qubits: SmallVec<[Qubit; 2]>,
}

impl KrausStep {
    pub(crate) fn new(channel: &Channel, qubits: &[Qubit]) -> KrausStep {
        KrausStep {
            channel: channel.clone(),
            qubits: qubits.into(),
        }
    }

    fn kraus(&self) -> &[GateMatrix] {
        match self.channel.form() {
            ChannelForm::Kraus(ops) => ops,
            ChannelForm::Mixture(_) => unreachable!("mixtures are not Kraus steps"),
        }
    }

    /// The probability of each operator, `‖K_i ψ‖² = ⟨ψ|K_i†K_i|ψ⟩`, in one
    /// sweep.
    pub(crate) fn probabilities<F: Float>(
        &self,
        state: &StateVector<F>,
        par: &Parallelism,
    ) -> Vec<f64> {
        let probes: Vec<GateMatrix> = self.kraus().iter().map(|k| k.adjoint().matmul(k)).collect();
        let terms: Vec<Term<'_>> = probes
            .iter()
            .map(|m| Term {
                targets: &self.qubits,
                controls: &[],
                m,
            })
            .collect();
        matrix_elements(state, state, &terms, par)
            .into_iter()
            .map(|z| z.re.max(0.0))
            .collect()
    }

    /// Applies `K_i / √p`.
    pub(crate) fn apply<F: Float>(
        &self,
        state: &mut StateVector<F>,
        i: usize,
        p: f64,
        par: &Parallelism,
    ) {
        let scaled = self.kraus()[i].scaled(1.0 / p.sqrt());
        state.apply(&KernelOp::from_matrix(&scaled, &self.qubits, &[]), par);
    }

    /// Splits `shots` among the operators by `probabilities` (normalised
    /// here): one binomial per operator on the shots left.
    pub(crate) fn split<R: Rng>(probabilities: &[f64], shots: u64, rng: &mut R) -> Vec<u64> {
        let total: f64 = probabilities.iter().sum();
        let last = probabilities.iter().rposition(|&p| p > 0.0).unwrap_or(0);
        let mut left = shots;
        let mut rest = total;
        probabilities
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                let share = if i == last {
                    left
                } else if i > last || p <= 0.0 || left == 0 {
                    0
                } else {
                    Binomial::new(left, (p / rest).clamp(0.0, 1.0)).map_or(0, |b| b.sample(rng))
                };
                rest -= p;
                left -= share;
                share
            })
            .collect()
    }
}
