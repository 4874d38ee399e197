"""Qiskit's reading of an OpenQASM 3 program, for programs it cannot read
itself.

qiskit_qasm3_import (0.6) leaves `for` loops as loops and cannot index a
register with the loop variable, rejects `const` declarations, and cannot
evaluate function calls (`sin`, `arccos`, `sqrt`, …), `**` or `%`; and
Qiskit 2.6 gets `inv @ ctrl @ cu(…)` wrong (the inverse of a controlled
CUGate drops γ); and it reads the built-in `U` as `UGate`, the definition
the specification replaced in 2022 (the current one is `UGate` times
e^{iθ/2}, which under a control is a relative phase). The program is parsed with the reference grammar (the
``openqasm3`` package: a syntax check of its own), loops over integer ranges
and sets are unrolled, `const`s substituted, expressions on literals folded
to literals (exactly, in float64) and `inv` modifiers moved innermost (they
commute with ctrl, negctrl and pow), every call of `U` calls a gate defined
as the current `U`; the result, which means the same thing,
goes to Qiskit's importer.
"""

from __future__ import annotations

import copy
import math

import openqasm3
import qiskit_qasm3_import
import openqasm3.ast as ast
from openqasm3.visitor import QASMTransformer
from qiskit import QuantumCircuit, qasm3

CONSTANTS = {"pi": math.pi, "π": math.pi, "tau": math.tau, "τ": math.tau,
             "euler": math.e, "ℇ": math.e}
FUNCTIONS = {"sin": math.sin, "cos": math.cos, "tan": math.tan, "arcsin": math.asin,
             "arccos": math.acos, "arctan": math.atan, "exp": math.exp, "log": math.log,
             "ln": math.log, "sqrt": math.sqrt}


def number(node) -> float | int | None:
    if isinstance(node, ast.IntegerLiteral):
        return node.value
    if isinstance(node, ast.FloatLiteral):
        return node.value
    if isinstance(node, ast.Identifier) and node.name in CONSTANTS:
        return CONSTANTS[node.name]
    if isinstance(node, ast.UnaryExpression) and node.op.name == "-":
        inner = number(node.expression)
        return None if inner is None else -inner
    return None


def literal(value: float | int):
    if isinstance(value, int):
        return ast.IntegerLiteral(value) if value >= 0 else ast.UnaryExpression(
            ast.UnaryOperator["-"], ast.IntegerLiteral(-value))
    return ast.FloatLiteral(value) if value >= 0 else ast.UnaryExpression(
        ast.UnaryOperator["-"], ast.FloatLiteral(-value))


