OPENQASM 3.0;
include "stdgates.inc";
qubit q;
delay[100ns] q;
box { x q; }
extern f(int) -> int;
array[int, 3] a = {1, 2, 3};
stretch s;
cal { }
defcal x $0 { }
