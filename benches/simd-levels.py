#!/usr/bin/env python3
"""Times `kettle bench` binaries and SIMD levels side by side on the bench-peers circuits.

    benches/simd-levels.py SIZES THREADS REPEAT NAME=LEVEL@BINARY...

e.g. `benches/simd-levels.py 24,26 1,2 3 v4=@target/x86-64-v4/release/kettle
portable=@target/release/kettle avx2=avx2@target/release/kettle`: LEVEL is
the `KETTLE_SIMD` value (empty: the widest the CPU has). Every variant runs
once per repeat, alternating, and the best of REPEAT is printed per cell
with each variant's ratio to the first. FAMS (ghz,qft,qaoa,rqc) and PRECS
(f32,f64) narrow the cells; circuits come from ../shared/bench-peers
(BENCH_PEERS overrides the folder). Used for issue 19's per-level tables in
RESULTS.md."""
import json, os, subprocess, sys
sizes, threads, repeat = sys.argv[1].split(','), sys.argv[2].split(','), int(sys.argv[3])
variants = []
for v in sys.argv[4:]:
    name, rest = v.split('=', 1); simd, binary = rest.split('@', 1); variants.append((name, simd, binary))
fams = os.environ.get('FAMS', 'ghz,qft,qaoa,rqc').split(',')
precs = os.environ.get('PRECS', 'f32,f64').split(',')
C = os.path.join(os.environ.get('BENCH_PEERS', os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'shared', 'bench-peers')), 'circuits')
for n in sizes:
  for fam in fams:
    for prec in precs:
      for t in threads:
        best = {}
        for r in range(repeat):
          for name, simd, binary in variants:
            env = dict(os.environ, KETTLE_SIMD=simd)
            out = subprocess.run([binary, 'bench', f'{C}/{fam}_{n}.qasm', '--threads', t, '--precision', prec], env=env, capture_output=True, text=True)
            s = json.loads(out.stdout.strip().splitlines()[-1])['seconds']
            best[name] = min(best.get(name, 1e9), s)
        base = variants[0][0]
        print(f"{fam}_{n} {prec} t{t} " + ' '.join(f"{k}={v:.4f}" for k, v in best.items()) + ' | ' + ' '.join(f"{k}/{base}={best[k]/best[base]:.3f}" for k in best if k != base), flush=True)
