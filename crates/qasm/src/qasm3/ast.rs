//! The syntax tree of an OpenQASM 3 program, as the parser builds it and the
//! lowering walks it. Nothing here is evaluated: sizes, indices and angles
//! stay expressions until the lowering knows the values of the names in them.
//!
//! The parser bounds the height of every expression and the nesting of
//! blocks, so walking or dropping a tree never recurses deeply.

use std::rc::Rc;

use kettle_ir::Complex64;

/// A position: 1-based line and column (in characters) in file `file`
/// (0 is the main source, others index the lowering's file table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Loc {
    pub(crate) line: u32,
    pub(crate) column: u32,
    pub(crate) file: u32,
}

/// A classical type, as written (widths are kept only where they matter).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Type {
    Bool,
    /// `bit` (`None`) or `bit[n]`.
    Bit(Option<Box<Expr>>),
    Int,
    Uint,
    Float,
    /// `angle` (`None`) or `angle[n]`.
    Angle(Option<Box<Expr>>),
}

impl Type {
    /// The type's keyword, for messages and [`crate::InputParameter::kind`].
    pub(crate) fn keyword(&self) -> &'static str {
        match self {
            Type::Bool => "bool",
            Type::Bit(_) => "bit",
            Type::Int => "int",
            Type::Uint => "uint",
            Type::Float => "float",
            Type::Angle(_) => "angle",
        }
    }
}

/// A unary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UnOp {
    Neg,
    Not,
    BitNot,
}

/// A binary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Pow,
    BitAnd,
    BitOr,
    BitXor,
    Shl,
    Shr,
    And,
    Or,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl BinOp {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::Pow => "**",
            BinOp::BitAnd => "&",
            BinOp::BitOr => "|",
            BinOp::BitXor => "^",
            BinOp::Shl => "<<",
            BinOp::Shr => ">>",
            BinOp::And => "&&",
            BinOp::Or => "||",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
        }
    }

    /// The operator of a compound assignment (`+=` → `+`).
    pub(crate) fn from_compound(op: &str) -> Option<BinOp> {
        Some(match op {
            "+" => BinOp::Add,
            "-" => BinOp::Sub,
            "*" => BinOp::Mul,
            "/" => BinOp::Div,
            "%" => BinOp::Rem,
            "**" => BinOp::Pow,
            "&" => BinOp::BitAnd,
            "|" => BinOp::BitOr,
            "^" => BinOp::BitXor,
            "<<" => BinOp::Shl,
            ">>" => BinOp::Shr,
            _ => return None,
        })
    }
}

/// An index or a list of indices inside `[…]`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Index {
    /// `[i]`.
    Single(Expr),
    /// `[a:b]`, `[a:s:b]`, `[:]`, `[a:]`, `[:b]` (inclusive end).
    Range(Range),
    /// `[{i, j, k}]`.
    Set(Vec<Expr>),
}

/// A range `start:step:end`; missing bounds mean the register's ends.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Range {
    pub(crate) start: Option<Box<Expr>>,
    pub(crate) step: Option<Box<Expr>>,
    pub(crate) end: Option<Box<Expr>>,
}

/// An expression and where it starts.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Expr {
    pub(crate) kind: ExprKind,
    pub(crate) loc: Loc,
    /// Height of the tree (a leaf has height 1); the parser bounds it.
    pub(crate) height: usize,
}

impl Index {
    /// Height of the tallest expression inside.
    pub(crate) fn height(&self) -> usize {
        let opt = |e: &Option<Box<Expr>>| e.as_ref().map_or(0, |e| e.height);
        match self {
            Index::Single(e) => e.height,
            Index::Range(r) => opt(&r.start).max(opt(&r.step)).max(opt(&r.end)),
            Index::Set(items) => items.iter().map(|e| e.height).max().unwrap_or(0),
        }
    }
}

impl ExprKind {
    /// Height of the tallest child (0 for a leaf).
    pub(crate) fn child_height(&self) -> usize {
        match self {
            ExprKind::Int(_)
            | ExprKind::Float(_)
            | ExprKind::Bool(_)
            | ExprKind::BitString(_)
            | ExprKind::Ident(_)
            | ExprKind::Physical(_) => 0,
            ExprKind::Index(e, i) => e.height.max(i.height()),
            ExprKind::Unary(_, e) | ExprKind::Cast(_, e) | ExprKind::Measure(e) => e.height,
            ExprKind::Binary(_, a, b) | ExprKind::Concat(a, b) => a.height.max(b.height),
            ExprKind::Call(_, args) => args.iter().map(|e| e.height).max().unwrap_or(0),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ExprKind {
    /// An integer literal (`None` when it does not fit in `u64`).
    Int(Option<u64>),
    Float(f64),
    Bool(bool),
    /// A bit-string literal such as `"0101"`, most significant bit first.
    BitString(String),
    Ident(String),
    /// A physical qubit `$n`.
    Physical(u64),
    /// `e[index]`.
    Index(Box<Expr>, Box<Index>),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `name(args)`: a built-in function or a subroutine.
    Call(String, Vec<Expr>),
    /// `type(e)`.
    Cast(Type, Box<Expr>),
    /// `a ++ b` (qubit registers, in `let`).
    Concat(Box<Expr>, Box<Expr>),
    /// `measure operand` (only where a value may be measured).
    Measure(Box<Expr>),
}

/// A gate modifier.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Modifier {
    Inv,
    Pow(Expr),
    /// `ctrl(n)` (`on == true`) or `negctrl(n)`; `None` for one control.
    Ctrl {
        on: bool,
        count: Option<Expr>,
    },
}

/// What a `for` loop runs over.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Iterable {
    Range(Range),
    Set(Vec<Expr>),
    /// A bit register or other value to iterate over.
    Value(Expr),
}

/// A parameter of a subroutine.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum SubParam {
    Classical {
        ty: Type,
        name: String,
        loc: Loc,
    },
    /// `qubit a` or `qubit[n] a`.
    Qubit {
        size: Option<Expr>,
        name: String,
        loc: Loc,
    },
}

