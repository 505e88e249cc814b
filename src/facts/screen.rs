//! What the guest's screen showed: VGA screenshots taken over QMP at the end of each boot
//! stage, when a boot fails and at the deadline of a boot that never reached userspace.
//! Images that print nothing on the serial console (`console=tty0` only, other operating
//! systems, firmware and bootloader menus) are judged from these. The facts name the
//! files; the files themselves are artifacts beside the console logs.

use serde::{Deserialize, Serialize};

crate::named_enum! {
    /// When a screenshot was taken.
    #[derive(PartialOrd, Ord)]
    pub enum ShotMoment("screenshot moment") {
        /// The boot stage ended: the guest reached userspace.
        Userspace = "userspace",
        /// The login stage ended (the metadata password worked, or the deadline passed).
        Login = "login",
        /// The guest was inspected (probe, wrong password).
        Inspect = "inspect",
        /// The console showed a failure pattern, or QEMU's guest stopped short of userspace.
        Failure = "failure",
        /// The boot deadline passed before userspace.
        Deadline = "deadline",
    }
}

/// One screenshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Screenshot {
    /// When it was taken.
    pub moment: ShotMoment,
    /// Seconds since QEMU started.
    pub secs: f64,
    /// The PNG's file name among the run's artifacts (`boot0-deadline.png`).
    pub file: String,
}

impl Screenshot {
    /// The file name of boot `boot`'s screenshot at `moment`.
    pub fn file_name(boot: usize, moment: ShotMoment) -> String {
        super::artifacts::BootFiles(boot).screenshot(moment)
    }
}
