OPENQASM 3.0;
include "stdgates.inc";
def f(int n) -> int { return f(n - 1) + 1; }
int x = f(1000000);
