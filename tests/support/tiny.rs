//! Building the test images from the tests: the repository's image scripts, run as a user
//! would run them, with their output and exit status.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Run a repository script (`images/tiny/build.sh`, ...) with `args`; assert it succeeded
/// unless `expect_ok` is false.
pub fn script(path: &str, args: &[&dyn AsRef<std::ffi::OsStr>], expect_ok: bool) -> Output {
    let out = Command::new(repo().join(path))
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .unwrap();
    if expect_ok {
        assert!(
            out.status.success(),
            "{path} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// `images/tiny/build.sh OPTIONS OUT`.
pub fn build_tiny(options: &[&str], out: &Path) {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = Vec::new();
    for o in options {
        args.push(o);
    }
    args.push(&out);
    script("images/tiny/build.sh", &args, true);
}
