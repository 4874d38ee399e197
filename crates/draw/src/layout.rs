//! Where everything goes: the wires (qubits, then classical lines), each
//! operation as an [`Item`] with the wires it spans and its width, and the
//! items packed into [`Layer`]s from left to right.

use kettle_ir::{Channel, Circuit, Clbit, Condition, Gate, Operation, StandardGate};

use crate::{
    MARKS_PER_OPERATION, MAX_CLASSICAL_LINES, MAX_DRAWN_NESTING, MAX_ROWS, Options, format_angle,
    format_number, short_name,
};

/// Width of one character of the labels (12 px monospace).
pub(crate) const CHAR_W: f64 = 7.2;
/// Height of a gate box.
pub(crate) const BOX_H: f64 = 26.0;
/// Narrowest gate box.
pub(crate) const MIN_BOX_W: f64 = 26.0;
/// Room left and right of a box's label.
pub(crate) const BOX_PAD: f64 = 6.0;
/// Space between two layers.
pub(crate) const LAYER_GAP: f64 = 10.0;
/// Room between an `if` frame and its body, left and right.
pub(crate) const FRAME_PAD_X: f64 = 8.0;
/// Width of a barrier's layer.
const BARRIER_W: f64 = 14.0;
/// Width of a readout error's mark.
pub(crate) const READOUT_W: f64 = 20.0;

/// A classical line: a register, all bits (when there are too many
/// registers), or the bits no register holds.
#[derive(Debug)]
pub(crate) struct Line {
    /// Its label, not yet escaped.
    pub(crate) label: String,
    /// Bits on it.
    pub(crate) size: u64,
}

/// Which line a classical bit is drawn on.
#[derive(Debug)]
struct Classical {
    /// `(start, size, line)` of each register with a line, by start.
    registers: Vec<(u64, u64, usize, String)>,
    /// Everything is on line 0.
    bundled: bool,
    /// The line of bits no register holds.
    rest: Option<usize>,
    num_clbits: u64,
}

/// Where a bit is: its line, its place on that line, and the register it
/// belongs to (name, size) when it has its own line.
#[derive(Debug)]
struct BitPlace<'a> {
    line: usize,
    offset: u64,
    register: Option<(&'a str, u64, u64)>,
}

impl Classical {
    fn new(circuit: &Circuit) -> (Classical, Vec<Line>) {
        let num_clbits = u64::from(circuit.num_clbits());
        let named: Vec<_> = circuit
            .registers()
            .iter()
            .filter(|r| r.size > 0 && u64::from(r.start) < num_clbits)
            .collect();
        let covered: u64 = named.iter().map(|r| u64::from(r.size)).sum();
        let bundled = named.len() > MAX_CLASSICAL_LINES;
        let mut lines = Vec::new();
        let mut registers = Vec::new();
        let mut rest = None;
        if num_clbits == 0 {
        } else if bundled {
            lines.push(Line {
                label: "clbits".into(),
                size: num_clbits,
            });
        } else {
            for r in named {
                registers.push((
                    u64::from(r.start),
                    u64::from(r.size),
                    lines.len(),
                    r.name.clone(),
                ));
                lines.push(Line {
                    label: short_name(&r.name),
                    size: u64::from(r.size),
                });
            }
            if covered < num_clbits {
                rest = Some(lines.len());
                lines.push(Line {
                    label: "bits".into(),
                    size: num_clbits,
                });
            }
            registers.sort_by_key(|r| r.0);
        }
        (
            Classical {
                registers,
                bundled,
                rest,
                num_clbits,
            },
            lines,
        )
    }

