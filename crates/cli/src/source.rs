//! Reading a circuit file for `kettle run` and `kettle bench`: the size
//! check, the format, `include`s of files next to the source, `input`
//! values, and error messages with `file:line:col` and a caret; and the
//! simulator their shared options ask for.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use kettle_core::{FusionConfig, Parallelism, Simulator};
use kettle_ir::Circuit;
use kettle_qasm::{
    Diagnostic, IncludeResolver, Limits, ParseOptions, ProgramError, Qasm3Program, SourceFormat,
    detect_format, parse_program,
};

use crate::SimArgs;
use crate::failure::Failure;

impl SimArgs {
    /// Reads and parses `file` with these options' format and inputs, and
    /// writes `--noise-model`'s noise into the circuit.
    pub(crate) fn load(&self, file: &Path) -> Result<Loaded, Failure> {
        let inputs = parse_inputs(self.inputs.as_deref(), &self.input)?;
        let mut loaded = load(file, self.format.map(Into::into), inputs)?;
        if let Some(path) = &self.noise_model {
            let started = Instant::now();
            let model = read_noise_model(path)?;
            loaded.circuit = model.apply(&loaded.circuit).map_err(|e| {
                Failure::input(format!(
                    "kettle: --noise-model {}: cannot apply it to {}: {e}",
                    path.display(),
                    file.display()
                ))
            })?;
            loaded.noise_time = Some(started.elapsed());
        }
        Ok(loaded)
    }

    /// The simulator these options ask for, and its thread count.
    pub(crate) fn simulator(&self) -> Result<(Simulator, usize), Failure> {
        let threads = self
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let mut fusion = if self.no_fusion {
            FusionConfig::disabled()
        } else {
            FusionConfig::default()
        };
        fusion.max_qubits = self.fusion_qubits.unwrap_or(fusion.max_qubits);
        fusion.stage_max_qubits = self.stage_fusion_qubits.unwrap_or(fusion.stage_max_qubits);
        fusion.blocking = self.blocking.unwrap_or(fusion.blocking);
        let sim = Simulator::new()
            .with_parallelism(Parallelism::threads(threads)?)
            .with_fusion(fusion);
        Ok((sim, threads))
    }
}

/// A parsed circuit and how long parsing took, with what it takes to
/// parse it again with other input values.
pub(crate) struct Loaded {
    pub(crate) circuit: Circuit,
    pub(crate) parse_time: Duration,
    /// Time taken to read `--noise-model` and write its noise in, when given.
    pub(crate) noise_time: Option<Duration>,
    pub(crate) format: SourceFormat,
    pub(crate) inputs: BTreeMap<String, f64>,
    bytes: Vec<u8>,
    path: PathBuf,
}

impl Loaded {
    /// An OpenQASM 3 program parsed once, and a function that lowers it
    /// with other input values (includes from the file's folder).
    pub(crate) fn lowerer(
        &self,
    ) -> Result<impl FnMut(&BTreeMap<String, f64>) -> Result<Circuit, Failure> + '_, Failure> {
        fn options<'a>(
            inputs: &BTreeMap<String, f64>,
            includes: &'a SiblingIncludes,
        ) -> ParseOptions<'a> {
            ParseOptions {
                limits: Limits::default(),
                includes: Some(includes),
                inputs: inputs.clone(),
                ..ParseOptions::default()
            }
        }
        let includes = self.includes();
        let error = |d: Diagnostic| Failure::input(source_error(&self.path, &self.bytes, &d));
        let text = std::str::from_utf8(&self.bytes)
            .map_err(|_| Failure::input(format!("kettle: {} is not UTF-8", self.path.display())))?;
        let program =
            Qasm3Program::parse(text, &options(&self.inputs, &includes)).map_err(error)?;
        Ok(move |inputs: &BTreeMap<String, f64>| {
            program.lower(&options(inputs, &includes)).map_err(error)
        })
    }

    /// The source's bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn includes(&self) -> SiblingIncludes {
        includes_beside(&self.path)
    }
}

