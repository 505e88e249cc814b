//! The check catalogue: stable ids, titles, severities, and one pure function of
//! [`Facts`] per check. A check that cannot judge (its facts are missing, or another
//! check already names the root cause) is skipped with a reason, so each defect shows
//! up as exactly one failing check id.
//!
//! For cloud-init images ([`Agent::CloudInit`]) the firstboot checks judge cloud-init's
//! equivalents: `firstboot.installed` that cloud-init is installed and not disabled,
//! `metadata.password` that user-data (instead of `initial-password`) was fetched and its
//! password works, `firstboot.disabled` that cloud-init finished the instance
//! (`/var/lib/cloud/instance/boot-finished`), so its per-instance modules will not run again.

pub mod facts;

use serde::{Deserialize, Serialize};

use crate::console::Phase;
use facts::{Agent, BootFacts, Facts, Login, Offline, OfflineFacts, Shutdown};

/// How much a failure matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A failure fails the image (exit 1).
    Error,
    /// A failure is reported but does not fail the image.
    Warning,
}

/// What a check looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The image file, before booting.
    Image,
    /// Each boot separately.
    Boot,
    /// All boots together.
    Boots,
}

/// One entry of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CheckDef {
    /// Stable id.
    pub id: &'static str,
    /// One-line title.
    pub title: &'static str,
    /// Severity.
    pub severity: Severity,
    /// Scope.
    pub scope: Scope,
}

const fn def(id: &'static str, title: &'static str, severity: Severity, scope: Scope) -> CheckDef {
    CheckDef {
        id,
        title,
        severity,
        scope,
    }
}

/// Every check, in report order.
pub const CATALOGUE: &[CheckDef] = &[
    def(
        "boot.userspace",
        "boots to userspace",
        Severity::Error,
        Scope::Boot,
    ),
    def(
        "console.clean",
        "no panic, oops or emergency shell on the console",
        Severity::Error,
        Scope::Boot,
    ),
    def(
        "firstboot.installed",
        "firstboot is installed with a boot hook",
        Severity::Error,
        Scope::Image,
    ),
    def(
        "metadata.password",
        "password from the metadata service is fetched and works over SSH",
        Severity::Error,
        Scope::Boot,
    ),
    def(
        "firstboot.fail-safe",
        "without metadata answers no login is possible",
        Severity::Error,
        Scope::Boot,
    ),
    def(
        "ssh.wrong-password",
        "a wrong password is rejected (tried on the first boot whose SSH server answers)",
        Severity::Error,
        Scope::Boots,
    ),
    def(
        "hostkeys.absent",
        "no SSH host keys in the image",
        Severity::Error,
        Scope::Image,
    ),
    def(
        "hostkeys.regenerated",
        "SSH host keys are generated at first boot",
        Severity::Error,
        Scope::Boot,
    ),
    def(
        "hostkeys.unique",
        "SSH host keys differ between boots",
        Severity::Error,
        Scope::Boots,
    ),
    def(
        "passwords.none-fixed",
        "no account has a usable fixed password",
        Severity::Error,
        Scope::Image,
    ),
    def(
        "logs.clean",
        "logs, login records and shell histories are empty",
        Severity::Error,
        Scope::Image,
    ),
    def(
        "scripts.none",
        "no leftover test scripts",
        Severity::Error,
        Scope::Image,
    ),
    def(
        "machine-id.empty",
        "machine-id is empty in the image",
        Severity::Error,
        Scope::Image,
    ),
    def(
        "machine-id.unique",
        "machine-id differs between boots",
        Severity::Error,
        Scope::Boots,
    ),
    def(
        "firstboot.disabled",
        "firstboot ran and disabled itself",
        Severity::Error,
        Scope::Boot,
    ),
    def(
        "shutdown.clean",
        "ACPI power-off completes within the deadline",
        Severity::Warning,
        Scope::Boot,
    ),
];

