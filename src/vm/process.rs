//! QEMU processes that cannot outlive imgtest.
//!
//! Each QEMU is started in its own process group (its guestfwd relays join it) and the
//! group id is registered globally. [`VmProcess`] kills its group on drop, which also runs
//! when a thread panics. [`install_signal_guard`] turns SIGINT/SIGTERM/SIGHUP into "kill
//! every registered group and ask the work to stop" ([`crate::interrupt`]): the waits then
//! see QEMU gone and unwind normally, so temp dirs are removed by their own drops. A QEMU
//! also dies when imgtest is killed outright (SIGKILL, the OOM killer): it is started to
//! die with its parent ([`crate::helper::die_with_parent`]), and creates its files (the QMP
//! socket) for its owner alone.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::Instant;

use wait_timeout::ChildExt;

use super::{VmError, VmSpec};

static GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

const GUARDED: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

fn guarded_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset only write the set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in GUARDED {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread (and the threads it spawns
/// later) and handles them on a dedicated thread: kill every registered QEMU group and
/// ask the work to stop ([`crate::interrupt::request`]). Call once, early in `main`,
/// before spawning threads.
pub fn install_signal_guard() {
    let set = guarded_set();
    // SAFETY: pthread_sigmask with a valid set; no old set requested.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    std::thread::spawn(move || {
        loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: sigwait reads the set and writes the signal number.
            if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
                crate::interrupt::request();
                kill_all();
            }
        }
    });
}

/// Whether a guarded signal arrived.
pub use crate::interrupt::requested as interrupted;

/// Kills every registered process group (SIGKILL).
pub fn kill_all() {
    let groups = GROUPS.lock().unwrap_or_else(|e| e.into_inner());
    for &g in groups.iter() {
        // SAFETY: kill on a negative pid signals a process group we created.
        unsafe {
            libc::kill(-g, libc::SIGKILL);
        }
    }
}

/// A running QEMU whose process group dies with this value.
pub struct VmProcess {
    child: Child,
    pgid: i32,
    status: Option<ExitStatus>,
}

impl VmProcess {
    /// Starts `program` (normally `qemu-system-x86_64`) with the spec's arguments in a new
    /// process group. Returns the process and the serial console (QEMU's stdout).
    /// QEMU's stderr goes to `stderr_log`.
    pub fn spawn(
        program: &str,
        spec: &VmSpec,
        stderr_log: &Path,
    ) -> Result<(Self, ChildStdout), VmError> {
        let mut cmd = Command::new(program);
        cmd.args(spec.args());
        Self::spawn_command(cmd, stderr_log)
    }

    /// Like [`VmProcess::spawn`], and the serial console's input too (QEMU's stdin): what
    /// is written there, the guest reads from its serial port.
    pub fn spawn_interactive(
        program: &str,
        spec: &VmSpec,
        stderr_log: &Path,
    ) -> Result<(Self, ChildStdout, ChildStdin), VmError> {
        let mut cmd = Command::new(program);
        cmd.args(spec.args()).stdin(Stdio::piped());
        let (mut vm, stdout) = Self::spawn_with(cmd, stderr_log)?;
        let stdin = vm.child.stdin.take().expect("stdin is piped");
        Ok((vm, stdout, stdin))
    }

    /// Starts any command the same way as [`VmProcess::spawn`].
    pub fn spawn_command(
        mut cmd: Command,
        stderr_log: &Path,
    ) -> Result<(Self, ChildStdout), VmError> {
        cmd.stdin(Stdio::null());
        Self::spawn_with(cmd, stderr_log)
    }

    /// Starts `cmd` (its stdin set by the caller) in a new process group, stdout piped.
    fn spawn_with(mut cmd: Command, stderr_log: &Path) -> Result<(Self, ChildStdout), VmError> {
        let program = cmd.get_program().to_string_lossy().into_owned();
        let stderr = crate::scratch::private_file(stderr_log).map_err(|source| VmError::Spawn {
            program: program.clone(),
            source,
        })?;
        cmd.stdout(Stdio::piped()).stderr(stderr).process_group(0);
        let set = guarded_set();
        // SAFETY: the pre-exec hook only calls the async-signal-safe pthread_sigmask and
        // umask: children get default signal handling back, and their files are private.
        unsafe {
            cmd.pre_exec(move || {
                libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
                libc::umask(0o077);
                Ok(())
            });
        }
        crate::helper::die_with_parent(&mut cmd);
        let mut groups = GROUPS.lock().unwrap_or_else(|e| e.into_inner());
        let mut child = cmd
            .spawn()
            .map_err(|source| VmError::Spawn { program, source })?;
        let pgid = child.id() as i32;
        groups.push(pgid);
        drop(groups);
        let stdout = child.stdout.take().expect("stdout is piped");
        let vm = VmProcess {
            child,
            pgid,
            status: None,
        };
        if interrupted() {
            kill_group(pgid);
        }
        Ok((vm, stdout))
    }

    /// The process id (also the process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if QEMU has exited, without blocking.
    pub fn try_exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits for QEMU to exit until `deadline`.
    pub fn wait_until(&mut self, deadline: Instant) -> Option<ExitStatus> {
        if self.status.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            self.status = self.child.wait_timeout(left).ok().flatten();
        }
        self.status
    }

    /// Kills the whole process group and reaps QEMU.
    pub fn kill(&mut self) {
        kill_group(self.pgid);
        if self.status.is_none() {
            self.status = self.child.wait().ok();
        }
    }
}

fn kill_group(pgid: i32) {
    // SAFETY: signals the process group this module created.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

impl Drop for VmProcess {
    fn drop(&mut self) {
        self.kill();
        let mut groups = GROUPS.lock().unwrap_or_else(|e| e.into_inner());
        groups.retain(|&g| g != self.pgid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn drop_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 30 & echo $!; wait"]);
        let (vm, mut out) = VmProcess::spawn_command(cmd, &dir.path().join("err")).unwrap();
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(&mut out)
            .read_line(&mut line)
            .unwrap();
        let grandchild: i32 = line.trim().parse().unwrap();
        drop(vm);
        std::thread::sleep(Duration::from_millis(100));
        // The grandchild (like a guestfwd relay) is gone too: kill(pid, 0) fails.
        let alive = unsafe { libc::kill(grandchild, 0) } == 0
            && std::fs::read_to_string(format!("/proc/{grandchild}/stat"))
                .map(|s| !s.contains(") Z "))
                .unwrap_or(false);
        assert!(!alive, "grandchild {grandchild} survived");
    }

    #[test]
    fn wait_until_respects_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sleep");
        cmd.arg("5");
        let (mut vm, _out) = VmProcess::spawn_command(cmd, &dir.path().join("err")).unwrap();
        let t = Instant::now();
        assert!(
            vm.wait_until(Instant::now() + Duration::from_millis(200))
                .is_none()
        );
        assert!(t.elapsed() < Duration::from_secs(2));
        vm.kill();
        assert!(vm.try_exited().is_some());
    }
}
