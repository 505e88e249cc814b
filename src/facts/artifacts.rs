//! The names of the files a run makes, in one place: a protocol between the runner that
//! writes them into its temp dir, the artifacts directory that keeps them, the HTML view
//! that embeds them, and `run::outputs`, which recognises a directory of them before it
//! replaces one. Nothing here touches a file.

use crate::named::Named;

use super::ShotMoment;

/// The files of boot `0`, `1`, ... of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootFiles(pub usize);

impl BootFiles {
    /// The serial console's log (redacted), kept.
    pub fn console_log(self) -> String {
        format!("boot{}-console.log", self.0)
    }

    /// QEMU's standard error, kept.
    pub fn qemu_log(self) -> String {
        format!("boot{}-qemu.log", self.0)
    }

    /// The screenshot taken at `moment`, kept.
    pub fn screenshot(self, moment: ShotMoment) -> String {
        format!("boot{}-{moment}.png", self.0)
    }

    /// The private copy of OVMF's variable store (temp dir only).
    pub fn ovmf_vars(self) -> String {
        format!("boot{}-OVMF_VARS.fd", self.0)
    }

    /// QEMU's QMP socket (temp dir only).
    pub fn qmp_socket(self) -> String {
        format!("boot{}.qmp", self.0)
    }

    /// The overlay of disk `n` (temp dir only): the image itself is never written.
    pub fn overlay(self, n: usize) -> String {
        format!("boot{}-disk{n}.qcow2", self.0)
    }

    /// The blank disk an ISO installs onto (temp dir only).
    pub fn blank_disk(self) -> String {
        format!("boot{}-blank.qcow2", self.0)
    }
}

/// The metadata service's request log, one JSON object a line, kept.
pub const METADATA_REQUESTS: &str = "metadata-requests.jsonl";

/// The JSON report in an artifacts directory.
pub const REPORT_JSON: &str = "report.json";

/// The HTML report in an artifacts directory.
pub const REPORT_HTML: &str = "report.html";

/// Whether `name` is a file of a boot that a run keeps: a console log, QEMU's standard
/// error, or a screenshot (not the overlays, sockets and variable stores).
pub fn kept(name: &str) -> bool {
    let Some((boot, _)) = name
        .strip_prefix("boot")
        .and_then(|rest| rest.split_once('-'))
        .filter(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    else {
        return false;
    };
    let Ok(boot) = boot.parse::<usize>() else {
        return false;
    };
    let files = BootFiles(boot);
    name == files.console_log()
        || name == files.qemu_log()
        || ShotMoment::ALL.iter().any(|&m| name == files.screenshot(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_files_are_the_logs_and_screenshots_of_a_boot() {
        let b = BootFiles(12);
        for name in [
            b.console_log(),
            b.qemu_log(),
            b.screenshot(ShotMoment::Deadline),
        ] {
            assert!(kept(&name), "{name}");
        }
        for name in [
            b.ovmf_vars(),
            b.qmp_socket(),
            b.overlay(0),
            b.blank_disk(),
            METADATA_REQUESTS.to_string(),
            "boot-console.log".into(),
            "bootx-console.log".into(),
            "boot1-notes.log".into(),
            "boot1-console.log.bak".into(),
        ] {
            assert!(!kept(&name), "{name}");
        }
    }
}
