//! Where a command writes, checked before it does anything else (before the accelerator
//! probe, before any boot): every output must be writable where it is (its directory
//! exists), must not be one of the command's inputs (an image, a config file, a kernel, a
//! shard report) nor another output, and must not hold an input; a directory output
//! must be absent, empty, or a previous artifacts directory ([`is_artifacts`]), which
//! is then replaced as a whole ([`replace_dir`]), never mixed with new files.
//!
//! Paths are compared as the files they name: an existing one by device and inode (a
//! symbolic link is the file it points to), a new one by its absolute path.

use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use crate::facts::artifacts;
use rustix::fs::Access;

/// The file in a directory imgtest filled that marks it as imgtest's own.
pub const MARKER: &str = ".imgtest-artifacts";

/// What a command writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output<'a> {
    /// A file (a report), described for messages (`the JSON report`).
    File(&'a Path, &'static str),
    /// A directory of artifacts, replaced as a whole.
    Dir(&'a Path, &'static str),
}

impl<'a> Output<'a> {
    fn path(&self) -> &'a Path {
        match *self {
            Output::File(p, _) | Output::Dir(p, _) => p,
        }
    }

    fn what(&self) -> &'static str {
        match *self {
            Output::File(_, w) | Output::Dir(_, w) => w,
        }
    }
}

/// Why an output cannot be written as asked.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The output is one of the inputs.
    #[error("{what} {path} is {input}, which this command reads: it would be overwritten")]
    IsInput {
        /// The output, described.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The input it is.
        input: PathBuf,
    },
    /// Two outputs are the same file.
    #[error("{what} and {other} are the same file, {path}")]
    Same {
        /// One output, described.
        what: &'static str,
        /// The other.
        other: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// A file (input or output) is inside a directory output, which is replaced.
    #[error("{path} is inside {what} {dir}, which is replaced as a whole")]
    Inside {
        /// The directory output, described.
        what: &'static str,
        /// Its path.
        dir: PathBuf,
        /// The file inside it.
        path: PathBuf,
    },
    /// A directory output holds files imgtest did not write.
    #[error(
        "{what} {path} is a directory that holds files imgtest did not write: name a new or empty directory"
    )]
    Foreign {
        /// The output, described.
        what: &'static str,
        /// Its path.
        path: PathBuf,
    },
    /// The output cannot be written where it is.
    #[error("{what} {path}: {why}")]
    Unusable {
        /// The output, described.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// Why.
        why: String,
    },
}

/// A path as the file it names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Named {
    /// An existing file: its device, inode and whether it is a regular file or directory
    /// (a device such as `/dev/null` may be named twice).
    Existing { dev: u64, ino: u64, plain: bool },
    /// A file that does not exist yet, by absolute path.
    New(PathBuf),
}

fn named(path: &Path) -> Named {
    match std::fs::metadata(path) {
        Ok(m) => Named::Existing {
            dev: m.dev(),
            ino: m.ino(),
            plain: m.is_file() || m.is_dir(),
        },
        Err(_) => Named::New(absolute(path)),
    }
}

/// `path` made absolute, its existing ancestors' symbolic links resolved, `.` and `..`
/// removed.
fn absolute(path: &Path) -> PathBuf {
    if let Ok(p) = path.canonicalize() {
        return p;
    }
    let base = std::env::current_dir().unwrap_or_default().join(path);
    let mut out = PathBuf::new();
    for c in base.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    match (out.parent(), out.file_name()) {
        (Some(parent), Some(name)) if parent != out => absolute(parent).join(name),
        _ => out,
    }
}

/// The report files a command writes (`--json`, `--junit`, `--html`), those it was asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reports<'a> {
    /// The JSON report.
    pub json: Option<&'a Path>,
    /// The JUnit report.
    pub junit: Option<&'a Path>,
    /// The HTML report.
    pub html: Option<&'a Path>,
}

impl<'a> Reports<'a> {
    /// Each report asked for, as an output to check.
    pub fn outputs(self) -> impl Iterator<Item = Output<'a>> {
        [
            (self.json, "the JSON report"),
            (self.junit, "the JUnit report"),
            (self.html, "the HTML report"),
        ]
        .into_iter()
        .filter_map(|(path, what)| path.map(|p| Output::File(p, what)))
    }
}

