// Cuccaro ripple-carry adder (quant-ph/0410184) on 4-bit registers: b <- a + b,
// with a carry-in qubit and the carry out in `cout`; the ripple is two loops.
// Here a = 13 (1101) and b = 9 (1001), so a + b = 22 = 10110 in five bits.
// Expected: every shot reads "110110110": the register `ra` (the leftmost
// four characters, a restored to 1101) then `sum` (cout and b: 10110).
OPENQASM 3.0;
include "stdgates.inc";
gate majority a, b, c {
  cx c, b;
  cx c, a;
  ccx a, b, c;
}
gate unmaj a, b, c {
  ccx a, b, c;
  cx c, a;
  cx a, b;
}
qubit cin;
qubit[4] a;
qubit[4] b;
qubit cout;
bit[5] sum;
bit[4] ra;
// a = 1101, b = 1001 (index 0 is the least significant bit)
x a[0];
x a[2];
x a[3];
x b[0];
x b[3];
majority cin, b[0], a[0];
for uint i in [1:3] {
  majority a[i - 1], b[i], a[i];
}
cx a[3], cout;
for uint i in [3:-1:1] {
  unmaj a[i - 1], b[i], a[i];
}
unmaj cin, b[0], a[0];
for uint i in [0:3] {
  sum[i] = measure b[i];
}
sum[4] = measure cout;
ra = measure a;