/// Looks up a check by id.
pub fn find(id: &str) -> Option<&'static CheckDef> {
    CATALOGUE.iter().find(|c| c.id == id)
}

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Passed.
    Pass,
    /// Failed.
    Fail,
    /// Could not or need not judge.
    Skip,
}

/// One check's result (for one boot, for per-boot checks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Check id.
    pub id: String,
    /// Boot number for per-boot checks.
    pub boot: Option<usize>,
    /// Verdict.
    pub status: Status,
    /// Severity (copied from the catalogue).
    pub severity: Severity,
    /// Why: evidence on failure, reason on skip, short note on pass.
    pub evidence: String,
}

/// Which checks to run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    /// Only these ids (all when empty).
    pub only: Vec<String>,
    /// Never these ids.
    pub skip: Vec<String>,
}

impl Selection {
    /// Whether `id` is selected.
    pub fn includes(&self, id: &str) -> bool {
        (self.only.is_empty() || self.only.iter().any(|o| o == id))
            && !self.skip.iter().any(|s| s == id)
    }

    /// Ids that are not in the catalogue.
    pub fn unknown(&self) -> Vec<String> {
        self.only
            .iter()
            .chain(&self.skip)
            .filter(|id| find(id).is_none())
            .cloned()
            .collect()
    }

    /// Whether any selected check needs the image booted.
    pub fn needs_boot(&self) -> bool {
        CATALOGUE
            .iter()
            .any(|c| c.scope != Scope::Image && self.includes(c.id))
    }
}

type Verdict = (Status, String);

fn pass(s: impl Into<String>) -> Verdict {
    (Status::Pass, s.into())
}
fn fail(s: impl Into<String>) -> Verdict {
    (Status::Fail, s.into())
}
fn skip(s: impl Into<String>) -> Verdict {
    (Status::Skip, s.into())
}

/// Evaluates the selected checks, in catalogue order (per-boot checks boot by boot).
pub fn evaluate(facts: &Facts, selection: &Selection) -> Vec<CheckResult> {
    let mut out = Vec::new();
    for c in CATALOGUE.iter().filter(|c| selection.includes(c.id)) {
        let mut push = |boot: Option<usize>, (status, evidence): Verdict| {
            out.push(CheckResult {
                id: c.id.to_string(),
                boot,
                status,
                severity: c.severity,
                evidence,
            })
        };
        match c.scope {
            Scope::Image => push(None, image_check(c.id, &facts.offline, facts.agent())),
            Scope::Boot => {
                if facts.boots.is_empty() {
                    push(None, skip("no boot was run"));
                }
                for b in &facts.boots {
                    push(Some(b.index), boot_check(c.id, b, facts));
                }
            }
            Scope::Boots => push(None, boots_check(c.id, facts)),
        }
    }
    out
}

fn list(items: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut s = items
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > SHOWN {
        s.push_str(&format!(" and {} more", items.len() - SHOWN));
    }
    s
}

