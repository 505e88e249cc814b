//! What a run reports as it happens. Events carry data (which boot, which pid and port,
//! which phase after how many seconds), never prose: [`render_event`] decides the words,
//! for the live view on a terminal and for plain progress lines alike.

use crate::checks::CheckResult;
use crate::facts::{
    AccelDecision, AgentFacts, ConsoleFailure, Firmware, FirmwareFacts, Login, Phase,
};
use crate::named::Named;

/// Something the runner wants reported as it happens.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// An image was recognised.
    Image {
        /// The path as given.
        image: String,
        /// Its format.
        format: String,
    },
    /// The accelerator was chosen.
    Accel(AccelDecision),
    /// The root filesystem was read offline from this place in the image.
    OfflineRead {
        /// Where the filesystem was found.
        source: String,
    },
    /// The image could not be read offline.
    OfflineUnreadable {
        /// Why.
        reason: String,
    },
    /// The first-boot agent and login user were chosen.
    Agent(AgentFacts),
    /// The firmwares of the boots were chosen.
    Firmware(FirmwareFacts),
    /// A boot made progress.
    Boot {
        /// Boot number.
        boot: usize,
        /// What happened.
        event: BootEvent,
    },
    /// A check finished.
    Check(CheckResult),
}

/// Progress of one boot. Times are seconds since its QEMU started.
#[derive(Debug, Clone, PartialEq)]
pub enum BootEvent {
    /// QEMU started.
    Started {
        /// The firmware it boots with.
        firmware: Firmware,
        /// QEMU's process id.
        pid: u32,
        /// The host port on 127.0.0.1 forwarded to the guest's SSH port.
        ssh_port: u16,
    },
    /// The console first showed a boot phase.
    Phase {
        /// The phase.
        phase: Phase,
        /// When.
        secs: f64,
    },
    /// The console showed a failure pattern.
    ConsoleFailure(ConsoleFailure),
    /// The login with the metadata password ended (worked, refused or no SSH server).
    Login(Login),
    /// For cloud-init: whether (and when) cloud-init finished the instance.
    CloudInitFinished {
        /// When, or None if not before the deadline.
        secs: Option<f64>,
    },
    /// The probe ran.
    Probed {
        /// When it finished.
        secs: f64,
    },
    /// A login with a wrong password was tried.
    WrongPasswordTried {
        /// When it finished.
        secs: f64,
    },
    /// The guest powered off after the ACPI power button.
    PoweredOff {
        /// Seconds between the button and QEMU's exit.
        secs: f64,
    },
}

/// A progress line for `e`, if it deserves one.
pub fn render_event(e: &Event) -> Option<String> {
    Some(match e {
        Event::Image { image, format } => format!("{image}: {format}"),
        Event::Accel(d) => format!("accelerator: {} ({})", d.accel.name(), d.reason),
        Event::OfflineRead { source } => format!("offline: {source}"),
        Event::OfflineUnreadable { reason } => format!("offline: not readable ({reason})"),
        Event::Agent(a) => format!("offline: first boot by {} ({})", a.agent.name(), a.reason),
        Event::Firmware(f) => {
            let names: Vec<&str> = f.firmwares.iter().map(|w| w.name()).collect();
            let secure = if f.secure_boot {
                ", UEFI with Secure Boot"
            } else {
                ""
            };
            format!("firmware: {}{secure} ({})", names.join(" and "), f.reason)
        }
        Event::Boot { boot, event } => format!("boot {boot}: {}", boot_line(event)?),
        Event::Check(_) => return None,
    })
}

/// The words for one boot's event, if it deserves a line.
pub fn boot_line(e: &BootEvent) -> Option<String> {
    Some(match e {
        BootEvent::Started {
            firmware,
            pid,
            ssh_port,
        } => {
            format!("QEMU started under {firmware} (pid {pid}, ssh 127.0.0.1:{ssh_port})")
        }
        BootEvent::Phase { phase, secs } => format!("{} at {secs:.1}s", phase.name()),
        BootEvent::ConsoleFailure(f) => format!("console: {}: {}", f.kind.words(), f.describe()),
        BootEvent::Login(Login::Worked { after_secs }) => {
            format!("password login worked at {after_secs:.1}s")
        }
        BootEvent::Login(Login::Refused { reason }) => {
            format!("password refused until the deadline: {reason}")
        }
        BootEvent::Login(Login::NoSsh { reason }) => format!("no SSH server: {reason}"),
        BootEvent::Login(Login::NotTried { .. }) => return None,
        BootEvent::CloudInitFinished { secs: Some(t) } => {
            format!("cloud-init finished at {t:.1}s")
        }
        BootEvent::CloudInitFinished { secs: None } => {
            "cloud-init did not finish before the deadline".into()
        }
        BootEvent::Probed { secs } => format!("probe done at {secs:.1}s"),
        BootEvent::WrongPasswordTried { secs } => {
            format!("wrong-password login tried at {secs:.1}s")
        }
        BootEvent::PoweredOff { secs } => format!("powered off {secs:.1}s after system_powerdown"),
    })
}
