//! The README's minimal app is `examples/minimal.rs`, verbatim: the example
//! is built with the other examples (and its copy in the README is compiled
//! as a doctest), so neither can stop compiling or drift from the other.

#[test]
fn the_readme_shows_examples_minimal_rs_verbatim() {
    let readme = include_str!("../README.md");
    let example = include_str!("../examples/minimal.rs");
    assert!(!example.contains("```"), "a ``` in examples/minimal.rs would end the README's code block");
    let block = format!("```rust,no_run\n{example}```\n");
    assert!(readme.contains(&block), "README.md's minimal app differs from examples/minimal.rs: copy it over");
}