fn image_check(id: &str, offline: &Offline, agent: Agent) -> Verdict {
    let f: &OfflineFacts = match offline {
        Offline::Read(f) => f,
        Offline::Unreadable { reason } => {
            return skip(format!("image not readable offline: {reason}"));
        }
    };
    match id {
        "firstboot.installed" if agent == Agent::CloudInit => match &f.cloud_init {
            Some(c) if c.installed && !c.disabled => pass(format!(
                "cloud-init installed (/usr/bin/cloud-init, /etc/cloud/cloud.cfg){}",
                c.default_user
                    .as_ref()
                    .map(|u| format!(", default user {u}"))
                    .unwrap_or_default()
            )),
            Some(c) if c.installed => {
                fail("/etc/cloud/cloud-init.disabled switches cloud-init off")
            }
            _ => fail("cloud-init is not installed (/usr/bin/cloud-init, /etc/cloud/cloud.cfg)"),
        },
        "firstboot.installed" => match (f.firstboot_program, f.firstboot_hooks.is_empty()) {
            (true, false) => pass(format!(
                "/usr/sbin/firstboot, hooks: {}",
                list(&f.firstboot_hooks)
            )),
            (false, _) => fail("/usr/sbin/firstboot is missing"),
            (true, true) => fail("/usr/sbin/firstboot exists but no boot hook runs it"),
        },
        "hostkeys.absent" if f.host_keys.is_empty() => pass("no host key files"),
        "hostkeys.absent" => fail(format!(
            "host keys baked in: {}",
            list(
                &f.host_keys
                    .iter()
                    .map(|k| k.path.clone())
                    .collect::<Vec<_>>()
            )
        )),
        "passwords.none-fixed" if !f.shadow_readable => skip("the image has no /etc/shadow"),
        "passwords.none-fixed" if f.password_accounts.is_empty() => pass("every account is locked"),
        "passwords.none-fixed" => fail(format!(
            "usable password in /etc/shadow for: {}",
            list(&f.password_accounts)
        )),
        "logs.clean" if f.dirty_logs.is_empty() => pass("logs and histories empty"),
        "logs.clean" => fail(format!("not empty: {}", list(&f.dirty_logs))),
        "scripts.none" if f.test_scripts.is_empty() => {
            pass("no file matches the test-script patterns")
        }
        "scripts.none" => fail(format!("leftover: {}", list(&f.test_scripts))),
        "machine-id.empty" => match &f.machine_id {
            None => pass("/etc/machine-id empty or absent"),
            Some(m) => fail(format!("/etc/machine-id is set: {m}")),
        },
        other => unreachable!("no image check {other}"),
    }
}

/// Whether the offline facts show the run's agent is not installed (firstboot.installed).
fn firstboot_missing(facts: &Facts) -> bool {
    match (&facts.offline, facts.agent()) {
        (Offline::Read(f), Agent::Firstboot) => {
            !f.firstboot_program || f.firstboot_hooks.is_empty()
        }
        (Offline::Read(f), Agent::CloudInit) => !f
            .cloud_init
            .as_ref()
            .is_some_and(|c| c.installed && !c.disabled),
        (Offline::Unreadable { .. }, _) => false,
    }
}

