//! Classical values known at compile time, their types, and the operators,
//! casts and built-in functions of OpenQASM 3 on them.
//!
//! Integers are 64-bit with checked arithmetic (an overflow is an error, not
//! a wrap), and `/` of two integers is exact: an integer when it divides,
//! else a float (the specification's stdgates.inc needs `pow(1/2)` to be a
//! square root); `float` and `angle` are `f64` (angles are not reduced modulo
//! 2π); a bit register's value is its bits, least significant first. Every
//! operation returns an error message instead of a non-finite number.

use crate::expr::{self, Func};

/// A value known while the program is lowered.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Bool(bool),
    Int(i64),
    /// A `float` or an `angle`.
    Float(f64),
    /// A `bit` (one element) or `bit[n]` value, least significant bit first.
    Bits(Vec<bool>),
}

/// A declared classical type, with the width of a bit register evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VarType {
    Bool,
    /// `bit` (`None`) or `bit[n]`.
    Bit(Option<u32>),
    Int,
    Uint,
    Float,
    Angle,
}

impl VarType {
    pub(crate) fn keyword(self) -> &'static str {
        match self {
            VarType::Bool => "bool",
            VarType::Bit(_) => "bit",
            VarType::Int => "int",
            VarType::Uint => "uint",
            VarType::Float => "float",
            VarType::Angle => "angle",
        }
    }

    /// The zero of the type (the value of a declaration without one).
    pub(crate) fn zero(self) -> Value {
        match self {
            VarType::Bool => Value::Bool(false),
            VarType::Bit(width) => Value::Bits(vec![false; width.unwrap_or(1) as usize]),
            VarType::Int | VarType::Uint => Value::Int(0),
            VarType::Float | VarType::Angle => Value::Float(0.0),
        }
    }
}

/// The bits of `v` as an unsigned integer, if they fit in 63 bits.
fn bits_value(bits: &[bool]) -> Option<i64> {
    let mut value: i64 = 0;
    for (i, &b) in bits.iter().enumerate() {
        if b {
            if i >= 63 {
                return None;
            }
            value |= 1 << i;
        }
    }
    Some(value)
}

/// The low `width` bits of `v` (two's complement).
pub(crate) fn int_bits(v: i64, width: usize) -> Vec<bool> {
    (0..width)
        .map(|i| if i < 64 { (v >> i) & 1 == 1 } else { v < 0 })
        .collect()
}

impl Value {
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::Bool(_) => "a bool",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Bits(b) if b.len() == 1 => "a bit",
            Value::Bits(_) => "a bit register",
        }
    }

    /// The value as a real number.
    pub(crate) fn as_f64(&self) -> Result<f64, String> {
        #[allow(clippy::cast_precision_loss)]
        match self {
            Value::Float(v) => Ok(*v),
            Value::Int(v) => Ok(*v as f64),
            Value::Bool(b) => Ok(f64::from(u8::from(*b))),
            Value::Bits(_) => Ok(self.as_i64()? as f64),
        }
    }

    /// The value as an integer (a float is refused: cast it with `int(…)`).
    pub(crate) fn as_i64(&self) -> Result<i64, String> {
        match self {
            Value::Int(v) => Ok(*v),
            Value::Bool(b) => Ok(i64::from(*b)),
            Value::Bits(bits) => bits_value(bits)
                .ok_or_else(|| "bit register value is too large for an integer".into()),
            Value::Float(v) => Err(format!(
                "expected an integer, found the float {v} (convert it with `int(…)`)"
            )),
        }
    }

    /// The value as a condition: non-zero is true.
    pub(crate) fn truthy(&self) -> bool {
        match self {
            Value::Bool(b) => *b,
            Value::Int(v) => *v != 0,
            Value::Float(v) => *v != 0.0,
            Value::Bits(bits) => bits.iter().any(|&b| b),
        }
    }

    fn is_integral(&self) -> bool {
        !matches!(self, Value::Float(_))
    }

    /// The value converted to a variable of type `ty` (implicit conversion
    /// of an assignment or a call argument).
    pub(crate) fn convert(&self, ty: VarType) -> Result<Value, String> {
        match ty {
            VarType::Bool => Ok(Value::Bool(self.truthy())),
            VarType::Float | VarType::Angle => Ok(Value::Float(self.as_f64()?)),
            VarType::Int => Ok(Value::Int(self.as_i64()?)),
            VarType::Uint => {
                let v = self.as_i64()?;
                if v < 0 {
                    return Err(format!("{v} is negative, but a `uint` cannot be"));
                }
                Ok(Value::Int(v))
            }
            VarType::Bit(width) => {
                let width = width.unwrap_or(1) as usize;
                match self {
                    Value::Bits(bits) if bits.len() == width => Ok(self.clone()),
                    Value::Bits(bits) if width > 1 => Err(format!(
                        "a value of {} bits cannot be stored in {width} bits",
                        bits.len()
                    )),
                    Value::Bool(b) if width == 1 => Ok(Value::Bits(vec![*b])),
                    Value::Float(_) => {
                        Err(format!("{} cannot be stored in bits", self.type_name()))
                    }
                    other => {
                        let v = other.as_i64()?;
                        if width == 1 && !(0..=1).contains(&v) {
                            return Err(format!("a bit is 0 or 1, not {v}"));
                        }
                        Ok(Value::Bits(int_bits(v, width)))
                    }
                }
            }
        }
    }

    /// An explicit cast `ty(value)`: like [`convert`](Self::convert), but
    /// floats may become integers (truncated towards zero).
    pub(crate) fn cast(&self, ty: VarType) -> Result<Value, String> {
        match (ty, self) {
            (VarType::Int | VarType::Uint | VarType::Bit(_), Value::Float(v)) => {
                let t = v.trunc();
                // i64::MIN is exactly representable; values at or above 2^63 are not i64.
                if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&t) {
                    return Err(format!("{v} is too large for an integer"));
                }
                #[allow(clippy::cast_possible_truncation)]
                Value::Int(t as i64).convert(ty)
            }
            (VarType::Bit(Some(w)), Value::Int(v)) => Ok(Value::Bits(int_bits(*v, w as usize))),
            (VarType::Bit(None), v) => Ok(Value::Bits(vec![v.truthy()])),
            _ => self.convert(ty),
        }
    }
}

