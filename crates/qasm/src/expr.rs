//! Parameter expressions: a small tree over the parameters of the gate being
//! defined, constant-folded to `f64` as it is built.
//!
//! Every node records its height, and the parser refuses trees taller than
//! [`Limits::max_expression_depth`](crate::Limits::max_expression_depth), so
//! evaluating or dropping a tree never recurses deeply.

/// A binary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
}

/// A built-in function of one argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Func {
    Sin,
    Cos,
    Tan,
    Exp,
    Ln,
    Sqrt,
    Asin,
    Acos,
    Atan,
}

impl Func {
    /// The OpenQASM 3 spelling of a function (`arcsin`, `log`).
    pub(crate) fn from_qasm3_name(name: &str) -> Option<Func> {
        Some(match name {
            "sin" => Func::Sin,
            "cos" => Func::Cos,
            "tan" => Func::Tan,
            "exp" => Func::Exp,
            "log" => Func::Ln,
            "sqrt" => Func::Sqrt,
            "arcsin" => Func::Asin,
            "arccos" => Func::Acos,
            "arctan" => Func::Atan,
            _ => return None,
        })
    }

    pub(crate) fn from_name(name: &str) -> Option<Func> {
        Some(match name {
            "sin" => Func::Sin,
            "cos" => Func::Cos,
            "tan" => Func::Tan,
            "exp" => Func::Exp,
            "ln" => Func::Ln,
            "sqrt" => Func::Sqrt,
            "asin" => Func::Asin,
            "acos" => Func::Acos,
            "atan" => Func::Atan,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Func::Sin => "sin",
            Func::Cos => "cos",
            Func::Tan => "tan",
            Func::Exp => "exp",
            Func::Ln => "ln",
            Func::Sqrt => "sqrt",
            Func::Asin => "asin",
            Func::Acos => "acos",
            Func::Atan => "atan",
        }
    }

    fn apply(self, x: f64) -> f64 {
        match self {
            Func::Sin => x.sin(),
            Func::Cos => x.cos(),
            Func::Tan => x.tan(),
            Func::Exp => x.exp(),
            Func::Ln => x.ln(),
            Func::Sqrt => x.sqrt(),
            Func::Asin => x.asin(),
            Func::Acos => x.acos(),
            Func::Atan => x.atan(),
        }
    }
}

/// An expression node.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Expr {
    /// A folded constant.
    Const(f64),
    /// The `i`-th parameter of the enclosing gate definition.
    Param(usize),
    /// `-x`.
    Neg(Box<Expr>, usize),
    /// `a op b`.
    Bin(BinOp, Box<Expr>, Box<Expr>, usize),
    /// `f(x)`.
    Call(Func, Box<Expr>, usize),
}

fn check(value: f64, what: impl FnOnce() -> String) -> Result<f64, String> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(format!("{} is not a finite number", what()))
    }
}

/// `a op b` on floats, or why it has no finite value (shared with OpenQASM 3).
pub(crate) fn binary(op: BinOp, a: f64, b: f64) -> Result<f64, String> {
    let v = match op {
        BinOp::Add => a + b,
        BinOp::Sub => a - b,
        BinOp::Mul => a * b,
        BinOp::Div => {
            if b == 0.0 {
                return Err("division by zero".into());
            }
            a / b
        }
        BinOp::Pow => a.powf(b),
    };
    check(v, || {
        let sym = match op {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Pow => "^",
        };
        format!("the result of `{a} {sym} {b}`")
    })
}

/// `f(x)`, or why it has no finite value (shared with OpenQASM 3).
pub(crate) fn func(f: Func, x: f64) -> Result<f64, String> {
    check(f.apply(x), || format!("`{}({x})`", f.name()))
}

impl Expr {
    /// Height of the tree (a leaf has height 1).
    pub(crate) fn height(&self) -> usize {
        match self {
            Expr::Const(_) | Expr::Param(_) => 1,
            Expr::Neg(_, h) | Expr::Bin(_, _, _, h) | Expr::Call(_, _, h) => *h,
        }
    }

    /// `-x`, folded when `x` is constant.
    pub(crate) fn neg(x: Expr) -> Expr {
        match x {
            Expr::Const(v) => Expr::Const(-v),
            x => {
                let h = x.height() + 1;
                Expr::Neg(Box::new(x), h)
            }
        }
    }

    /// `a op b`, folded when both are constant.
    pub(crate) fn bin(op: BinOp, a: Expr, b: Expr) -> Result<Expr, String> {
        match (&a, &b) {
            (Expr::Const(x), Expr::Const(y)) => Ok(Expr::Const(binary(op, *x, *y)?)),
            _ => {
                let h = a.height().max(b.height()) + 1;
                Ok(Expr::Bin(op, Box::new(a), Box::new(b), h))
            }
        }
    }

    /// `f(x)`, folded when `x` is constant.
    pub(crate) fn call(f: Func, x: Expr) -> Result<Expr, String> {
        match x {
            Expr::Const(v) => Ok(Expr::Const(func(f, v)?)),
            x => {
                let h = x.height() + 1;
                Ok(Expr::Call(f, Box::new(x), h))
            }
        }
    }

    /// The value, with `params` for the enclosing gate's parameters.
    pub(crate) fn eval(&self, params: &[f64]) -> Result<f64, String> {
        match self {
            Expr::Const(v) => Ok(*v),
            Expr::Param(i) => params
                .get(*i)
                .copied()
                .ok_or_else(|| "internal error: parameter out of range".to_string()),
            Expr::Neg(x, _) => Ok(-x.eval(params)?),
            Expr::Bin(op, a, b, _) => binary(*op, a.eval(params)?, b.eval(params)?),
            Expr::Call(f, x, _) => func(*f, x.eval(params)?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_constants() {
        let e = Expr::bin(BinOp::Add, Expr::Const(1.0), Expr::Const(2.0)).unwrap();
        assert_eq!(e, Expr::Const(3.0));
        assert!(Expr::bin(BinOp::Div, Expr::Const(1.0), Expr::Const(0.0)).is_err());
        assert!(Expr::call(Func::Ln, Expr::Const(0.0)).is_err());
        assert!(Expr::call(Func::Sqrt, Expr::Const(-1.0)).is_err());
    }

    #[test]
    fn evaluates_parameters() {
        let e = Expr::bin(BinOp::Mul, Expr::Param(0), Expr::Const(2.0)).unwrap();
        let e = Expr::neg(e);
        assert_eq!(e.height(), 3);
        assert_eq!(e.eval(&[1.5]), Ok(-3.0));
        let d = Expr::bin(BinOp::Div, Expr::Const(1.0), Expr::Param(0)).unwrap();
        assert_eq!(d.eval(&[0.0]), Err("division by zero".into()));
    }
}