/// Checks `outputs` against each other and against `inputs` (see the module note).
pub fn check(outputs: &[Output], inputs: &[&Path]) -> Result<(), OutputError> {
    for (i, out) in outputs.iter().enumerate() {
        usable(out)?;
        let me = named(out.path());
        for input in inputs {
            if me == named(input) {
                return Err(OutputError::IsInput {
                    what: out.what(),
                    path: out.path().to_owned(),
                    input: input.to_path_buf(),
                });
            }
        }
        for other in &outputs[..i] {
            if me == named(other.path()) && !matches!(me, Named::Existing { plain: false, .. }) {
                return Err(OutputError::Same {
                    what: out.what(),
                    other: other.what(),
                    path: out.path().to_owned(),
                });
            }
        }
        if let Output::Dir(dir, what) = out {
            let dir_abs = absolute(dir);
            let files = inputs
                .iter()
                .copied()
                .chain(outputs.iter().filter(|o| o != &out).map(|o| o.path()));
            for f in files {
                if absolute(f).starts_with(&dir_abs) {
                    return Err(OutputError::Inside {
                        what,
                        dir: dir.to_path_buf(),
                        path: f.to_path_buf(),
                    });
                }
            }
        }
    }
    Ok(())
}

/// Whether `out` can be written where it is: an existing file output is not a directory
/// and is writable; an existing directory output is a directory imgtest may replace; a
/// new one's directory exists and is writable.
fn usable(out: &Output) -> Result<(), OutputError> {
    let path = out.path();
    let bad = |why: String| OutputError::Unusable {
        what: out.what(),
        path: path.to_owned(),
        why,
    };
    match (std::fs::metadata(path), out) {
        (Ok(m), Output::File(..)) if m.is_dir() => Err(bad("is a directory".into())),
        (Ok(_), Output::File(..)) => writable(path).map_err(bad),
        (Ok(m), Output::Dir(..)) if !m.is_dir() => Err(bad("is not a directory".into())),
        (Ok(_), Output::Dir(_, what)) if !is_artifacts(path) => Err(OutputError::Foreign {
            what,
            path: path.to_owned(),
        }),
        (Ok(_), Output::Dir(..)) => writable(path).map_err(bad),
        (Err(e), _) if e.kind() != std::io::ErrorKind::NotFound => Err(bad(e.to_string())),
        (Err(_), _) => {
            let parent = crate::scratch::dir_and_name(path).0;
            if !parent.is_dir() {
                return Err(bad(format!(
                    "its directory {} does not exist",
                    parent.display()
                )));
            }
            writable(parent)
                .map_err(|why| bad(format!("its directory {}: {why}", parent.display())))
        }
    }
}

fn writable(path: &Path) -> Result<(), String> {
    rustix::fs::access(path, Access::WRITE_OK).map_err(|e| format!("not writable ({e})"))
}

/// Whether `dir` holds only what imgtest writes into an artifacts directory: it is empty,
/// has the [`MARKER`], or (as written before the marker existed) holds only reports,
/// request logs, console and QEMU logs, and directories like it.
pub fn is_artifacts(dir: &Path) -> bool {
    if dir.join(MARKER).is_file() {
        return true;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().all(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        match e.file_type() {
            Ok(t) if t.is_dir() => is_artifacts(&e.path()),
            Ok(t) if t.is_file() => {
                name == artifacts::REPORT_JSON
                    || name == artifacts::METADATA_REQUESTS
                    || artifacts::kept(&name)
            }
            _ => false,
        }
    })
}