/// `op x` on a known value.
pub(crate) fn unary(op: super::ast::UnOp, x: &Value) -> Result<Value, String> {
    use super::ast::UnOp;
    match op {
        UnOp::Not => Ok(Value::Bool(!x.truthy())),
        UnOp::Neg => match x {
            Value::Float(v) => Ok(Value::Float(-v)),
            other => other
                .as_i64()?
                .checked_neg()
                .map(Value::Int)
                .ok_or_else(|| "integer overflow in `-`".into()),
        },
        UnOp::BitNot => match x {
            Value::Bits(bits) => Ok(Value::Bits(bits.iter().map(|b| !b).collect())),
            Value::Bool(b) => Ok(Value::Bool(!b)),
            Value::Int(v) => Ok(Value::Int(!v)),
            Value::Float(_) => Err("`~` needs an integer or bits, not a float".into()),
        },
    }
}

fn overflow(a: &Value, op: super::ast::BinOp, b: &Value) -> String {
    format!(
        "integer overflow in `{} {} {}`",
        show(a),
        op.symbol(),
        show(b)
    )
}

/// A value as the program would write it (for messages).
pub(crate) fn show(v: &Value) -> String {
    match v {
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bits(bits) => {
            let s: String = bits
                .iter()
                .rev()
                .map(|&b| if b { '1' } else { '0' })
                .collect();
            format!("\"{s}\"")
        }
    }
}