    /// Where `clbit` is drawn; `None` for a bit the circuit does not have.
    fn place(&self, clbit: Clbit) -> Option<BitPlace<'_>> {
        let bit = u64::from(clbit);
        if bit >= self.num_clbits {
            return None;
        }
        if self.bundled {
            return Some(BitPlace {
                line: 0,
                offset: bit,
                register: None,
            });
        }
        let i = self.registers.partition_point(|r| r.0 <= bit);
        if i > 0 {
            let (start, size, line, name) = &self.registers[i - 1];
            if bit < start + size {
                return Some(BitPlace {
                    line: *line,
                    offset: bit - start,
                    register: Some((name, *start, *size)),
                });
            }
        }
        self.rest.map(|line| BitPlace {
            line,
            offset: bit,
            register: None,
        })
    }

    /// A condition as people write it: `c==1`, `c[0]==1`, or the bits
    /// listed (`[0,3]==2`) when they are not one register in order.
    fn describe(&self, condition: &Condition) -> String {
        let places: Vec<_> = condition.clbits.iter().map(|&b| self.place(b)).collect();
        let value = condition.value;
        if let [Some(p)] = places.as_slice() {
            return match p.register {
                Some((name, _, 1)) => format!("{}=={value}", short_name(name)),
                Some((name, _, _)) => format!("{}[{}]=={value}", short_name(name), p.offset),
                None => format!("bit {}=={value}", condition.clbits[0]),
            };
        }
        if let Some(Some(BitPlace {
            register: Some((name, start, size)),
            ..
        })) = places.first()
            && condition.clbits.len() as u64 == *size
            && condition
                .clbits
                .iter()
                .enumerate()
                .all(|(i, &b)| u64::from(b) == start + i as u64)
        {
            return format!("{}=={value}", short_name(name));
        }
        let mut listed: Vec<String> = condition
            .clbits
            .iter()
            .take(6)
            .map(ToString::to_string)
            .collect();
        if condition.clbits.len() > 6 {
            listed.push("…".into());
        }
        format!("bits[{}]=={value}", listed.join(","))
    }
}

/// How a gate's targets are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// A box with the label, over all targets.
    Box,
    /// ⊕ (a controlled X).
    Oplus,
    /// A dot (a controlled Z: every qubit is alike).
    Dot,
    /// × (a swap).
    Swap,
}

/// A gate as drawn.
#[derive(Debug)]
pub(crate) struct GateItem {
    /// Canonical name (`cx`), for the SVG's `data-name`.
    pub(crate) name: &'static str,
    /// What the box says (`Rx(π/2)`).
    pub(crate) label: String,
    /// Target wires.
    pub(crate) targets: Vec<usize>,
    /// Control wires and whether each fires on |1⟩.
    pub(crate) controls: Vec<(usize, bool)>,
    pub(crate) target: Target,
    /// Number the targets inside the box (a multi-qubit gate).
    pub(crate) pins: bool,
}

/// An `if`/`else` as drawn.
#[derive(Debug)]
pub(crate) struct Block {
    /// `if c==1`.
    pub(crate) label: String,
    /// The condition alone, for `data-condition`.
    pub(crate) condition: String,
    /// Wires of the classical lines it reads.
    pub(crate) cond_wires: Vec<usize>,
    pub(crate) then_layers: Vec<Layer>,
    /// `None` without an `else`.
    pub(crate) else_layers: Option<Vec<Layer>>,
    /// Frames nested inside it (drawn taller the more they hold).
    pub(crate) inner_depth: usize,
}

/// A noise channel as drawn: a box like a gate's, styled apart.
#[derive(Debug)]
pub(crate) struct ChannelItem {
    /// Its name (`depolarizing`), for the SVG's `data-name`.
    pub(crate) name: &'static str,
    /// What the box says (`depolarizing(0.01)`).
    pub(crate) label: String,
    /// Its qubits' wires, in its order.
    pub(crate) targets: Vec<usize>,
}