/// Reads, size-checks and parses `path`; `format` overrides detection.
pub(crate) fn load(
    path: &Path,
    format: Option<SourceFormat>,
    inputs: BTreeMap<String, f64>,
) -> Result<Loaded, Failure> {
    let limits = Limits::default();
    let shown = path.display();
    let size = std::fs::metadata(path)
        .map_err(|e| Failure::input(format!("kettle: cannot read {shown}: {e}")))?
        .len();
    if size > limits.max_source_bytes as u64 {
        return Err(Failure::input(format!(
            "kettle: {shown} is {size} bytes, more than the {} a circuit file may have",
            limits.max_source_bytes
        )));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| Failure::input(format!("kettle: cannot read {shown}: {e}")))?;
    let file_name = path.file_name().and_then(|n| n.to_str());
    let format = format
        .or_else(|| detect_format(&bytes, file_name))
        .ok_or_else(|| {
            Failure::input(format!(
                "kettle: cannot tell the format of {shown}; pass --format qasm2, qasm3 or json"
            ))
        })?;
    let started = Instant::now();
    let circuit = parse(path, &bytes, format, inputs.clone())?;
    Ok(Loaded {
        circuit,
        parse_time: started.elapsed(),
        noise_time: None,
        format,
        inputs,
        bytes,
        path: path.to_path_buf(),
    })
}

/// Reads a noise model saved from Qiskit Aer
/// (`json.dump(noise_model.to_dict(serializable=True), f)`). Errors name the
/// file and, for a JSON syntax error, its line and column, for a document
/// Kettle cannot use, the JSONPath of the problem.
pub(crate) fn read_noise_model(path: &Path) -> Result<kettle_noise::NoiseModel, Failure> {
    let shown = path.display();
    let size = std::fs::metadata(path)
        .map_err(|e| Failure::input(format!("kettle: --noise-model: cannot read {shown}: {e}")))?
        .len();
    if size > MAX_NOISE_MODEL_BYTES {
        return Err(Failure::input(format!(
            "kettle: --noise-model: {shown} is {size} bytes, more than the {MAX_NOISE_MODEL_BYTES} a noise model may have"
        )));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| Failure::input(format!("kettle: --noise-model: cannot read {shown}: {e}")))?;
    let json: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        Failure::input(format!(
            "error: {shown}:{}:{}: not JSON: {e}",
            e.line(),
            e.column()
        ))
    })?;
    kettle_noise::NoiseModel::from_aer_json(&json).map_err(|e| match e {
        kettle_noise::NoiseModelError::Invalid { path: at, message } => Failure::input(format!(
            "error: {shown}: {at}: {message} (--noise-model takes Qiskit Aer's NoiseModel.to_dict(serializable=True) as JSON)"
        )),
        other => Failure::input(format!("error: {shown}: {other}")),
    })
}

/// The largest `--noise-model` file read (a device's model with many
/// Kraus maps is a few MiB).
const MAX_NOISE_MODEL_BYTES: u64 = 256 << 20;

/// Parses the bytes of `path` as `format`, includes from its folder.
fn parse(
    path: &Path,
    bytes: &[u8],
    format: SourceFormat,
    inputs: BTreeMap<String, f64>,
) -> Result<Circuit, Failure> {
    let includes = includes_beside(path);
    let options = ParseOptions {
        limits: Limits::default(),
        includes: Some(&includes),
        inputs,
        ..ParseOptions::default()
    };
    parse_program(bytes, format, &options).map_err(|e| match e {
        ProgramError::Source(d) => Failure::input(source_error(path, bytes, &d)),
        ProgramError::Json(e) => Failure::input(format!("error: {}: {e}", path.display())),
    })
}

/// The includes of the file at `path`: its own folder's.
fn includes_beside(path: &Path) -> SiblingIncludes {
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    SiblingIncludes {
        folder: folder.to_path_buf(),
    }
}

/// Serves `include "name";` from the source file's own folder: `name` must
/// be a relative path that stays inside that folder (no absolute path, no
/// `..`, no symbolic link leading out).
struct SiblingIncludes {
    folder: PathBuf,
}

impl IncludeResolver for SiblingIncludes {
    // The front end puts `cannot include "name": ` before each reason.
    fn resolve(&self, name: &str) -> Result<String, String> {
        let only =
            "only the built-in library and files in the program's own folder can be included";
        let relative = Path::new(name);
        let plain = relative
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if name.is_empty() || !plain {
            return Err(only.to_owned());
        }
        let missing = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::NotFound => format!(
                "there is no such file in {} ({only})",
                self.folder.display()
            ),
            _ => format!("it cannot be read ({e})"),
        };
        let folder = self.folder.canonicalize().map_err(missing)?;
        let file = folder.join(relative).canonicalize().map_err(missing)?;
        if !file.starts_with(&folder) {
            return Err(format!("it leads outside the program's folder ({only})"));
        }
        std::fs::read_to_string(&file).map_err(missing)
    }
}

