//! The first-boot handover: the agent (firstboot or cloud-init) is installed, takes the
//! password the metadata service hands out and nothing else opens the server, then it
//! disables itself so a reboot does not run it again.

use super::{Judgement, fail, list, login_text, pass, probed, skip};
use crate::facts::{
    Agent, BootFacts, CLOUD_INIT_BOOT_FINISHED, Facts, Login, Offline, OfflineFacts,
};

/// `firstboot.installed`: the run's agent is installed with what makes it run at boot.
pub(super) fn installed(f: &OfflineFacts, facts: &Facts) -> Judgement {
    if facts.agent() == Agent::CloudInit {
        return match &f.cloud_init {
            Some(c) if c.installed && c.switched_off.is_none() => pass(format!(
                "cloud-init installed (/usr/bin/cloud-init, /etc/cloud/cloud.cfg){}",
                c.default_user
                    .as_ref()
                    .map(|u| format!(", default user {u}"))
                    .unwrap_or_default()
            )),
            Some(c) if c.installed => fail(format!(
                "cloud-init will not run: {}",
                c.switched_off.as_deref().unwrap_or_default()
            )),
            _ => fail("cloud-init is not installed (/usr/bin/cloud-init, /etc/cloud/cloud.cfg)"),
        };
    }
    match (f.firstboot_program, f.firstboot_hooks.is_empty()) {
        (true, false) => pass(format!(
            "/usr/sbin/firstboot, hooks: {}",
            list(&f.firstboot_hooks)
        )),
        (false, _) => fail("/usr/sbin/firstboot is missing"),
        (true, true) => fail("/usr/sbin/firstboot exists but no boot hook runs it"),
    }
}

/// Why a first-boot check is not judged on this run, if it is not: a fault withholds the
/// password (`firstboot.fail-safe` judges that), or the agent is missing
/// (`firstboot.installed` names it).
fn not_judged(facts: &Facts) -> Option<Judgement> {
    if facts.fault.withholds_password() {
        return Some(skip(format!(
            "metadata fault `{}` injected (see firstboot.fail-safe)",
            facts.fault
        )));
    }
    agent_missing(facts).then(|| skip("firstboot is not installed (see firstboot.installed)"))
}

/// Whether the offline facts show the run's agent is not installed.
fn agent_missing(facts: &Facts) -> bool {
    match (&facts.offline, facts.agent()) {
        (Offline::Read(f), Agent::Firstboot) => {
            !f.firstboot_program || f.firstboot_hooks.is_empty()
        }
        (Offline::Read(f), Agent::CloudInit) => !f
            .cloud_init
            .as_ref()
            .is_some_and(|c| c.installed && c.switched_off.is_none()),
        (Offline::Unreadable { .. }, _) => false,
    }
}

/// `metadata.password`: the guest fetched its password and it works over SSH.
pub(super) fn metadata_password(b: &BootFacts, facts: &Facts) -> Judgement {
    if let Some(j) = not_judged(facts) {
        return j;
    }
    let source = facts.agent().password_source();
    match (&b.login, b.password_fetched) {
        (Login::Worked { after_secs }, true) => pass(format!(
            "login with the metadata password after {after_secs:.1}s{}",
            // cloud-init sets the password well after sshd answers: show both.
            b.ssh_secs
                .filter(|_| facts.agent() == Agent::CloudInit)
                .map(|s| format!(" (SSH answered at {s:.1}s)"))
                .unwrap_or_default()
        )),
        (Login::Worked { .. }, false) => {
            fail(format!("login worked but the guest never fetched {source}"))
        }
        (l, fetched) => fail(format!(
            "{}; {source} {}",
            login_text(l),
            if fetched {
                "was fetched"
            } else {
                "was never fetched"
            }
        )),
    }
}

/// `firstboot.fail-safe`: under a fault that withholds the password, no login works.
pub(super) fn fail_safe(b: &BootFacts, facts: &Facts) -> Judgement {
    if !facts.fault.withholds_password() {
        return skip("the metadata service delivers the password (no withholding fault)");
    }
    match &b.login {
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
    }
}

/// `firstboot.disabled`: the agent ran and will not run again at the next boot.
pub(super) fn disabled(b: &BootFacts, facts: &Facts) -> Judgement {
    if let Some(j) = not_judged(facts) {
        return j;
    }
    if facts.agent() == Agent::CloudInit {
        return match (b.cloud_init_finished_secs, &b.login) {
            (Some(t), _) => pass(format!(
                "cloud-init finished at {t:.1}s ({CLOUD_INIT_BOOT_FINISHED})"
            )),
            (None, Login::Worked { .. }) => fail(format!(
                "cloud-init did not finish before the deadline: no {CLOUD_INIT_BOOT_FINISHED}"
            )),
            (None, l) => skip(format!("no login: {}", login_text(l))),
        };
    }
    match probed(b) {
        Err(no_probe) => no_probe,
        Ok(p) if p.firstboot_state == "done" && p.firstboot_hook == "disabled" => {
            pass("state=done hook=disabled")
        }
        Ok(p) => fail(format!(
            "firstboot status: state={} hook={}{}",
            p.firstboot_state,
            p.firstboot_hook,
            firstboot_note(b)
        )),
    }
}

/// The last `firstboot:` console line, as a note for evidence.
fn firstboot_note(b: &BootFacts) -> String {
    match b.console.firstboot_lines.last() {
        Some(l) => format!("; console: {l}"),
        None => String::new(),
    }
}
