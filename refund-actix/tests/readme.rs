//! The README's integration snippet is this crate's doc example, word for
//! word: the doctest compiles it, this test keeps the two the same.

const README: &str = include_str!("../../README.md");
const LIB: &str = include_str!("../src/lib.rs");

/// The crate docs' `no_run` example, without the `//! ` prefixes.
fn doc_example() -> String {
    let mut lines = LIB
        .lines()
        .skip_while(|line| *line != "//! ```no_run")
        .skip(1);
    let mut code = String::new();
    for line in lines.by_ref() {
        if line == "//! ```" {
            return code;
        }
        let text = line.strip_prefix("//!").expect("a doc line");
        code.push_str(text.strip_prefix(' ').unwrap_or(text));
        code.push('\n');
    }
    panic!("the crate docs' example is not closed");
}

/// The first `rust` block after the README's "Mounting it" heading.
fn readme_snippet() -> String {
    let section = &README[README
        .find("## Mounting it in your app")
        .expect("the README's mounting section")..];
    let start = section.find("```rust\n").expect("a rust block") + "```rust\n".len();
    let end = section[start..].find("```\n").expect("the block's end") + start;
    section[start..end].to_owned()
}

#[test]
fn the_readme_snippet_is_the_compiled_doc_example() {
    let (readme, doc) = (readme_snippet(), doc_example());
    assert!(readme.contains("#[actix_web::main]"), "{readme}");
    assert_eq!(
        readme, doc,
        "README.md's mounting snippet and refund-actix's crate example differ"
    );
}
