OPENQASM 3.0;
include "stdgates.inc";
qubit q;
def f0() -> int { return 1; }
def f1() -> int { return f0() + f0(); }
def f2() -> int { return f1() + f1(); }
def f3() -> int { return f2() + f2(); }
def f4() -> int { return f3() + f3(); }
def f5() -> int { return f4() + f4(); }
def f6() -> int { return f5() + f5(); }
def f7() -> int { return f6() + f6(); }
def f8() -> int { return f7() + f7(); }
def f9() -> int { return f8() + f8(); }
def f10() -> int { return f9() + f9(); }
def f11() -> int { return f10() + f10(); }
def f12() -> int { return f11() + f11(); }
def f13() -> int { return f12() + f12(); }
def f14() -> int { return f13() + f13(); }
def f15() -> int { return f14() + f14(); }
def f16() -> int { return f15() + f15(); }
def f17() -> int { return f16() + f16(); }
def f18() -> int { return f17() + f17(); }
def f19() -> int { return f18() + f18(); }
def f20() -> int { return f19() + f19(); }
def f21() -> int { return f20() + f20(); }
def f22() -> int { return f21() + f21(); }
def f23() -> int { return f22() + f22(); }
def f24() -> int { return f23() + f23(); }
def f25() -> int { return f24() + f24(); }
def f26() -> int { return f25() + f25(); }
def f27() -> int { return f26() + f26(); }
def f28() -> int { return f27() + f27(); }
def f29() -> int { return f28() + f28(); }
def f30() -> int { return f29() + f29(); }
def f31() -> int { return f30() + f30(); }
def f32() -> int { return f31() + f31(); }
def f33() -> int { return f32() + f32(); }
def f34() -> int { return f33() + f33(); }
def f35() -> int { return f34() + f34(); }
def f36() -> int { return f35() + f35(); }
def f37() -> int { return f36() + f36(); }
def f38() -> int { return f37() + f37(); }
def f39() -> int { return f38() + f38(); }
int x = f39();