/// Makes `dir` a fresh, empty artifacts directory (with its [`MARKER`]): a previous one is
/// removed as a whole. Refuses (`Foreign`) a directory [`is_artifacts`] does not
/// recognise.
pub fn replace_dir(dir: &Path, what: &'static str) -> Result<(), OutputError> {
    let bad = |e: std::io::Error| OutputError::Unusable {
        what,
        path: dir.to_owned(),
        why: e.to_string(),
    };
    if dir.is_dir() {
        if !is_artifacts(dir) {
            return Err(OutputError::Foreign {
                what,
                path: dir.to_owned(),
            });
        }
        std::fs::remove_dir_all(dir).map_err(bad)?;
    }
    std::fs::create_dir_all(dir).map_err(bad)?;
    std::fs::write(
        dir.join(MARKER),
        "imgtest artifacts: the next run writing here replaces this directory as a whole\n",
    )
    .map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(outputs: &[Output], inputs: &[&Path]) -> String {
        check(outputs, inputs).unwrap_err().to_string()
    }

    #[test]
    fn outputs_are_neither_inputs_nor_each_other() {
        let d = tempfile::tempdir().unwrap();
        let img = d.path().join("a.img");
        std::fs::write(&img, b"disk").unwrap();
        let link = d.path().join("link.json");
        std::os::unix::fs::symlink(&img, &link).unwrap();
        let json = d.path().join("r.json");
        let json2 = d.path().join("sub/../r.json");
        std::fs::create_dir(d.path().join("sub")).unwrap();
        let e = err(&[Output::File(&img, "the JSON report")], &[&img]);
        assert!(
            e.starts_with("the JSON report") && e.contains("would be overwritten"),
            "{e}"
        );
        assert!(
            err(&[Output::File(&link, "r")], &[&img]).contains("is "),
            "a link to an input"
        );
        let e = err(
            &[
                Output::File(&json, "the JSON report"),
                Output::File(&json2, "the JUnit report"),
            ],
            &[&img],
        );
        assert!(
            e.starts_with("the JUnit report and the JSON report are the same file"),
            "{e}"
        );
        let null = Path::new("/dev/null");
        assert!(check(&[Output::File(null, "a"), Output::File(null, "b")], &[&img]).is_ok());
        assert!(check(&[Output::File(&json, "the JSON report")], &[&img]).is_ok());
    }

    #[test]
    fn outputs_must_be_writable_where_they_are() {
        let d = tempfile::tempdir().unwrap();
        let e = err(
            &[Output::File(&d.path().join("no/r.json"), "the JSON report")],
            &[],
        );
        assert!(e.ends_with("does not exist"), "{e}");
        let e = err(&[Output::File(d.path(), "the JSON report")], &[]);
        assert!(e.ends_with("is a directory"), "{e}");
    }

    #[test]
    fn an_artifacts_dir_is_new_empty_or_imgtest_s_own_and_holds_no_input() {
        let d = tempfile::tempdir().unwrap();
        let art = d.path().join("art");
        let out = [Output::Dir(&art, "the artifacts directory")];
        assert!(check(&out, &[]).is_ok());
        std::fs::create_dir(&art).unwrap();
        assert!(check(&out, &[]).is_ok(), "empty");
        std::fs::write(art.join("boot0-console.log"), b"x").unwrap();
        std::fs::create_dir(art.join("b.img")).unwrap();
        std::fs::write(art.join("b.img/report.json"), b"{}").unwrap();
        assert!(check(&out, &[]).is_ok(), "written by an earlier imgtest");
        std::fs::write(art.join("thesis.tex"), b"mine").unwrap();
        let e = err(&out, &[]);
        assert!(e.contains("holds files imgtest did not write"), "{e}");
        let e = replace_dir(&art, "the artifacts directory").unwrap_err();
        assert!(matches!(e, OutputError::Foreign { .. }));
        assert!(art.join("thesis.tex").is_file(), "refused, nothing removed");
        std::fs::remove_file(art.join("thesis.tex")).unwrap();
        replace_dir(&art, "the artifacts directory").unwrap();
        let names: Vec<_> = std::fs::read_dir(&art)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, [MARKER], "replaced as a whole");
        std::fs::write(art.join("notes.txt"), b"x").unwrap();
        assert!(check(&out, &[]).is_ok(), "marked as imgtest's");
        let img = art.join("x.img");
        std::fs::write(&img, b"disk").unwrap();
        let e = err(&out, &[&img]);
        assert!(e.contains("is inside the artifacts directory"), "{e}");
        let json = art.join("r.json");
        let e = err(
            &[
                Output::Dir(&art, "the artifacts directory"),
                Output::File(&json, "the JSON report"),
            ],
            &[],
        );
        assert!(e.contains("is inside the artifacts directory"), "{e}");
    }
}