/// What an item draws.
#[derive(Debug)]
pub(crate) enum Kind {
    Gate(GateItem),
    Channel(ChannelItem),
    /// A readout error: a mark on the classical line of its bit, with the
    /// probabilities of reading 0 as 1 and 1 as 0.
    Readout {
        line: usize,
        bit: u64,
        flips: (f64, f64),
    },
    Measure {
        qubit: usize,
        line: usize,
        bit: u64,
    },
    Reset {
        qubit: usize,
    },
    Barrier {
        qubits: Vec<usize>,
    },
    Block(Box<Block>),
}

/// One operation, placed.
#[derive(Debug)]
pub(crate) struct Item {
    pub(crate) kind: Kind,
    /// Wires it occupies in its layer (nothing else is drawn there).
    pub(crate) lo: usize,
    pub(crate) hi: usize,
    /// Qubit wires its picture covers (an `if` frame's extent).
    pub(crate) qlo: usize,
    pub(crate) qhi: usize,
    pub(crate) width: f64,
}

/// Items side by side on disjoint wires.
#[derive(Debug, Default)]
pub(crate) struct Layer {
    pub(crate) items: Vec<Item>,
    pub(crate) width: f64,
}

/// Width of layers in a row: their widths and the gaps between them.
pub(crate) fn span_width(layers: &[Layer]) -> f64 {
    let widths: f64 = layers.iter().map(|l| l.width).sum();
    widths + LAYER_GAP * layers.len().saturating_sub(1) as f64
}

/// Width of an `if` frame's first part: its body, or its label if wider.
pub(crate) fn then_section(label: &str, layers: &[Layer]) -> f64 {
    span_width(layers).max(label_width(label))
}

/// The whole layout.
#[derive(Debug)]
pub(crate) struct Laid {
    pub(crate) lines: Vec<Line>,
    pub(crate) layers: Vec<Layer>,
    pub(crate) drawn: usize,
    /// Sum of the top-level global phases (shown in the caption).
    pub(crate) global_phase: Option<f64>,
}

struct Layout {
    classical: Classical,
    nq: usize,
    wires: usize,
    drawn: usize,
    marks: usize,
    max_operations: usize,
    max_marks: usize,
    max_top_layers: usize,
    full: bool,
    global_phase: Option<f64>,
}

/// Lays `circuit` out under `options`' bounds.
pub(crate) fn lay_out(circuit: &Circuit, options: &Options) -> Laid {
    let (classical, lines) = Classical::new(circuit);
    let nq = circuit.num_qubits() as usize;
    let mut layout = Layout {
        classical,
        nq,
        wires: nq + lines.len(),
        drawn: 0,
        marks: 0,
        max_operations: options.max_operations,
        max_marks: options.max_operations.saturating_mul(MARKS_PER_OPERATION),
        max_top_layers: options.fold.saturating_mul(MAX_ROWS),
        full: false,
        global_phase: None,
    };
    let layers = if layout.wires == 0 {
        Vec::new()
    } else {
        layout.place(circuit.ops(), 0)
    };
    Laid {
        lines,
        layers,
        drawn: layout.drawn,
        global_phase: layout.global_phase,
    }
}

impl Layout {
    /// Places `ops` (at nesting `depth`) into layers of their own.
    fn place(&mut self, ops: &[Operation], depth: usize) -> Vec<Layer> {
        let mut levels = vec![0usize; self.wires];
        let mut layers: Vec<Layer> = Vec::new();
        for op in ops {
            if self.full {
                break;
            }
            if self.drawn >= self.max_operations || self.marks >= self.max_marks {
                self.full = true;
                break;
            }
            if depth == 0
                && let Operation::Gate {
                    gate:
                        Gate::Standard {
                            gate: StandardGate::GlobalPhase,
                            params,
                        },
                    controls,
                    ..
                } = op
                && controls.is_empty()
            {
                let theta = params.first().copied().unwrap_or(0.0);
                self.global_phase = Some(self.global_phase.unwrap_or(0.0) + theta);
                self.drawn += 1;
                continue;
            }
            let before = (self.drawn, self.marks);
            let Some(item) = self.item(op, depth) else {
                continue;
            };
            let layer = levels[item.lo..=item.hi].iter().copied().max().unwrap_or(0);
            if depth == 0 && layer == layers.len() && layers.len() >= self.max_top_layers {
                // No room for another row: this operation is not drawn.
                (self.drawn, self.marks) = before;
                self.full = true;
                break;
            }
            if layer == layers.len() {
                layers.push(Layer::default());
            }
            for level in &mut levels[item.lo..=item.hi] {
                *level = layer + 1;
            }
            let slot = &mut layers[layer];
            slot.width = slot.width.max(item.width);
            slot.items.push(item);
        }
        layers
    }