/// Values for OpenQASM 3 `input`s from `--inputs '{"theta": 0.3}'` and
/// repeated `--input name=value`; a name given twice is an error.
pub(crate) fn parse_inputs(
    json: Option<&str>,
    pairs: &[String],
) -> Result<BTreeMap<String, f64>, Failure> {
    let mut inputs = BTreeMap::new();
    let add = |name: &str, value: f64, inputs: &mut BTreeMap<String, f64>| {
        if !value.is_finite() {
            return Err(Failure::input(format!(
                "kettle: input `{name}` must be a finite number"
            )));
        }
        if inputs.insert(name.to_string(), value).is_some() {
            return Err(Failure::input(format!(
                "kettle: input `{name}` is given twice"
            )));
        }
        Ok(())
    };
    if let Some(text) = json {
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
            .map_err(|e| {
                Failure::input(format!(
                    "kettle: --inputs must be a JSON object of numbers, like {{\"theta\": 0.3}} ({e})"
                ))
            })?;
        for (name, value) in &object {
            let number = value.as_f64().ok_or_else(|| {
                Failure::input(format!(
                    "kettle: --inputs: `{name}` must be a number, not {value}"
                ))
            })?;
            add(name, number, &mut inputs)?;
        }
    }
    for pair in pairs {
        let (name, value) = pair.split_once('=').ok_or_else(|| {
            Failure::input(format!(
                "kettle: --input takes name=value, like theta=0.3 (got `{pair}`)"
            ))
        })?;
        let number: f64 = value.trim().parse().map_err(|_| {
            Failure::input(format!("kettle: --input {name}: `{value}` is not a number"))
        })?;
        add(name.trim(), number, &mut inputs)?;
    }
    Ok(inputs)
}

/// `file:line:col: message`, the line, and a caret under the column.
fn source_error(path: &Path, bytes: &[u8], d: &Diagnostic) -> String {
    // An error inside an included file names that file, found next to the source.
    let (shown, text) = match &d.file {
        Some(included) => {
            let folder = path.parent().unwrap_or(Path::new(""));
            let included_path = folder.join(included);
            let text = std::fs::read(&included_path).unwrap_or_default();
            (included_path, text)
        }
        None => (path.to_path_buf(), bytes.to_vec()),
    };
    let text = String::from_utf8_lossy(&text);
    let mut msg = format!(
        "error: {}:{}:{}: {}",
        shown.display(),
        d.line,
        d.column,
        d.message
    );
    if let Some(line) = text.lines().nth(d.line.saturating_sub(1) as usize) {
        let line: String = line.chars().take(200).collect();
        let pad: String = line
            .chars()
            .take(d.column.saturating_sub(1) as usize)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        msg.push_str(&format!("\n  | {line}\n  | {pad}^"));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_merge_and_reject_duplicates_and_garbage() {
        let got = parse_inputs(Some(r#"{"a": 1.5}"#), &["b=-2".into()]).unwrap();
        assert_eq!(got, BTreeMap::from([("a".into(), 1.5), ("b".into(), -2.0)]));
        for (json, pairs) in [
            (Some(r#"{"a": 1}"#), vec!["a=2".to_string()]),
            (Some(r#"{"a": "x"}"#), vec![]),
            (Some("[1]"), vec![]),
            (None, vec!["a".to_string()]),
            (None, vec!["a=pi".to_string()]),
            (None, vec!["a=inf".to_string()]),
        ] {
            let err = parse_inputs(json, &pairs).unwrap_err();
            assert_eq!(err.exit_code(), crate::failure::EXIT_INPUT, "{err}");
        }
    }

    #[test]
    fn includes_stay_in_the_source_folder() {
        let root = std::env::temp_dir().join(format!("kettle-inc-{}", std::process::id()));
        let inner = root.join("inner");
        std::fs::create_dir_all(&inner).unwrap();
        std::fs::write(inner.join("lib.inc"), "gate g a { x a; }").unwrap();
        std::fs::write(root.join("secret.inc"), "secret").unwrap();
        let includes = SiblingIncludes {
            folder: inner.clone(),
        };
        assert_eq!(includes.resolve("lib.inc").unwrap(), "gate g a { x a; }");
        assert_eq!(includes.resolve("./lib.inc").unwrap(), "gate g a { x a; }");
        for bad in ["../secret.inc", "/etc/passwd", "", "missing.inc"] {
            assert!(includes.resolve(bad).is_err(), "{bad}");
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(root.join("secret.inc"), inner.join("link.inc")).unwrap();
            let err = includes.resolve("link.inc").unwrap_err();
            assert!(err.contains("outside"), "{err}");
        }
        std::fs::remove_dir_all(&root).unwrap();
    }
}