fn boot_check(id: &str, b: &BootFacts, facts: &Facts) -> Verdict {
    let faulty = facts.fault.withholds_password();
    if id == "boot.userspace" {
        return match (b.console.reached(Phase::Userspace), &b.console.failure) {
            (Some(t), _) => pass(format!("userspace after {t:.1}s")),
            (None, _) if b.ssh_secs.is_some() => pass("an SSH server answered"),
            (None, Some(f)) => fail(format!("{:?} on the console: {}", f.kind, f.line)),
            (None, None) => fail(match &b.qemu_exit {
                Some(e) => format!(
                    "QEMU exited before userspace ({e}); last console line: {}",
                    last_line(b)
                ),
                None => format!(
                    "no userspace before the deadline; last console line: {}",
                    last_line(b)
                ),
            }),
        };
    }
    if !b.reached_userspace() {
        return skip("the boot did not reach userspace (see boot.userspace)");
    }
    match id {
        "console.clean" => match &b.console.failure {
            None => pass("no failure pattern"),
            Some(f) => fail(format!("{:?}: {}", f.kind, f.line)),
        },
        "metadata.password" if faulty => skip(format!(
            "metadata fault `{}` injected (see firstboot.fail-safe)",
            facts.fault
        )),
        "metadata.password" if firstboot_missing(facts) => {
            skip("firstboot is not installed (see firstboot.installed)")
        }
        "metadata.password" => match (&b.login, b.password_fetched) {
            (Login::Worked { after_secs }, true) => pass(format!(
                "login with the metadata password after {after_secs:.1}s{}",
                // cloud-init sets the password well after sshd answers: show both.
                b.ssh_secs
                    .filter(|_| facts.agent() == Agent::CloudInit)
                    .map(|s| format!(" (SSH answered at {s:.1}s)"))
                    .unwrap_or_default()
            )),
            (Login::Worked { .. }, false) => fail(format!(
                "login worked but the guest never fetched {}",
                password_source(facts)
            )),
            (l, fetched) => fail(format!(
                "{}; {} {}",
                login_text(l),
                password_source(facts),
                if fetched {
                    "was fetched"
                } else {
                    "was never fetched"
                }
            )),
        },
        "firstboot.fail-safe" if !faulty => {
            skip("the metadata service delivers the password (no withholding fault)")
        }
        "firstboot.fail-safe" => match &b.login {
            Login::Worked { .. } => fail(format!(
                "login possible although the metadata service had fault `{}`",
                facts.fault
            )),
            Login::Refused { .. } if b.wrong_password_rejected == Some(false) => {
                fail("a wrong password was accepted")
            }
            Login::Refused { .. } => pass(format!(
                "SSH answered and refused every password{}",
                firstboot_note(b)
            )),
            Login::NoSsh { .. } => pass(format!(
                "no SSH server answered; no login possible{}",
                firstboot_note(b)
            )),
            Login::NotTried { reason } => skip(reason.clone()),
        },
        "hostkeys.regenerated" => match (&b.host_key_sha256, &b.probe, &facts.offline) {
            (None, _, _) => skip("no SSH handshake"),
            (Some(_), Some(p), _) if p.host_keys.iter().any(|k| k.sha256.is_empty()) => skip(
                "the probe could not read the host key files (login user without root or sudo)",
            ),
            (Some(_), Some(p), Offline::Read(off)) => {
                let kept: Vec<String> = p
                    .host_keys
                    .iter()
                    .filter(|k| off.host_keys.iter().any(|o| o.sha256 == k.sha256))
                    .map(|k| k.path.clone())
                    .collect();
                if kept.is_empty() {
                    pass(format!(
                        "{} host key file(s) generated at boot",
                        p.host_keys.len()
                    ))
                } else {
                    fail(format!("still the image's baked key: {}", list(&kept)))
                }
            }
            (Some(fp), _, _) => pass(format!("host key SHA256 {}", short(fp))),
        },
        "firstboot.disabled" if faulty => skip(format!(
            "metadata fault `{}` injected (see firstboot.fail-safe)",
            facts.fault
        )),
        "firstboot.disabled" if firstboot_missing(facts) => {
            skip("firstboot is not installed (see firstboot.installed)")
        }
        "firstboot.disabled" if facts.agent() == Agent::CloudInit => {
            match (b.cloud_init_finished_secs, &b.login) {
                (Some(t), _) => pass(format!(
                    "cloud-init finished at {t:.1}s ({})",
                    crate::cloudinit::BOOT_FINISHED
                )),
                (None, Login::Worked { .. }) => fail(format!(
                    "cloud-init did not finish before the deadline: no {}",
                    crate::cloudinit::BOOT_FINISHED
                )),
                (None, l) => skip(format!("no login: {}", login_text(l))),
            }
        }
        "firstboot.disabled" => match &b.probe {
            None => skip(format!(
                "no probe: {}",
                b.probe_error
                    .clone()
                    .unwrap_or_else(|| login_text(&b.login))
            )),
            Some(p) if p.firstboot_state == "done" && p.firstboot_hook == "disabled" => {
                pass("state=done hook=disabled")
            }
            Some(p) => fail(format!(
                "firstboot status: state={} hook={}{}",
                p.firstboot_state,
                p.firstboot_hook,
                firstboot_note(b)
            )),
        },
        "shutdown.clean" => match &b.shutdown {
            Shutdown::Clean { secs } => {
                pass(format!("powered off {secs:.1}s after system_powerdown"))
            }
            Shutdown::TimedOut { deadline_secs } => fail(format!(
                "still running {deadline_secs:.0}s after system_powerdown (ACPI power button)"
            )),
            Shutdown::NotDone { reason } => skip(reason.clone()),
        },
        other => unreachable!("no boot check {other}"),
    }
}