    fn qubit(&self, q: u32) -> Option<usize> {
        let q = q as usize;
        (q < self.nq).then_some(q)
    }

    /// One operation as an item; `None` when it names a qubit or bit the
    /// circuit does not have (or is an empty barrier).
    fn item(&mut self, op: &Operation, depth: usize) -> Option<Item> {
        match op {
            Operation::Gate {
                gate,
                qubits,
                controls,
            } => {
                let targets = qubits
                    .iter()
                    .map(|&q| self.qubit(q))
                    .collect::<Option<Vec<_>>>()?;
                let controls = controls
                    .iter()
                    .map(|c| self.qubit(c.qubit).map(|w| (w, c.on)))
                    .collect::<Option<Vec<_>>>()?;
                let gate = self.gate(gate, targets, controls)?;
                let wires = gate
                    .targets
                    .iter()
                    .copied()
                    .chain(gate.controls.iter().map(|c| c.0));
                let lo = wires.clone().min()?;
                let hi = wires.max()?;
                let width = match gate.target {
                    Target::Box => box_width(&gate.label, gate.pins),
                    _ => MIN_BOX_W,
                };
                self.drawn += 1;
                self.marks += gate.targets.len() + gate.controls.len();
                Some(Item {
                    kind: Kind::Gate(gate),
                    lo,
                    hi,
                    qlo: lo,
                    qhi: hi,
                    width,
                })
            }
            Operation::Measure { qubit, clbit } => {
                let q = self.qubit(*qubit)?;
                let place = self.classical.place(*clbit)?;
                let line = self.nq + place.line;
                self.drawn += 1;
                self.marks += 1;
                Some(Item {
                    kind: Kind::Measure {
                        qubit: q,
                        line,
                        bit: place.offset,
                    },
                    lo: q,
                    hi: line,
                    qlo: q,
                    qhi: q,
                    width: MIN_BOX_W,
                })
            }
            Operation::Reset { qubit } => {
                let q = self.qubit(*qubit)?;
                self.drawn += 1;
                self.marks += 1;
                Some(Item {
                    kind: Kind::Reset { qubit: q },
                    lo: q,
                    hi: q,
                    qlo: q,
                    qhi: q,
                    width: label_width("|0⟩") + 2.0 * BOX_PAD,
                })
            }
            Operation::Channel { channel, qubits } => self.channel(channel, qubits),
            Operation::ReadoutError { clbit, error } => {
                let place = self.classical.place(*clbit)?;
                let line = self.nq + place.line;
                self.drawn += 1;
                self.marks += 1;
                Some(Item {
                    kind: Kind::Readout {
                        line,
                        bit: place.offset,
                        flips: (error.flip_probability(false), error.flip_probability(true)),
                    },
                    lo: line,
                    hi: line,
                    qlo: line,
                    qhi: line,
                    width: READOUT_W,
                })
            }
            Operation::Barrier { qubits } => {
                let mut wires = qubits
                    .iter()
                    .map(|&q| self.qubit(q))
                    .collect::<Option<Vec<_>>>()?;
                wires.sort_unstable();
                wires.dedup();
                let lo = *wires.first()?;
                let hi = *wires.last()?;
                self.drawn += 1;
                self.marks += 1;
                Some(Item {
                    kind: Kind::Barrier { qubits: wires },
                    lo,
                    hi,
                    qlo: lo,
                    qhi: hi,
                    width: BARRIER_W,
                })
            }
            Operation::IfElse {
                condition,
                then_ops,
                else_ops,
            } => self.block(condition, then_ops, else_ops, depth),
        }
    }

