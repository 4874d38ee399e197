//! Embeds the example programs of the repository's `circuits/` folder in
//! the server, for the web page's circuit picker: writes
//! `$OUT_DIR/examples.rs` with one `include_str!` per `.qasm` file, so the
//! binary carries them and a changed file rebuilds it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let circuits = manifest.join("../../circuits");
    println!("cargo::rerun-if-changed={}", circuits.display());
    let mut entries = Vec::new();
    for format in ["qasm2", "qasm3"] {
        let dir = circuits.join(format);
        println!("cargo::rerun-if-changed={}", dir.display());
        entries.extend(qasm_files(&dir).into_iter().map(|path| (format, path)));
    }
    let mut code = String::from("/// (path under `circuits/`, format, source) of each example.\n");
    code.push_str("pub(crate) const EXAMPLES: &[(&str, &str, &str)] = &[\n");
    for (format, path) in entries {
        println!("cargo::rerun-if-changed={}", path.display());
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("UTF-8 name");
        let absolute = path.canonicalize().expect("listed file exists");
        writeln!(
            code,
            "    ({:?}, {format:?}, include_str!({:?})),",
            format!("{format}/{name}"),
            absolute
        )
        .expect("writing to a String");
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    std::fs::write(out.join("examples.rs"), code).expect("OUT_DIR is writable");
}

/// The `.qasm` files of `dir`, sorted; none when it does not exist (a
/// packaged crate has no `circuits/`, and its page simply lists none).
fn qasm_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = read
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "qasm"))
        .collect();
    files.sort();
    files
}