/// `a op b` on known values.
pub(crate) fn binary(op: super::ast::BinOp, a: &Value, b: &Value) -> Result<Value, String> {
    use super::ast::BinOp as B;
    let integral = a.is_integral() && b.is_integral();
    match op {
        B::And => Ok(Value::Bool(a.truthy() && b.truthy())),
        B::Or => Ok(Value::Bool(a.truthy() || b.truthy())),
        B::Eq | B::Ne | B::Lt | B::Le | B::Gt | B::Ge => {
            let ordering = if integral {
                a.as_i64()?.cmp(&b.as_i64()?)
            } else {
                let (x, y) = (a.as_f64()?, b.as_f64()?);
                x.partial_cmp(&y)
                    .ok_or_else(|| "cannot compare a number that is not finite".to_string())?
            };
            use std::cmp::Ordering::{Equal, Greater, Less};
            Ok(Value::Bool(match op {
                B::Eq => ordering == Equal,
                B::Ne => ordering != Equal,
                B::Lt => ordering == Less,
                B::Le => ordering != Greater,
                B::Gt => ordering == Greater,
                _ => ordering != Less,
            }))
        }
        B::BitAnd | B::BitOr | B::BitXor => {
            if let (Value::Bits(x), Value::Bits(y)) = (a, b)
                && x.len() == y.len()
            {
                let f = |p: bool, q: bool| match op {
                    B::BitAnd => p & q,
                    B::BitOr => p | q,
                    _ => p ^ q,
                };
                return Ok(Value::Bits(
                    x.iter().zip(y).map(|(&p, &q)| f(p, q)).collect(),
                ));
            }
            if let (Value::Bool(p), Value::Bool(q)) = (a, b) {
                return Ok(Value::Bool(match op {
                    B::BitAnd => p & q,
                    B::BitOr => p | q,
                    _ => p ^ q,
                }));
            }
            if !integral {
                return Err(format!(
                    "`{}` needs integers or bits, not floats",
                    op.symbol()
                ));
            }
            let (x, y) = (a.as_i64()?, b.as_i64()?);
            Ok(Value::Int(match op {
                B::BitAnd => x & y,
                B::BitOr => x | y,
                _ => x ^ y,
            }))
        }
        B::Shl | B::Shr => {
            let shift = b.as_i64()?;
            if !(0..64).contains(&shift) {
                return Err(format!("cannot shift by {shift} bits"));
            }
            let shift = shift as usize;
            match a {
                Value::Bits(bits) => {
                    let n = bits.len();
                    let out = (0..n)
                        .map(|i| {
                            let from = if op == B::Shl {
                                i.checked_sub(shift)
                            } else {
                                i.checked_add(shift).filter(|&j| j < n)
                            };
                            from.and_then(|j| bits.get(j).copied()).unwrap_or(false)
                        })
                        .collect();
                    Ok(Value::Bits(out))
                }
                Value::Float(_) => Err(format!("`{}` needs an integer, not a float", op.symbol())),
                other => {
                    let x = other.as_i64()?;
                    Ok(Value::Int(if op == B::Shl {
                        x << shift
                    } else {
                        x >> shift
                    }))
                }
            }
        }
        B::Add | B::Sub | B::Mul | B::Div | B::Rem | B::Pow if integral => {
            let (x, y) = (a.as_i64()?, b.as_i64()?);
            let result = match op {
                B::Add => x.checked_add(y),
                B::Sub => x.checked_sub(y),
                B::Mul => x.checked_mul(y),
                B::Div | B::Rem if y == 0 => return Err("division by zero".into()),
                // `/` is exact: an integer when it divides, else a float, so
                // that stdgates.inc's `pow(1/2)` is a square root.
                #[allow(clippy::cast_precision_loss)]
                B::Div if x.checked_rem(y) != Some(0) => return float_op(op, x as f64, y as f64),
                B::Div => x.checked_div(y),
                B::Rem => x.checked_rem(y),
                _ => {
                    if y < 0 {
                        #[allow(clippy::cast_precision_loss)]
                        return float_op(op, x as f64, y as f64);
                    }
                    u32::try_from(y).ok().and_then(|e| x.checked_pow(e))
                }
            };
            result.map(Value::Int).ok_or_else(|| overflow(a, op, b))
        }
        B::Add | B::Sub | B::Mul | B::Div | B::Rem | B::Pow => {
            float_op(op, a.as_f64()?, b.as_f64()?)
        }
    }
}

fn float_op(op: super::ast::BinOp, x: f64, y: f64) -> Result<Value, String> {
    use super::ast::BinOp as B;
    let shared = match op {
        B::Add => expr::BinOp::Add,
        B::Sub => expr::BinOp::Sub,
        B::Mul => expr::BinOp::Mul,
        B::Div => expr::BinOp::Div,
        B::Pow => expr::BinOp::Pow,
        _ => {
            if y == 0.0 {
                return Err("division by zero".into());
            }
            let r = x % y;
            return if r.is_finite() {
                Ok(Value::Float(r))
            } else {
                Err(format!("the result of `{x} % {y}` is not a finite number"))
            };
        }
    };
    expr::binary(shared, x, y).map(Value::Float)
}

/// Names of the built-in constants, with their values.
pub(crate) fn constant(name: &str) -> Option<f64> {
    use std::f64::consts::{E, PI, TAU};
    match name {
        "pi" | "π" => Some(PI),
        "tau" | "τ" => Some(TAU),
        "euler" | "ℇ" => Some(E),
        _ => None,
    }
}

/// Whether `name` is a built-in function.
pub(crate) fn is_builtin_function(name: &str) -> bool {
    Func::from_qasm3_name(name).is_some()
        || matches!(
            name,
            "ceiling" | "floor" | "mod" | "pow" | "popcount" | "rotl" | "rotr"
        )
}

