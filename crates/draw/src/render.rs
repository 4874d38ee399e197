//! The layout as SVG text: rows of wires with their labels, the items of
//! each layer, the caption (global phase) and the note of what was left out.

use std::fmt::{self, Write as _};

use kettle_ir::Circuit;

use crate::layout::{
    BOX_H, BOX_PAD, Block, ChannelItem, FRAME_PAD_X, GateItem, Item, Kind, LAYER_GAP, Laid, Layer,
    READOUT_W, Target, label_width, span_width, then_section,
};
use crate::{Options, escape, format_angle, format_number};

/// Space between two wires.
const WIRE_GAP: f64 = 40.0;
/// Space between two rows.
const ROW_GAP: f64 = 14.0;
/// Each nesting level of `if` frames adds this above the wires.
const FRAME_STEP: f64 = 14.0;
/// Room under the last wire (a measured bit's number, frames).
const BOTTOM: f64 = BOX_H / 2.0 + 18.0;
/// Room between the labels and the first layer.
const LEAD: f64 = 22.0;
/// Room after the last layer.
const TAIL: f64 = 18.0;
/// A line of text (caption, note).
const TEXT_LINE: f64 = 22.0;

const STYLE: &str = "text{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,\"DejaVu Sans Mono\",\"Liberation Mono\",monospace;fill:#1f2328}\
.bg{fill:#fff}.wire,.cwire{stroke:#8c959f;stroke-width:1}.name{fill:#424a53}\
.link{stroke:#0a5ec0;stroke-width:2}.ctrl{fill:#0a5ec0}.ctrl.open{fill:#fff;stroke:#0a5ec0;stroke-width:1.5}\
.box{fill:#dbe9fb;stroke:#0a5ec0;stroke-width:1.2}.oplus{fill:#0a5ec0}.cross{stroke:#fff;stroke-width:2}\
.swap{stroke:#0a5ec0;stroke-width:2}.meter{fill:#eef1f4;stroke:#59636e;stroke-width:1.2}\
.needle{fill:none;stroke:#1f2328;stroke-width:1.2}.carrow{stroke:#59636e;stroke-width:1.2}.head{fill:#59636e}\
.reset .box{fill:#f4f6f8;stroke:#59636e}.shade{fill:#d8dee4;fill-opacity:.6}\
.barrier line{stroke:#59636e;stroke-dasharray:4 3}\
.frame{fill:#fdf3d8;fill-opacity:.45;stroke:#8a5a00;stroke-dasharray:5 3;stroke-width:1.2}\
.sep{stroke:#8a5a00;stroke-dasharray:3 3}.cond{fill:#8a5a00;font-size:10px}\
.clink{stroke:#8a5a00;stroke-width:1.2}.cdot{fill:#8a5a00}.small{font-size:9px;fill:#59636e}\
.more{fill:#8a5a00}.fold{fill:#8c959f}\
.noise .box,.readout rect{fill:#fdecea;stroke:#b42318;stroke-dasharray:4 2}.readout text{font-size:9px;fill:#b42318}";

/// How far above its top wire an `if` frame reaches: room for its label,
/// and for the labels of the frames nested in it (up to three).
fn frame_reach(inner_depth: usize) -> f64 {
    BOX_H / 2.0 + FRAME_STEP * (1.0 + inner_depth.min(3) as f64)
}

/// A coordinate, with one decimal at most.
struct N(f64);

impl fmt::Display for N {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = (self.0 * 10.0).round() / 10.0;
        if v == v.trunc() {
            write!(f, "{}", v as i64)
        } else {
            write!(f, "{v:.1}")
        }
    }
}