class Unroll(QASMTransformer):
    """Unrolls `for` loops, substitutes `const`s, folds literal arithmetic."""

    def __init__(self) -> None:
        self.env: dict[str, ast.Expression] = {}

    def visit_ConstantDeclaration(self, node: ast.ConstantDeclaration):
        self.env[node.identifier.name] = self.visit(node.init_expression)
        return None

    def visit_Identifier(self, node: ast.Identifier):
        return copy.deepcopy(self.env.get(node.name, node))

    def visit_IndexedIdentifier(self, node: ast.IndexedIdentifier):
        node.indices = [
            [self.visit(i) for i in idx] if isinstance(idx, list) else self.visit(idx)
            for idx in node.indices
        ]
        return node

    def visit_IndexExpression(self, node: ast.IndexExpression):
        node.collection = self.visit(node.collection)
        if isinstance(node.index, list):
            node.index = [self.visit(i) for i in node.index]
        else:
            node.index = self.visit(node.index)
        return node

    def visit_BinaryExpression(self, node: ast.BinaryExpression):
        lhs, rhs = self.visit(node.lhs), self.visit(node.rhs)
        a, b = number(lhs), number(rhs)
        op = node.op.name
        if a is not None and b is not None:
            both_int = isinstance(a, int) and isinstance(b, int)
            if op in {"+", "-", "*"}:
                return literal({"+": a + b, "-": a - b, "*": a * b}[op])
            if op == "**" and not (both_int and b < 0):
                return literal(a**b)
            if op == "%" and both_int:
                return literal(a % b)
            if op == "/" and not both_int:
                return literal(a / b)
        node.lhs, node.rhs = lhs, rhs
        return node

    def visit_UnaryExpression(self, node: ast.UnaryExpression):
        inner = self.visit(node.expression)
        a = number(inner)
        if node.op.name == "-" and a is not None:
            return literal(-a)
        node.expression = inner
        return node

    def visit_FunctionCall(self, node: ast.FunctionCall):
        args = [self.visit(a) for a in node.arguments]
        values = [number(a) for a in args]
        if node.name.name in FUNCTIONS and all(v is not None for v in values):
            return literal(float(FUNCTIONS[node.name.name](*values)))
        node.arguments = args
        return node

    def visit_QuantumGate(self, node: ast.QuantumGate):
        # `inv` commutes with ctrl, negctrl and integer pow: move it innermost.
        # Qiskit 2.6 inverts a controlled gate wrongly in some cases (the
        # inverse of CUGate(θ, φ, λ, γ).control(1) loses γ), while inverting
        # the base gate first is right.
        node = self.generic_visit(node)
        invs = [m for m in node.modifiers if m.modifier.name == "inv"]
        if invs:
            node.modifiers = [m for m in node.modifiers if m.modifier.name != "inv"]
            if len(invs) % 2:
                node.modifiers.append(invs[0])
        return node

    def range_values(self, decl) -> list[int]:
        if isinstance(decl, ast.DiscreteSet):
            return [number(self.visit(v)) for v in decl.values]
        start, end = number(self.visit(decl.start)), number(self.visit(decl.end))
        step = number(self.visit(decl.step)) if decl.step else 1
        return list(range(start, end + (1 if step > 0 else -1), step))

    def visit_ForInLoop(self, node: ast.ForInLoop):
        name = node.identifier.name
        out = []
        for v in self.range_values(node.set_declaration):
            saved = self.env.get(name)
            self.env[name] = ast.IntegerLiteral(v)
            for stmt in copy.deepcopy(node.block):
                r = self.visit(stmt)
                if r is None:
                    continue
                out.extend(r if isinstance(r, list) else [r])
            if saved is None:
                del self.env[name]
            else:
                self.env[name] = saved
        return out


# The built-in `U` as the specification defines it (since its 2022 revision):
# Qiskit's UGate times e^{iθ/2}. Qiskit's importer reads `U` as UGate, which
# differs under a control, so every call of `U` is renamed to this gate.
U_2022_NAME = "kettle_u_2022"
# (Parameter names in alphabetical order: Qiskit's importer binds the
# arguments of a defined gate in that order, not in the declared one.)
U_2022 = f"gate {U_2022_NAME}(a, b, c) q {{ U(a, b, c) q; gphase(a / 2); }}"


class SpecU(QASMTransformer):
    """Gives Qiskit the specification's `U` (see `U_2022`)."""

    def visit_QuantumGate(self, node: ast.QuantumGate):
        node = self.generic_visit(node)
        if node.name.name == "U":
            node.name = ast.Identifier(U_2022_NAME)
        return node


def spec_u(program: ast.Program) -> ast.Program:
    program = SpecU().visit(program)
    definition = openqasm3.parse(U_2022).statements
    at = 0
    while at < len(program.statements) and isinstance(program.statements[at], ast.Include):
        at += 1
    program.statements[at:at] = definition
    return program


def unrolled(text: str) -> str:
    """The program with loops unrolled and literal expressions folded."""
    return openqasm3.dumps(Unroll().visit(openqasm3.parse(text)))


def load_qasm3(text: str) -> QuantumCircuit:
    program = spec_u(Unroll().visit(openqasm3.parse(text)))
    try:
        return qiskit_qasm3_import.convert(program)  # no second parse
    except Exception:  # noqa: BLE001 - the printed program through the public API
        return qasm3.loads(openqasm3.dumps(program))