/// Calls the built-in function `name` on known arguments.
pub(crate) fn call_builtin(name: &str, args: &[Value]) -> Result<Value, String> {
    let arity = |n: usize| -> Result<(), String> {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!(
                "`{name}` takes {n} argument{}, but {} were given",
                if n == 1 { "" } else { "s" },
                args.len()
            ))
        }
    };
    let arg = |i: usize| {
        args.get(i)
            .ok_or_else(|| format!("`{name}` is missing an argument"))
    };
    if let Some(f) = Func::from_qasm3_name(name) {
        arity(1)?;
        return expr::func(f, arg(0)?.as_f64()?)
            .map(Value::Float)
            .map_err(|m| {
                m.replace("`ln(", "`log(")
                    .replace("`asin(", "`arcsin(")
                    .replace("`acos(", "`arccos(")
                    .replace("`atan(", "`arctan(")
            });
    }
    match name {
        "ceiling" | "floor" => {
            arity(1)?;
            let x = arg(0)?;
            if x.is_integral() {
                return Ok(Value::Int(x.as_i64()?));
            }
            let v = x.as_f64()?;
            Ok(Value::Float(if name == "floor" {
                v.floor()
            } else {
                v.ceil()
            }))
        }
        "mod" => {
            arity(2)?;
            binary(super::ast::BinOp::Rem, arg(0)?, arg(1)?)
        }
        "pow" => {
            arity(2)?;
            binary(super::ast::BinOp::Pow, arg(0)?, arg(1)?)
        }
        "popcount" => {
            arity(1)?;
            match arg(0)? {
                Value::Bits(bits) => Ok(Value::Int(bits.iter().filter(|&&b| b).count() as i64)),
                other => Ok(Value::Int(i64::from(other.as_i64()?.count_ones()))),
            }
        }
        "rotl" | "rotr" => {
            arity(2)?;
            let Value::Bits(bits) = arg(0)? else {
                return Err(format!(
                    "`{name}` rotates bits; its first argument must be a bit register"
                ));
            };
            let n = bits.len();
            if n == 0 {
                return Ok(Value::Bits(Vec::new()));
            }
            let k = arg(1)?.as_i64()?.rem_euclid(n as i64) as usize;
            let mut out = bits.clone();
            if name == "rotl" {
                out.rotate_right(k);
            } else {
                out.rotate_left(k);
            }
            Ok(Value::Bits(out))
        }
        _ => Err(format!("`{name}` is not a built-in function")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::ast::{BinOp, UnOp};
    use super::*;

    #[test]
    fn integer_arithmetic_is_checked() {
        let i = Value::Int;
        assert_eq!(binary(BinOp::Pow, &i(2), &i(10)), Ok(i(1024)));
        assert_eq!(binary(BinOp::Div, &i(6), &i(2)), Ok(i(3)));
        assert_eq!(binary(BinOp::Div, &i(1), &i(2)), Ok(Value::Float(0.5)));
        assert_eq!(binary(BinOp::Rem, &i(-7), &i(2)), Ok(i(-1)));
        assert!(
            binary(BinOp::Pow, &i(2), &i(64))
                .unwrap_err()
                .contains("overflow")
        );
        assert!(binary(BinOp::Mul, &i(i64::MAX), &i(2)).is_err());
        assert!(binary(BinOp::Div, &i(1), &i(0)).is_err());
        assert!(unary(UnOp::Neg, &i(i64::MIN)).is_err());
        assert_eq!(binary(BinOp::Pow, &i(2), &i(-1)), Ok(Value::Float(0.5)));
        assert_eq!(binary(BinOp::Shl, &i(1), &i(3)), Ok(i(8)));
        assert!(binary(BinOp::Shl, &i(1), &i(64)).is_err());
    }

    #[test]
    fn mixed_and_bit_values() {
        let bits = Value::Bits(vec![true, false, true]);
        assert_eq!(bits.as_i64(), Ok(5));
        assert_eq!(
            binary(BinOp::Eq, &bits, &Value::Int(5)),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            binary(BinOp::Add, &Value::Int(1), &Value::Float(0.5)),
            Ok(Value::Float(1.5))
        );
        assert_eq!(
            Value::Int(6).convert(VarType::Bit(Some(3))),
            Ok(Value::Bits(vec![false, true, true]))
        );
        assert_eq!(Value::Float(-2.7).cast(VarType::Int), Ok(Value::Int(-2)));
        assert!(Value::Float(2.5).convert(VarType::Int).is_err());
        assert!(Value::Float(1e300).cast(VarType::Int).is_err());
        assert_eq!(
            call_builtin("popcount", std::slice::from_ref(&bits)),
            Ok(Value::Int(2))
        );
        assert_eq!(
            call_builtin("rotl", &[bits, Value::Int(1)]),
            Ok(Value::Bits(vec![true, true, false]))
        );
        assert!(
            call_builtin("log", &[Value::Int(0)])
                .unwrap_err()
                .contains("log")
        );
    }
}