/// The `<svg>` element's opening, its title and style, and the background.
fn open(out: &mut String, circuit: &Circuit, width: f64, height: f64, attrs: &str) {
    let title = format!(
        "Circuit: {} qubit{}, {} classical bit{}",
        circuit.num_qubits(),
        plural(circuit.num_qubits() as usize),
        circuit.num_clbits(),
        plural(circuit.num_clbits() as usize),
    );
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"kettle-circuit\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{t}\" data-qubits=\"{q}\" data-clbits=\"{c}\"{attrs}>\
<title>{t}</title><style>{STYLE}</style><rect class=\"bg\" width=\"{w}\" height=\"{h}\"/>",
        w = N(width),
        h = N(height),
        t = escape(&title),
        q = circuit.num_qubits(),
        c = circuit.num_clbits(),
    );
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A drawing that is only a note (a circuit too wide to draw, or empty).
pub(crate) fn note_only(circuit: &Circuit, operations: usize, note: &str) -> String {
    let width = (label_width(note) + 24.0).max(120.0);
    let mut out = String::new();
    let attrs = format!(" data-operations=\"{operations}\" data-drawn=\"0\" data-rows=\"0\"");
    open(&mut out, circuit, width, 36.0, &attrs);
    let _ = write!(
        out,
        "<text class=\"more\" x=\"12\" y=\"22\">{}</text></svg>",
        escape(note)
    );
    out
}

/// The whole drawing.
pub(crate) fn render(
    circuit: &Circuit,
    laid: &Laid,
    options: &Options,
    operations: usize,
) -> String {
    let nq = circuit.num_qubits() as usize;
    let wires = nq + laid.lines.len();
    if wires == 0 {
        return note_only(circuit, operations, "an empty circuit: no qubits, no bits");
    }
    let labels: Vec<String> = (0..nq)
        .map(|q| format!("q{q}"))
        .chain(laid.lines.iter().map(|l| l.label.clone()))
        .collect();
    let label_w = labels.iter().map(|l| label_width(l)).fold(0.0, f64::max) + 14.0;
    let x0 = label_w + LEAD;
    let rows: Vec<&[Layer]> = laid.layers.chunks(options.fold).collect();
    let rows: Vec<&[Layer]> = if rows.is_empty() { vec![&[]] } else { rows };
    // Each row leaves room above its first wire for the frames that reach
    // above it (an `if` on q0, taller the more frames it holds).
    let tops: Vec<f64> = rows
        .iter()
        .map(|layers| {
            layers
                .iter()
                .flat_map(|l| &l.items)
                .filter_map(|i| match &i.kind {
                    Kind::Block(b) => {
                        Some(frame_reach(b.inner_depth) - i.qlo as f64 * WIRE_GAP + 4.0)
                    }
                    _ => None,
                })
                .fold(BOX_H / 2.0 + 10.0, f64::max)
        })
        .collect();
    let wires_h = (wires - 1) as f64 * WIRE_GAP + BOTTOM;
    let header = if laid.global_phase.is_some() {
        TEXT_LINE
    } else {
        4.0
    };
    let left_out = operations.saturating_sub(laid.drawn);
    let footer = if left_out > 0 { TEXT_LINE + 6.0 } else { 4.0 };
    let row_widths: Vec<f64> = rows.iter().map(|r| x0 + span_width(r) + TAIL).collect();
    let more = format!(
        "… {left_out} more operation{} not drawn (a drawing shows at most {} operations)",
        plural(left_out),
        options.max_operations
    );
    let width = row_widths
        .iter()
        .copied()
        .fold(160.0, f64::max)
        .max(if left_out > 0 {
            label_width(&more) + 24.0
        } else {
            0.0
        });
    let mut y0s = Vec::with_capacity(rows.len());
    let mut y = header;
    for top in &tops {
        y0s.push(y);
        y += top + wires_h + ROW_GAP;
    }
    let height = y - ROW_GAP + footer;

    let mut out = String::with_capacity(4096);
    let attrs = format!(
        " data-operations=\"{operations}\" data-drawn=\"{}\" data-rows=\"{}\" data-fold=\"{}\"",
        laid.drawn,
        laid.layers.len().div_ceil(options.fold),
        options.fold
    );
    open(&mut out, circuit, width, height, &attrs);
    if let Some(phase) = laid.global_phase {
        let _ = write!(
            out,
            "<text class=\"name\" x=\"8\" y=\"15\">global phase: {}</text>",
            escape(&format_angle(phase))
        );
    }
    for (r, layers) in rows.iter().enumerate() {
        let pen = Pen {
            y0: y0s[r] + tops[r],
        };
        let end = row_widths[r] - 12.0;
        let folded = r + 1 < rows.len();
        let _ = write!(out, "<g class=\"row\" data-row=\"{r}\">");
        for (w, label) in labels.iter().enumerate() {
            let y = pen.y(w);
            let _ = write!(
                out,
                "<text class=\"name\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
                N(label_w - 8.0),
                N(y + 4.0),
                escape(label)
            );
            if w < nq {
                let _ = write!(
                    out,
                    "<line class=\"wire\" x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\"/>",
                    N(label_w - 4.0),
                    N(end),
                    y = N(y)
                );
            } else {
                let line = &laid.lines[w - nq];
                for dy in [-1.5, 1.5] {
                    let _ = write!(
                        out,
                        "<line class=\"cwire\" x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\"/>",
                        N(label_w - 4.0),
                        N(end),
                        y = N(y + dy)
                    );
                }
                let sx = label_w + 6.0;
                let _ = write!(
                    out,
                    "<line class=\"cwire\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/><text class=\"small\" x=\"{}\" y=\"{}\">{}</text>",
                    N(sx - 4.0),
                    N(y + 5.0),
                    N(sx + 4.0),
                    N(y - 5.0),
                    N(sx + 3.0),
                    N(y - 6.0),
                    line.size
                );
            }
            if folded {
                let _ = write!(
                    out,
                    "<text class=\"fold\" x=\"{}\" y=\"{}\">»</text>",
                    N(end + 1.0),
                    N(y + 4.0)
                );
            }
        }
        let mut x = x0;
        for layer in *layers {
            pen.layer(&mut out, layer, x);
            x += layer.width + LAYER_GAP;
        }
        out.push_str("</g>");
    }
    if left_out > 0 {
        let _ = write!(
            out,
            "<text class=\"more\" x=\"12\" y=\"{}\">{}</text>",
            N(height - 10.0),
            escape(&more)
        );
    }
    out.push_str("</svg>");
    out
}

