// Cuccaro ripple-carry adder (quant-ph/0410184) on 4-bit registers: b <- a + b,
// with a carry-in qubit and the carry out in `cout`. Here a = 13 (1101) and
// b = 9 (1001), so a + b = 22 = 10110 in five bits.
// Expected: every shot reads "1101 10110" without the space, i.e.
// "110110110": the register `ra` (the leftmost four characters, a restored to
// 1101) then `sum` (cout and b: 10110).
OPENQASM 2.0;
include "qelib1.inc";
gate majority a, b, c { cx c, b; cx c, a; ccx a, b, c; }
gate unmaj a, b, c { ccx a, b, c; cx c, a; cx a, b; }
qreg cin[1];
qreg a[4];
qreg b[4];
qreg cout[1];
creg sum[5];
creg ra[4];
// a = 1101 (a[0] is the least significant bit)
x a[0];
x a[2];
x a[3];
// b = 1001
x b[0];
x b[3];
majority cin[0], b[0], a[0];
majority a[0], b[1], a[1];
majority a[1], b[2], a[2];
majority a[2], b[3], a[3];
cx a[3], cout[0];
unmaj a[2], b[3], a[3];
unmaj a[1], b[2], a[2];
unmaj a[0], b[1], a[1];
unmaj cin[0], b[0], a[0];
measure b[0] -> sum[0];
measure b[1] -> sum[1];
measure b[2] -> sum[2];
measure b[3] -> sum[3];
measure cout[0] -> sum[4];
measure a -> ra;