/// A `gate` definition.
#[derive(Debug, PartialEq)]
pub(crate) struct GateDef {
    pub(crate) name: String,
    pub(crate) params: Vec<String>,
    pub(crate) qubits: Vec<String>,
    pub(crate) body: Vec<Stmt>,
    pub(crate) loc: Loc,
}

/// A `def` subroutine.
#[derive(Debug, PartialEq)]
pub(crate) struct SubDef {
    pub(crate) name: String,
    pub(crate) params: Vec<SubParam>,
    pub(crate) ret: Option<Type>,
    pub(crate) body: Vec<Stmt>,
    pub(crate) loc: Loc,
}

/// The left side of an assignment: `name` or `name[index]`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct LValue {
    pub(crate) name: String,
    pub(crate) index: Option<Index>,
    pub(crate) loc: Loc,
}

/// A statement and where it starts.
#[derive(Debug, PartialEq)]
pub(crate) struct Stmt {
    pub(crate) kind: StmtKind,
    pub(crate) loc: Loc,
}

#[derive(Debug, PartialEq)]
pub(crate) enum StmtKind {
    /// `include "stdgates.inc";`
    IncludeStdgates,
    /// An included file's statements (file index in `Loc::file`).
    Included(Vec<Stmt>),
    /// An include left unread ([`crate::qasm3_inputs`] reads no files).
    IncludeUnread,
    /// `qubit q;`, `qubit[n] q;`, `qreg q[n];`.
    QubitDecl {
        name: String,
        size: Option<Expr>,
    },
    /// A classical declaration; `input`s have no initialiser.
    ClassicalDecl {
        ty: Type,
        name: String,
        init: Option<Expr>,
        constant: bool,
        input: bool,
    },
    /// `let name = qubits;`
    Alias {
        name: String,
        value: Expr,
    },
    /// `target = value;` or `target op= value;`.
    Assign {
        target: LValue,
        op: Option<BinOp>,
        value: Expr,
    },
    Gate(Rc<GateDef>),
    Def(Rc<SubDef>),
    /// A gate call, `gphase` included.
    GateCall {
        modifiers: Vec<(Modifier, Loc)>,
        name: String,
        params: Vec<Expr>,
        args: Vec<Expr>,
    },
    /// `measure q;` or `measure q -> c;`.
    Measure {
        qubits: Expr,
        target: Option<LValue>,
    },
    Reset(Expr),
    /// `barrier;` (empty: every qubit) or `barrier a, b;`.
    Barrier(Vec<Expr>),
    If {
        condition: Expr,
        then_body: Vec<Stmt>,
        else_body: Option<Vec<Stmt>>,
    },
    For {
        ty: Option<Type>,
        var: String,
        iterable: Iterable,
        body: Vec<Stmt>,
    },
    While {
        condition: Expr,
        body: Vec<Stmt>,
    },
    /// `switch (target) { case a, b { … } … default { … } }`.
    Switch {
        target: Expr,
        cases: Vec<(Vec<Expr>, Vec<Stmt>)>,
        default: Option<Vec<Stmt>>,
    },
    Break,
    Continue,
    Return(Option<Expr>),
    /// An expression evaluated for its effect (a subroutine call).
    Expr(Expr),
    /// `{ … }`.
    Block(Vec<Stmt>),
    /// `#pragma braket noise …`: a noise channel where the pragma stands.
    Noise(Noise),
}

/// A Braket noise pragma, `#pragma braket noise name(args) targets`.
#[derive(Debug, PartialEq)]
pub(crate) struct Noise {
    /// The channel's name and where it is written.
    pub(crate) name: String,
    pub(crate) name_loc: Loc,
    pub(crate) args: NoiseArgs,
    /// The qubit operands, as a gate call's.
    pub(crate) targets: Vec<Expr>,
}

/// What is between the parentheses of a noise pragma.
#[derive(Debug, PartialEq)]
pub(crate) enum NoiseArgs {
    /// A named channel's parameters (expressions, evaluated when lowered,
    /// so that constants and inputs may appear in them).
    Params(Vec<Expr>),
    /// `kraus`'s matrices, row-major in Braket's qubit order (the first
    /// target the most significant bit), each with where it starts.
    Kraus(Vec<(Vec<Complex64>, Loc)>),
}