/// Draws items of one row.
struct Pen {
    /// Where wire 0 is.
    y0: f64,
}

impl Pen {
    fn y(&self, wire: usize) -> f64 {
        self.y0 + wire as f64 * WIRE_GAP
    }

    /// The items of `layer`, which starts at `x`.
    fn layer(&self, out: &mut String, layer: &Layer, x: f64) {
        let cx = x + layer.width / 2.0;
        for item in &layer.items {
            self.item(out, item, cx);
        }
    }

    fn item(&self, out: &mut String, item: &Item, cx: f64) {
        match &item.kind {
            Kind::Gate(gate) => self.gate(out, gate, cx, item.width),
            Kind::Channel(channel) => self.channel(out, channel, cx, item.width),
            Kind::Readout { line, bit, flips } => self.readout(out, *line, *bit, *flips, cx),
            Kind::Measure { qubit, line, bit } => self.measure(out, *qubit, *line, *bit, cx),
            Kind::Reset { qubit } => {
                let y = self.y(*qubit);
                let _ = write!(
                    out,
                    "<g class=\"op reset\"><rect class=\"box\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"3\"/><text x=\"{}\" y=\"{}\" text-anchor=\"middle\">|0⟩</text></g>",
                    N(cx - item.width / 2.0),
                    N(y - BOX_H / 2.0),
                    N(item.width),
                    N(BOX_H),
                    N(cx),
                    N(y + 4.0)
                );
            }
            Kind::Barrier { qubits } => self.barrier(out, qubits, cx),
            Kind::Block(block) => self.block(out, block, item, cx),
        }
    }