fn boots_check(id: &str, facts: &Facts) -> Verdict {
    match id {
        "hostkeys.unique" => {
            let keys: Vec<(usize, &String)> = facts
                .boots
                .iter()
                .filter_map(|b| b.host_key_sha256.as_ref().map(|k| (b.index, k)))
                .collect();
            if keys.len() < 2 {
                return skip(format!(
                    "needs two boots with an SSH handshake, had {}",
                    keys.len()
                ));
            }
            match duplicate(&keys) {
                Some((a, b, k)) => fail(format!(
                    "boots {a} and {b} have the same host key SHA256 {}",
                    short(k)
                )),
                None => pass(format!("{} different host keys", keys.len())),
            }
        }
        "machine-id.unique" => {
            if matches!(&facts.offline, Offline::Read(f) if f.machine_id.is_some()) {
                return skip("the image has a machine-id (see machine-id.empty)");
            }
            let ids: Vec<(usize, &String)> = facts
                .boots
                .iter()
                .filter_map(|b| b.probe.as_ref().map(|p| (b.index, &p.machine_id)))
                .collect();
            if ids.len() < 2 {
                return skip(format!("needs two probed boots, had {}", ids.len()));
            }
            if ids.iter().all(|(_, m)| m.is_empty()) {
                return skip("no machine-id at runtime (no systemd)");
            }
            match duplicate(&ids) {
                Some((a, b, m)) => fail(format!("boots {a} and {b} share machine-id {m:?}")),
                None => pass(format!("{} different machine-ids", ids.len())),
            }
        }
        "ssh.wrong-password" => {
            // An acceptance anywhere outweighs a rejection elsewhere.
            let tried = facts
                .boots
                .iter()
                .filter_map(|b| b.wrong_password_rejected.map(|r| (b.index, r)))
                .min_by_key(|&(_, rejected)| rejected);
            match (tried, facts.boots.first()) {
                (Some((i, true)), _) => pass(format!("rejected on boot {i}")),
                (Some((i, false)), _) => fail(format!(
                    "a random password was accepted for the login user on boot {i}"
                )),
                (None, None) => skip("no boot was run"),
                (None, Some(b)) => skip(format!("cannot tell: {}", login_text(&b.login))),
            }
        }
        other => unreachable!("no multi-boot check {other}"),
    }
}

fn duplicate<'a>(items: &[(usize, &'a String)]) -> Option<(usize, usize, &'a String)> {
    items.iter().enumerate().find_map(|(i, &(a, ka))| {
        items[i + 1..]
            .iter()
            .find(|(_, kb)| *kb == ka)
            .map(|&(b, _)| (a, b, ka))
    })
}

fn short(fp: &str) -> &str {
    &fp[..fp.len().min(16)]
}

fn last_line(b: &BootFacts) -> String {
    b.console
        .tail
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .cloned()
        .unwrap_or_else(|| "(console empty)".into())
}

fn login_text(l: &Login) -> String {
    match l {
        Login::Worked { after_secs } => format!("login worked after {after_secs:.1}s"),
        Login::Refused { reason } => {
            format!("SSH refused the metadata password until the deadline ({reason})")
        }
        Login::NoSsh { reason } => format!("no SSH server answered before the deadline ({reason})"),
        Login::NotTried { reason } => format!("login not tried: {reason}"),
    }
}

/// What carries the password to the guest for the run's agent.
fn password_source(facts: &Facts) -> &'static str {
    match facts.agent() {
        Agent::Firstboot => "initial-password",
        Agent::CloudInit => "user-data",
    }
}

fn firstboot_note(b: &BootFacts) -> String {
    match b.console.firstboot_lines.last() {
        Some(l) => format!("; console: {l}"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests;
