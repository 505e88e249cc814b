//! The conditions a run's facts were gathered under: the accelerator every VM ran under,
//! and the metadata fault injected into every answer.

use std::time::Duration;

use serde::{Deserialize, Serialize};

crate::named_enum! {
    /// The accelerator a VM runs under.
    pub enum Accel("accelerator") {
        /// Hardware virtualisation through /dev/kvm.
        Kvm = "kvm",
        /// QEMU's software emulation.
        Tcg = "tcg",
    }
}

/// The chosen accelerator and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccelDecision {
    /// The accelerator every VM of the run uses.
    pub accel: Accel,
    /// Why (e.g. "TCG requested", "KVM unusable: a vCPU did not run 10 000 000 loop steps
    /// within 1.5 s ...", "KVM usable: a vCPU ran ...").
    pub reason: String,
}

/// A fault applied to every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// Answer normally.
    #[default]
    None,
    /// Answer normally after a delay.
    Delay(#[serde(with = "humantime_serde")] Duration),
    /// 404 for everything.
    NotFound,
    /// 500 for everything.
    ServerError,
    /// Close the connection without answering.
    Drop,
    /// Keep the connection open and never answer.
    NeverAnswer,
}

impl Fault {
    /// Whether the guest never gets its password under this fault (a delay still delivers).
    pub fn withholds_password(self) -> bool {
        !matches!(self, Fault::None | Fault::Delay(_))
    }
}

impl std::str::FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "none" => Fault::None,
            "404" => Fault::NotFound,
            "500" => Fault::ServerError,
            "drop" => Fault::Drop,
            "never" => Fault::NeverAnswer,
            d if d.starts_with("delay=") => Fault::Delay(
                humantime::parse_duration(&d[6..])
                    .map_err(|e| format!("bad delay `{}`: {e}", &d[6..]))?,
            ),
            o => {
                return Err(format!(
                    "unknown metadata fault `{o}` (none, delay=DURATION, 404, 500, drop, never)"
                ));
            }
        })
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::None => write!(f, "none"),
            Fault::Delay(d) => write!(f, "delay={}", humantime::format_duration(*d)),
            Fault::NotFound => write!(f, "404"),
            Fault::ServerError => write!(f, "500"),
            Fault::Drop => write!(f, "drop"),
            Fault::NeverAnswer => write!(f, "never"),
        }
    }
}
