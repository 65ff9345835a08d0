//! Compile-fail tests: each misuse of `#[derive(Model)]` must produce a clear
//! error pointing at the offending token. The expected output is checked in
//! as `tests/ui/*.stderr`; regenerate with `TRYBUILD=overwrite`.

#[test]
fn ui() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
