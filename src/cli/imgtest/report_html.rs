//! `imgtest report html REPORT.json -o FILE`: a saved report (a run's, a matrix's or a
//! merged one) as one HTML page. The JSON names the console logs and screenshots; they are
//! read back from the report's artifacts directory (as recorded, or beside the JSON, or,
//! for a matrix, in its `VERSION/` subdirectory).

use std::path::{Path, PathBuf};

use super::write_named;
use crate::cli::{CliError, Outcome};
use crate::matrix::{MatrixReport, render};
use crate::report::{Report, html};

/// What a JSON report holds.
enum Saved {
    /// `imgtest run --json`: one report per image.
    Run(Vec<Report>),
    /// `imgtest matrix --json` or `imgtest report merge --json`.
    Matrix(MatrixReport),
}

/// `imgtest report html`.
pub(super) fn render(json: &Path, output: &Path) -> Result<Outcome, CliError> {
    let saved = read(json).map_err(|e| format!("{}: {e}", json.display()))?;
    let here = json.parent().unwrap_or(Path::new("."));
    let page = match saved {
        Saved::Run(mut reports) => {
            for r in &mut reports {
                attach(r, &[here.to_path_buf()]);
            }
            html::to_html(&reports)
        }
        Saved::Matrix(mut m) => {
            for k in &mut m.kernels {
                let beside = here.join(k.label());
                if let Some(r) = &mut k.report {
                    attach(r, &[beside]);
                }
            }
            render::to_html(&m)
        }
    };
    write_named(&Some(output.to_path_buf()), || page)?;
    Ok(Outcome::Success)
}

fn read(json: &Path) -> Result<Saved, String> {
    let text = std::fs::read_to_string(json).map_err(|e| e.to_string())?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let saved = if value.is_array() {
        serde_json::from_value(value).map(Saved::Run)
    } else {
        serde_json::from_value(value).map(Saved::Matrix)
    };
    saved.map_err(|e| format!("not an imgtest JSON report: {e}"))
}

/// Reads the files `r`'s page embeds from its artifacts directory, else the first of
/// `fallback` that has its console logs.
fn attach(r: &mut Report, fallback: &[PathBuf]) {
    let wanted = html::wanted_files(r);
    let dirs = r
        .artifacts
        .iter()
        .map(PathBuf::from)
        .chain(fallback.iter().cloned());
    let Some(dir) = dirs
        .into_iter()
        .find(|d| wanted.iter().any(|f| d.join(f).is_file()))
    else {
        return;
    };
    for name in wanted {
        if let Ok(bytes) = std::fs::read(dir.join(&name)) {
            r.files.insert(name, bytes);
        }
    }
}