    /// A channel: a box over its qubits, labelled with its name and
    /// parameters (numbered pins when it spans several).
    fn channel(&mut self, channel: &Channel, qubits: &[u32]) -> Option<Item> {
        let targets = qubits
            .iter()
            .map(|&q| self.qubit(q))
            .collect::<Option<Vec<_>>>()?;
        let lo = *targets.iter().min()?;
        let hi = *targets.iter().max()?;
        let label = if channel.params().is_empty() {
            channel.name().to_owned()
        } else {
            let params: Vec<String> = channel.params().iter().map(|&p| format_number(p)).collect();
            format!("{}({})", channel.name(), params.join(","))
        };
        let width = box_width(&label, targets.len() > 1);
        self.drawn += 1;
        self.marks += targets.len();
        Some(Item {
            kind: Kind::Channel(ChannelItem {
                name: channel.name(),
                label,
                targets,
            }),
            lo,
            hi,
            qlo: lo,
            qhi: hi,
            width,
        })
    }

    fn block(
        &mut self,
        condition: &Condition,
        then_ops: &[Operation],
        else_ops: &[Operation],
        depth: usize,
    ) -> Option<Item> {
        let mut cond_wires = condition
            .clbits
            .iter()
            .map(|&b| self.classical.place(b).map(|p| self.nq + p.line))
            .collect::<Option<Vec<_>>>()?;
        cond_wires.sort_unstable();
        cond_wires.dedup();
        let condition_text = self.classical.describe(condition);
        self.drawn += 1;
        self.marks += 1;
        let elided =
            depth + 1 >= MAX_DRAWN_NESTING && !(then_ops.is_empty() && else_ops.is_empty());
        let (then_layers, else_layers) = if elided {
            (Vec::new(), None)
        } else {
            let then_layers = self.place(then_ops, depth + 1);
            let else_layers = (!else_ops.is_empty()).then(|| self.place(else_ops, depth + 1));
            (then_layers, else_layers)
        };
        let children = || {
            then_layers
                .iter()
                .chain(else_layers.iter().flatten())
                .flat_map(|l| &l.items)
        };
        let bottom = self.nq.saturating_sub(1);
        let qlo = children().map(|i| i.qlo).min().unwrap_or(bottom);
        let qhi = children().map(|i| i.qhi).max().unwrap_or(bottom);
        let hi = children()
            .map(|i| i.hi)
            .chain(cond_wires.iter().copied())
            .chain([qhi])
            .max()
            .unwrap_or(qhi);
        let inner_depth = children()
            .filter_map(|i| match &i.kind {
                Kind::Block(b) => Some(b.inner_depth + 1),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let label = if elided {
            format!("if {condition_text} …")
        } else {
            format!("if {condition_text}")
        };
        let mut width = 2.0 * FRAME_PAD_X + then_section(&label, &then_layers);
        if let Some(layers) = &else_layers {
            width += 2.0 * FRAME_PAD_X + span_width(layers).max(label_width("else"));
        }
        Some(Item {
            kind: Kind::Block(Box::new(Block {
                label,
                condition: condition_text,
                cond_wires,
                then_layers,
                else_layers,
                inner_depth,
            })),
            // The wire above too: the frame and its label reach into it.
            lo: qlo.saturating_sub(1),
            hi,
            qlo,
            qhi,
            width,
        })
    }

    /// A gate's picture: its label, targets and controls.
    fn gate(
        &self,
        gate: &Gate,
        mut targets: Vec<usize>,
        mut controls: Vec<(usize, bool)>,
    ) -> Option<GateItem> {
        let (name, base, builtin, params): (&'static str, &str, usize, &[f64]) = match gate {
            Gate::Standard { gate, params } => {
                let (base, builtin) = base_of(*gate);
                (gate.name(), base, builtin, params)
            }
            Gate::Unitary(_) => ("unitary", "Unitary", 0, &[]),
        };
        // Built-in controls lead the qubit list: they are drawn as dots.
        let builtin = builtin.min(targets.len());
        let mut own: Vec<(usize, bool)> = targets.drain(..builtin).map(|w| (w, true)).collect();
        own.append(&mut controls);
        let mut controls = own;
        let mut label = if params.is_empty() {
            base.to_owned()
        } else {
            let angles: Vec<String> = params.iter().map(|&p| format_angle(p)).collect();
            format!("{base}({})", angles.join(","))
        };
        let mut pins = targets.len() > 1;
        if targets.is_empty() {
            // A global phase: on its controls, a phase gate on the last of
            // them; without controls (inside an `if`), a box over all qubits.
            if let Some(&(last, on)) = controls.iter().max_by_key(|c| c.0) {
                controls.retain(|c| c.0 != last);
                targets.push(last);
                if on {
                    label = label.replacen("gphase", "P", 1);
                } else {
                    label = format!("{label} on |0⟩");
                }
            } else {
                targets = vec![0, self.nq.checked_sub(1)?];
                targets.dedup();
                pins = false;
            }
        }
        let target = match (base, controls.is_empty()) {
            ("X", false) => Target::Oplus,
            ("Z", false) if controls.iter().all(|c| c.1) => Target::Dot,
            ("Swap", _) => Target::Swap,
            _ => Target::Box,
        };
        if target != Target::Box {
            pins = false;
        }
        Some(GateItem {
            name,
            label,
            targets,
            controls,
            target,
            pins,
        })
    }
}

/// A standard gate's label without its angles, and how many of its first
/// qubits are controls.
fn base_of(gate: StandardGate) -> (&'static str, usize) {
    use StandardGate::*;
    match gate {
        Id => ("I", 0),
        X => ("X", 0),
        Y => ("Y", 0),
        Z => ("Z", 0),
        H => ("H", 0),
        S => ("S", 0),
        Sdg => ("S†", 0),
        T => ("T", 0),
        Tdg => ("T†", 0),
        Sx => ("√X", 0),
        Sxdg => ("√X†", 0),
        Rx => ("Rx", 0),
        Ry => ("Ry", 0),
        Rz => ("Rz", 0),
        P => ("P", 0),
        U2 => ("U2", 0),
        U => ("U", 0),
        Cx => ("X", 1),
        Cy => ("Y", 1),
        Cz => ("Z", 1),
        Ch => ("H", 1),
        Csx => ("√X", 1),
        Cp => ("P", 1),
        Crx => ("Rx", 1),
        Cry => ("Ry", 1),
        Crz => ("Rz", 1),
        Cu3 => ("U3", 1),
        Cu => ("U", 1),
        Swap => ("Swap", 0),
        Ccx => ("X", 2),
        Cswap => ("Swap", 1),
        Rxx => ("Rxx", 0),
        Ryy => ("Ryy", 0),
        Rzz => ("Rzz", 0),
        Rzx => ("Rzx", 0),
        Ecr => ("ECR", 0),
        ISwap => ("iSwap", 0),
        GlobalPhase => ("gphase", 0),
    }
}

/// Width of a box with `label`, and numbered pins on its left when `pins`.
fn box_width(label: &str, pins: bool) -> f64 {
    let pad = if pins {
        3.0 * BOX_PAD + 4.0
    } else {
        2.0 * BOX_PAD
    };
    (label_width(label) + pad).max(MIN_BOX_W)
}

/// Width of a label in the drawing's font.
pub(crate) fn label_width(label: &str) -> f64 {
    label.chars().count() as f64 * CHAR_W
}