    fn gate(&self, out: &mut String, gate: &GateItem, cx: f64, width: f64) {
        let _ = write!(
            out,
            "<g class=\"op gate\" data-name=\"{}\">",
            escape(gate.name)
        );
        let ys = gate
            .targets
            .iter()
            .chain(gate.controls.iter().map(|c| &c.0))
            .map(|&w| self.y(w));
        let (lo, hi) = ys.fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(y), b.max(y)));
        if hi > lo {
            let _ = write!(
                out,
                "<line class=\"link\" x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\"/>",
                N(lo),
                N(hi),
                x = N(cx)
            );
        }
        for &(w, on) in &gate.controls {
            let _ = write!(
                out,
                "<circle class=\"{}\" cx=\"{}\" cy=\"{}\" r=\"5\"/>",
                if on { "ctrl" } else { "ctrl open" },
                N(cx),
                N(self.y(w))
            );
        }
        match gate.target {
            Target::Box => self.labelled_box(out, &gate.targets, &gate.label, gate.pins, cx, width),
            Target::Oplus => {
                for &w in &gate.targets {
                    let y = self.y(w);
                    let _ = write!(
                        out,
                        "<circle class=\"oplus\" cx=\"{x}\" cy=\"{yy}\" r=\"10\"/><path class=\"cross\" d=\"M{} {yy}h20M{x} {}v20\"/>",
                        N(cx - 10.0),
                        N(y - 10.0),
                        x = N(cx),
                        yy = N(y)
                    );
                }
            }
            Target::Dot => {
                for &w in &gate.targets {
                    let _ = write!(
                        out,
                        "<circle class=\"ctrl\" cx=\"{}\" cy=\"{}\" r=\"5\"/>",
                        N(cx),
                        N(self.y(w))
                    );
                }
            }
            Target::Swap => {
                for &w in &gate.targets {
                    let y = self.y(w);
                    let _ = write!(
                        out,
                        "<path class=\"swap\" d=\"M{} {}l12 12M{} {}l-12 12\"/>",
                        N(cx - 6.0),
                        N(y - 6.0),
                        N(cx + 6.0),
                        N(y - 6.0)
                    );
                }
            }
        }
        out.push_str("</g>");
    }

    /// A box over `targets` saying `label`, with the targets numbered
    /// inside on its left when `pins` (a gate's or a channel's).
    fn labelled_box(
        &self,
        out: &mut String,
        targets: &[usize],
        label: &str,
        pins: bool,
        cx: f64,
        width: f64,
    ) {
        let (tlo, thi) = targets
            .iter()
            .map(|&w| self.y(w))
            .fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(y), b.max(y)));
        let left = cx - width / 2.0;
        let _ = write!(
            out,
            "<rect class=\"box\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"3\"/>",
            N(left),
            N(tlo - BOX_H / 2.0),
            N(width),
            N(thi - tlo + BOX_H)
        );
        let shift = if pins { BOX_PAD / 2.0 + 2.0 } else { 0.0 };
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            N(cx + shift),
            N((tlo + thi) / 2.0 + 4.0),
            escape(label)
        );
        if pins {
            for (i, &w) in targets.iter().enumerate() {
                let _ = write!(
                    out,
                    "<text class=\"small\" x=\"{}\" y=\"{}\">{i}</text>",
                    N(left + 3.0),
                    N(self.y(w) + 3.0)
                );
            }
        }
    }

    /// A channel: a gate-like box in the noise style (class `noise`).
    fn channel(&self, out: &mut String, channel: &ChannelItem, cx: f64, width: f64) {
        let _ = write!(
            out,
            "<g class=\"op noise\" data-name=\"{}\">",
            escape(channel.name)
        );
        let pins = channel.targets.len() > 1;
        self.labelled_box(out, &channel.targets, &channel.label, pins, cx, width);
        out.push_str("</g>");
    }

    /// A readout error: a small `ro` mark on its classical line; its
    /// probabilities in a tooltip.
    fn readout(&self, out: &mut String, line: usize, bit: u64, flips: (f64, f64), cx: f64) {
        let y = self.y(line);
        let _ = write!(
            out,
            "<g class=\"op readout\" data-bit=\"{bit}\"><title>readout error on bit {bit}: P(1|0)={}, P(0|1)={}</title>\
<rect x=\"{}\" y=\"{}\" width=\"{w}\" height=\"14\" rx=\"3\"/><text x=\"{}\" y=\"{}\" text-anchor=\"middle\">ro</text></g>",
            escape(&format_number(flips.0)),
            escape(&format_number(flips.1)),
            N(cx - READOUT_W / 2.0),
            N(y - 7.0),
            N(cx),
            N(y + 3.0),
            w = N(READOUT_W),
        );
    }

    fn measure(&self, out: &mut String, qubit: usize, line: usize, bit: u64, cx: f64) {
        let y = self.y(qubit);
        let ly = self.y(line);
        let half = BOX_H / 2.0;
        let _ = write!(
            out,
            "<g class=\"op measure\" data-bit=\"{bit}\">\
<rect class=\"meter\" x=\"{}\" y=\"{}\" width=\"{b}\" height=\"{b}\" rx=\"3\"/>\
<path class=\"needle\" d=\"M{} {}A9 9 0 0 1 {} {}M{cxs} {}L{} {}\"/>\
<line class=\"carrow\" x1=\"{cxs}\" y1=\"{}\" x2=\"{cxs}\" y2=\"{}\"/>\
<path class=\"head\" d=\"M{} {}L{} {}L{cxs} {}z\"/>\
<text class=\"small\" x=\"{}\" y=\"{}\">{bit}</text></g>",
            N(cx - half),
            N(y - half),
            N(cx - 8.0),
            N(y + 5.0),
            N(cx + 8.0),
            N(y + 5.0),
            N(y + 5.0),
            N(cx + 6.0),
            N(y - 6.0),
            N(y + half),
            N(ly - 8.0),
            N(cx - 4.0),
            N(ly - 9.0),
            N(cx + 4.0),
            N(ly - 9.0),
            N(ly - 2.0),
            N(cx + 5.0),
            N(ly + 14.0),
            b = N(BOX_H),
            cxs = N(cx),
        );
    }

    fn barrier(&self, out: &mut String, qubits: &[usize], cx: f64) {
        out.push_str("<g class=\"op barrier\">");
        // Runs of neighbouring qubits.
        let mut start = 0;
        while start < qubits.len() {
            let mut end = start;
            while end + 1 < qubits.len() && qubits[end + 1] == qubits[end] + 1 {
                end += 1;
            }
            let top = self.y(qubits[start]) - BOX_H / 2.0 - 2.0;
            let bottom = self.y(qubits[end]) + BOX_H / 2.0 + 2.0;
            let _ = write!(
                out,
                "<rect class=\"shade\" x=\"{}\" y=\"{}\" width=\"10\" height=\"{}\"/><line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\"/>",
                N(cx - 5.0),
                N(top),
                N(bottom - top),
                N(top),
                N(bottom),
                x = N(cx)
            );
            start = end + 1;
        }
        out.push_str("</g>");
    }

    fn block(&self, out: &mut String, block: &Block, item: &Item, cx: f64) {
        let nested = block.inner_depth.min(3) as f64;
        let left = cx - item.width / 2.0;
        let top = self.y(item.qlo) - frame_reach(block.inner_depth);
        let bottom = self.y(item.qhi) + BOX_H / 2.0 + 5.0 + 4.0 * nested;
        let _ = write!(
            out,
            "<g class=\"op if\" data-condition=\"{}\"><rect class=\"frame\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"4\"/><text class=\"cond\" x=\"{}\" y=\"{}\">{}</text>",
            escape(&block.condition),
            N(left),
            N(top),
            N(item.width),
            N(bottom - top),
            N(left + 4.0),
            N(top + 11.0),
            escape(&block.label)
        );
        // The classical bits it reads: a double line down to their lines.
        if let Some(&last) = block.cond_wires.last() {
            let x = left + 4.0;
            for dx in [-1.5, 1.5] {
                let _ = write!(
                    out,
                    "<line class=\"clink\" x1=\"{xx}\" y1=\"{}\" x2=\"{xx}\" y2=\"{}\"/>",
                    N(bottom),
                    N(self.y(last)),
                    xx = N(x + dx)
                );
            }
            for &w in &block.cond_wires {
                let _ = write!(
                    out,
                    "<circle class=\"cdot\" cx=\"{}\" cy=\"{}\" r=\"4\"/>",
                    N(x),
                    N(self.y(w))
                );
            }
        }
        let mut x = left + FRAME_PAD_X;
        for layer in &block.then_layers {
            self.layer(out, layer, x);
            x += layer.width + LAYER_GAP;
        }
        if let Some(layers) = &block.else_layers {
            let sep = left + 2.0 * FRAME_PAD_X + then_section(&block.label, &block.then_layers);
            let _ = write!(
                out,
                "<line class=\"sep\" x1=\"{s}\" y1=\"{}\" x2=\"{s}\" y2=\"{}\"/><text class=\"cond\" x=\"{}\" y=\"{}\">else</text>",
                N(top),
                N(bottom),
                N(sep + 4.0),
                N(top + 11.0),
                s = N(sep)
            );
            let mut x = sep + FRAME_PAD_X;
            for layer in layers {
                self.layer(out, layer, x);
                x += layer.width + LAYER_GAP;
            }
        }
        out.push_str("</g>");
    }
}
