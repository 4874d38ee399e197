//! Kettle's circuit drawer: a [`kettle_ir::Circuit`] as an SVG picture, the
//! way Qiskit's drawer shows one.
//!
//! One horizontal wire per qubit (`q0`, `q1`, …) and one double line per
//! classical register (named as declared); gates as labelled boxes with
//! their angles (`Rx(π/2)`), controls as dots (open for negative controls)
//! joined to their targets, a controlled X as ⊕, a swap as ×, a measurement
//! as a meter with an arrow to its classical line, resets as `|0⟩`,
//! barriers as dashed lines, and an `if`/`else` as a dashed frame around its
//! body, labelled with its condition (`if c==1`) and joined to the
//! classical bits it reads. Noise (issue 18) is drawn apart from the gates,
//! in red with dashed borders: a channel as a box over its qubits labelled
//! with its name and parameters (`depolarizing(0.01)`), a readout error as
//! a small `ro` mark on the classical line of its bit. Operations are packed into layers from left to
//! right (an operation goes into the first layer after every earlier one on
//! the wires it spans), and a wide circuit is folded into rows of
//! [`Options::fold`] layers, as Qiskit's `fold` does.
//!
//! The picture's size is bounded whatever the circuit: at most
//! [`Options::max_operations`] operations are drawn (fewer when they are
//! wide, as each control and target counts towards a bound of marks), at
//! most [`MAX_ROWS`] rows and [`MAX_QUBIT_WIRES`] qubit wires; beyond that
//! the drawing stops with a note, "… N more operations". Every name that
//! comes from a program (register names) is escaped, so the SVG is safe to
//! serve and to show.
//!
//! ```
//! use kettle_ir::Circuit;
//! let bell = Circuit::new(2).h(0).cx(0, 1).measure_all();
//! let drawing = kettle_draw::draw(&bell, &kettle_draw::Options::default());
//! assert_eq!((drawing.operations, drawing.drawn, drawing.rows), (4, 4, 1));
//! assert!(drawing.svg.starts_with("<svg"));
//! ```
//!
//! This crate does no I/O; it depends only on `kettle-ir`.

mod layout;
mod render;
#[cfg(test)]
mod tests;

use kettle_ir::Circuit;

/// Layers per row when none is asked for.
pub const DEFAULT_FOLD: usize = 20;
/// Operations drawn at most when none is asked for.
pub const DEFAULT_MAX_OPERATIONS: usize = 500;
/// Most rows a drawing has: the drawing stops once its layers fill them.
pub const MAX_ROWS: usize = 40;
/// Most qubit wires drawn; a circuit with more is not drawn (a note says so).
pub const MAX_QUBIT_WIRES: u32 = 64;
/// Most classical registers drawn as lines of their own; with more, all
/// classical bits share one line.
pub const MAX_CLASSICAL_LINES: usize = 16;
/// Each operation's controls and targets count as marks; a drawing has at
/// most this many marks per operation it may draw.
pub const MARKS_PER_OPERATION: usize = 4;
/// Longest name (of a register) shown; longer ones end in `…`.
pub const MAX_NAME_CHARS: usize = 24;
/// `if` blocks nested deeper than this are drawn as an empty frame.
pub const MAX_DRAWN_NESTING: usize = 16;

/// How to draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Layers per row: a wider circuit continues on the next row (at least 1).
    pub fold: usize,
    /// Most operations drawn (nested ones counted); the rest are counted in
    /// a note at the end.
    pub max_operations: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            fold: DEFAULT_FOLD,
            max_operations: DEFAULT_MAX_OPERATIONS,
        }
    }
}

/// A drawn circuit.
#[derive(Clone, Debug, PartialEq)]
pub struct Drawing {
    /// The picture: one `<svg>` element, standalone.
    pub svg: String,
    /// Operations in the circuit, nested ones counted (an `if` is one, and
    /// so is each operation in its branches).
    pub operations: usize,
    /// Operations drawn (a global phase counts, shown in the caption).
    pub drawn: usize,
    /// Rows the layers were folded into.
    pub rows: usize,
}

/// Draws `circuit`. A circuit that does not validate is drawn as far as it
/// can be: an operation on a qubit or bit that does not exist is left out.
pub fn draw(circuit: &Circuit, options: &Options) -> Drawing {
    let operations = count_operations(circuit.ops());
    let options = Options {
        fold: options.fold.max(1),
        max_operations: options.max_operations,
    };
    if circuit.num_qubits() > MAX_QUBIT_WIRES {
        let note = format!(
            "{} qubits: too many to draw (at most {MAX_QUBIT_WIRES})",
            circuit.num_qubits()
        );
        return Drawing {
            svg: render::note_only(circuit, operations, &note),
            operations,
            drawn: 0,
            rows: 0,
        };
    }
    let laid = layout::lay_out(circuit, &options);
    let rows = laid.layers.len().div_ceil(options.fold);
    let svg = render::render(circuit, &laid, &options, operations);
    Drawing {
        svg,
        operations,
        drawn: laid.drawn,
        rows,
    }
}

/// Operations in `ops`, nested ones counted, without recursion (a circuit
/// that did not validate may nest deeper than anything should recurse).
pub fn count_operations(ops: &[kettle_ir::Operation]) -> usize {
    let mut count = 0usize;
    let mut stack: Vec<&[kettle_ir::Operation]> = vec![ops];
    while let Some(ops) = stack.pop() {
        count = count.saturating_add(ops.len());
        for op in ops {
            if let kettle_ir::Operation::IfElse {
                then_ops, else_ops, ..
            } = op
            {
                stack.push(then_ops);
                stack.push(else_ops);
            }
        }
    }
    count
}

/// An angle, short: multiples of π/d (d up to 16) as `π/2`, `-3π/4`, `2π`;
/// others with three decimals at most (`0.3`, `1.234`), or in exponent
/// form when very large or small.
pub fn format_angle(value: f64) -> String {
    // Zero and non-finite values match no multiple of π: format_number
    // writes them.
    let ratio = value / std::f64::consts::PI;
    for d in 1..=16i64 {
        let scaled = ratio * d as f64;
        let n = scaled.round();
        if (scaled - n).abs() < 1e-9 && n != 0.0 && n.abs() <= (64 * d) as f64 {
            let n = n as i64;
            let num = match n {
                1 => "π".to_owned(),
                -1 => "-π".to_owned(),
                n => format!("{n}π"),
            };
            return if d == 1 { num } else { format!("{num}/{d}") };
        }
    }
    format_number(value)
}

/// A number, short: three decimals at most (`0.3`, `1.234`), or in
/// exponent form when very large or small (a channel's probabilities and
/// times, which are no angles, so never shown as multiples of π).
pub fn format_number(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    if value == 0.0 {
        return "0".into();
    }
    let magnitude = value.abs();
    if !(1e-3..1e4).contains(&magnitude) {
        return format!("{value:.2e}");
    }
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" || text.is_empty() {
        "0".into()
    } else {
        text.to_owned()
    }
}

/// `text` made safe for SVG text and attribute values: `& < > " '` as
/// entities, and characters XML does not allow (most control characters)
/// as `�`.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A name cut to [`MAX_NAME_CHARS`] characters (the last one `…`).
pub(crate) fn short_name(name: &str) -> String {
    if name.chars().count() <= MAX_NAME_CHARS {
        return name.to_owned();
    }
    let mut short: String = name.chars().take(MAX_NAME_CHARS - 1).collect();
    short.push('…');
    short
}
