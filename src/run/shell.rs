//! A boot held open for a person: `imgtest shell` and `imgtest run --shell-on-failure`.
//! The guest boots exactly as a run boots it (overlay, firmware, metadata service with a
//! fresh password, the isolated network); then the [`Person`] (the command line) takes it
//! over as an [`Access`]: the SSH session of the first-boot user, logged in with the
//! metadata password, or the serial console's output and input. When the person is done,
//! QEMU is stopped and the run's temp dir goes as after any run.

use std::process::ChildStdin;
use std::sync::Arc;
use std::sync::mpsc::Receiver;

use ssh2::Session;

/// What a person gets of a held boot.
pub enum Access<'a> {
    /// The first-boot user, logged in with the metadata password over SSH.
    Ssh {
        /// The authenticated session.
        session: &'a Session,
        /// The user.
        user: &'a str,
        /// The password the metadata service handed this boot.
        password: &'a str,
    },
    /// The serial console: what the guest prints, as it comes, and its keyboard.
    Console {
        /// Bytes from the serial port (already in the console log too).
        output: Receiver<Vec<u8>>,
        /// Bytes written here reach the guest's serial port.
        input: ChildStdin,
    },
}

/// Who takes over a held boot; returns when the person is done with it.
#[derive(Clone)]
pub struct Person(pub Arc<dyn Fn(Access) + Send + Sync>);

impl std::fmt::Debug for Person {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Person")
    }
}

impl PartialEq for Person {
    fn eq(&self, other: &Person) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

crate::named_enum! {
    /// How a person gets into a held boot.
    pub enum Door("way in") {
        /// An SSH session as the first-boot user, once the metadata password works.
        Ssh = "ssh",
        /// The serial console, from the firmware on.
        Console = "console",
    }
}
