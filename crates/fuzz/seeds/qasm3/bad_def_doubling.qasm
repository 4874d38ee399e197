OPENQASM 3.0;
include "stdgates.inc";
qubit q;
def g0(qubit a) { x a; x a; }
def g1(qubit a) { g0(a); g0(a); }
def g2(qubit a) { g1(a); g1(a); }
def g3(qubit a) { g2(a); g2(a); }
def g4(qubit a) { g3(a); g3(a); }
def g5(qubit a) { g4(a); g4(a); }
def g6(qubit a) { g5(a); g5(a); }
def g7(qubit a) { g6(a); g6(a); }
def g8(qubit a) { g7(a); g7(a); }
def g9(qubit a) { g8(a); g8(a); }
def g10(qubit a) { g9(a); g9(a); }
def g11(qubit a) { g10(a); g10(a); }
def g12(qubit a) { g11(a); g11(a); }
def g13(qubit a) { g12(a); g12(a); }
def g14(qubit a) { g13(a); g13(a); }
def g15(qubit a) { g14(a); g14(a); }
def g16(qubit a) { g15(a); g15(a); }
def g17(qubit a) { g16(a); g16(a); }
def g18(qubit a) { g17(a); g17(a); }
def g19(qubit a) { g18(a); g18(a); }
def g20(qubit a) { g19(a); g19(a); }
def g21(qubit a) { g20(a); g20(a); }
def g22(qubit a) { g21(a); g21(a); }
def g23(qubit a) { g22(a); g22(a); }
def g24(qubit a) { g23(a); g23(a); }
def g25(qubit a) { g24(a); g24(a); }
def g26(qubit a) { g25(a); g25(a); }
def g27(qubit a) { g26(a); g26(a); }
def g28(qubit a) { g27(a); g27(a); }
def g29(qubit a) { g28(a); g28(a); }
def g30(qubit a) { g29(a); g29(a); }
def g31(qubit a) { g30(a); g30(a); }
def g32(qubit a) { g31(a); g31(a); }
def g33(qubit a) { g32(a); g32(a); }
def g34(qubit a) { g33(a); g33(a); }
def g35(qubit a) { g34(a); g34(a); }
def g36(qubit a) { g35(a); g35(a); }
def g37(qubit a) { g36(a); g36(a); }
def g38(qubit a) { g37(a); g37(a); }
def g39(qubit a) { g38(a); g38(a); }
g39(q);
