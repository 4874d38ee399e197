//! The library as a user links it, through the `kettle` facade.

use kettle::{Circuit, Parallelism, PauliSum, RunOptions, Simulator, UnitaryMatrix};

#[test]
fn ghz_counts_and_statevector() {
    let sim = Simulator::new().with_parallelism(Parallelism::threads(2).unwrap());
    let ghz = Circuit::new(20).h(0);
    let ghz = (0..19).fold(ghz, |c, q| c.cx(q, q + 1)).measure_all();
    let out = sim
        .run::<f64>(
            &ghz,
            &RunOptions {
                shots: 2000,
                seed: Some(3),
                keep_state: true,
                ..Default::default()
            },
        )
        .unwrap();
    let counts = out.counts.to_bitstrings();
    assert_eq!(counts.len(), 2);
    let zeros = counts["00000000000000000000"];
    assert_eq!(zeros + counts["11111111111111111111"], 2000);
    assert!((800..1200).contains(&zeros), "{zeros}");
    let state = out.state.unwrap();
    let last = state.amplitude((1 << 20) - 1).unwrap();
    assert!((last.re - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-12);
}

#[test]
fn f32_and_f64_agree() {
    let c = (0..12).fold(Circuit::new(12), |c, q| c.h(q).rz(0.1 * f64::from(q), q));
    let c = (0..11).fold(c, |c, q| c.cx(q, q + 1).ry(0.3, q));
    let sim = Simulator::new();
    let a = sim.statevector::<f64>(&c).unwrap().to_vec_f64();
    let b = sim.statevector::<f32>(&c).unwrap().to_vec_f64();
    let overlap: kettle::Complex64 = a.iter().zip(&b).map(|(x, y)| x.conj() * y).sum();
    assert!(overlap.norm_sqr() > 1.0 - 1e-6);
}

#[test]
fn expectation_and_errors() {
    let sim = Simulator::new();
    let state = sim
        .statevector::<f64>(&Circuit::new(2).h(0).cx(0, 1))
        .unwrap();
    let xx: PauliSum = "X0 X1".parse().unwrap();
    assert!((state.expectation(&xx, &Parallelism::Sequential).unwrap() - 1.0).abs() < 1e-12);
    let not_unitary = UnitaryMatrix::from_entries(1, vec![kettle::Complex64::new(1.0, 0.0); 4]);
    assert!(matches!(
        not_unitary,
        Err(kettle::OperationError::NotUnitary { .. })
    ));
    let err = sim
        .run::<f64>(&Circuit::new(1).cx(0, 1), &RunOptions::default())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "operation 0: qubit 1 is out of range: the circuit has 1 qubits"
    );
}
