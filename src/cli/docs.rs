//! The three tools' manuals and shell completions, generated from their clap definitions
//! (`clap_mangen`, `clap_complete`), so they say what `--help` says: one page per tool and
//! per subcommand (`imgtest-run.1`), completions for bash, zsh and fish. `imgtest __docs
//! DIR` writes them; `scripts/package.sh` installs them. The long descriptions of the
//! commands (`long_about`, `after_long_help`) are here too: what `--help` and the manual
//! say a command does, beyond its flags (the whole story is in `docs/`).

use std::path::Path;

use clap_complete::Shell;

/// `imgtest run --help` and `man imgtest-run`: what a run does, step by step.
pub const RUN_ABOUT: &str = "\
Test images: exit 0 pass, 1 a check failed, 2 could not judge.

Boots each IMAGE (raw, qcow2, vmdk or ISO 9660) the way a cloud platform would and \
checks that its first boot is safe to publish. A run goes through these steps:

1. Before anything runs, every input and output is checked: the images are recognised \
(compressed, truncated, corrupt or not self-contained ones are refused), the reports and \
the artifacts directory must be writable and none of the inputs, and the boots must fit \
the host's memory.

2. Offline, the image's ext2/3/4 root filesystem is read without booting it (accounts, \
logs, keys, leftovers), and the firmware (--firmware auto: BIOS, UEFI or both) and the \
first-boot agent (--firstboot auto: firstboot or cloud-init) are chosen from what the \
image holds. Meanwhile --accel auto proves that KVM works, else TCG runs the boots with \
every timeout scaled.

3. The image boots --boots times (default 2) in parallel under QEMU, each boot on its own qcow2 \
overlay (the image is never written), with its own console log, an SSH port forwarded on \
127.0.0.1, restricted user networking and a virtio entropy device.

4. Each boot has its own metadata service at 169.254.169.254, which hands out a fresh \
password (initial-password; for cloud-init, user-data) and SSH public key; \
--metadata-fault injects a fault into its answers.

5. imgtest logs in over SSH with that boot's password and runs one probe of the running \
guest. The first boot whose SSH server answers also tries a wrong password, and an empty \
one for each account with a login shell.

6. The first boot to finish is powered off with the ACPI power button (shutdown.clean); \
the others are stopped at once.

7. Every selected check (imgtest checks lists them; --check, --skip) is judged from what \
was collected, under four rules (leftovers, logins, logs, identity) plus the health of \
the boot and of the first-boot handover. A check that cannot judge is skipped with the \
reason, naming the check that holds the root cause. --fail-fast stops at the first \
failed check.

8. The summary goes to stdout, progress to stderr; --json, --junit, --html and \
--artifacts write the reports and keep the console logs, screenshots and metadata \
request log (kept in ./imgtest-artifacts/IMAGE/ whenever an image fails). Generated \
passwords never appear in logs or reports.";

/// After `imgtest run`'s flags: the exit codes and where the rest is.
pub const RUN_AFTER: &str = "\
Exit status:

0  every image passed: every check passed (skips and warnings allowed).

1  an image failed a check.

2  imgtest could not judge: a rule that no selected check could judge (unless \
--allow-unjudged), usage, a missing or bad image, a missing dependency, a host that \
cannot run the VMs, interrupted.

See also: imgtest checks (the catalogue), imgtest shell (into the guest a run boots), \
imgtest doctor (what this host can run); docs/run.md, docs/checks.md and \
docs/security.md in imgtest's source.";

/// `imgtest matrix --help`: one root filesystem, many kernels.
pub const MATRIX_ABOUT: &str = "\
Test one root filesystem with many kernels: exit 0 all pass, 1 one failed, 2 could not judge.

A SPEC is a kernel version already in fsmaker's cache (fsmaker kernel list), a .deb file, \
or a Debian package name such as linux-image-6.1.0-55-cloud-amd64 (fetched with apt-get \
download unless it is cached). For each kernel the matrix imports it into the cache, \
builds an image from ROOTFS with fsmaker (in a temp dir, deleted after the run) and tests \
it as imgtest run does, --jobs kernels at once.

stdout gets a check x kernel table (the worst result over a kernel's boots), each failure \
with its evidence, and a verdict line; --json is the matrix model (each kernel's run \
report inside), --junit one testsuite per kernel, --artifacts DIR keeps each kernel's \
logs in DIR/VERSION. --shard K/N tests every N-th spec of the sorted list, for CI jobs \
whose reports imgtest report merge joins.";

/// After `imgtest matrix`'s flags.
pub const MATRIX_AFTER: &str = "\
Exit status:

0  every kernel passed.

1  a kernel failed a check.

2  a kernel could not be judged (not fetchable, not buildable) or bad usage.

See also: imgtest bisect, imgtest report merge; docs/matrix.md and docs/ci.md in \
imgtest's source.";

/// `imgtest bisect --help`.
pub const BISECT_ABOUT: &str = "\
Find the first failing kernel of an ordered list: --good, --kernel..., --bad.

The ends are trusted, as in git bisect, and never imported; the middle of the open \
interval is tested (as imgtest matrix tests a kernel) until the first failing kernel is \
found: at most ceil(log2(n-1)) runs for n kernels. Each step and the verdict are printed.

Exit status: 0 the first failing kernel was found; 2 a kernel could not be judged, which \
stops the bisection, or bad usage (a list naming a kernel twice is refused before \
anything runs).";

/// `imgtest shell --help`.
pub const SHELL_ABOUT: &str = "\
Boot IMAGE as `run` would and get into it: SSH as the first-boot user with the metadata \
password (printed once), or the serial console (--console; Ctrl-] leaves).

One overlay of IMAGE boots exactly as imgtest run boots its first boot (firmware, the \
metadata service with a fresh password, the isolated network); a hybrid image boots BIOS \
unless --firmware uefi. Once the metadata password works, you get an interactive SSH \
session as the first-boot user (with stdin not a terminal, stdin is the session's input, \
like ssh -T); the password is printed once on the terminal and written to no file, log or \
report. On exit QEMU is stopped and the overlay deleted, unless --keep-overlay FILE keeps \
it (a qcow2 backed by IMAGE, which is never written).";

/// `fsmaker --help` and `man fsmaker`: what a build does.
pub const FSMAKER_ABOUT: &str = "\
Make a bootable disk image from a bare ext2/3/4 root filesystem, rootless.

fsmaker ROOTFS OUT.img makes a bootable disk (BIOS, UEFI or both) from a root filesystem \
image that has no kernel and no boot sector (e.g. from mke2fs -d), with no root, loop \
devices or mounts. ROOTFS is never modified; OUT is sparse.

The disk gets a partition table (MBR by default; GPT, laid out like Debian's cloud \
images, for UEFI, hybrid or Secure Boot disks), the filesystem copied into its root \
partition (grown into --size with --grow), GRUB for BIOS (i386-pc) and for UEFI (an ESP \
with BOOTX64.EFI; with --secure-boot, Debian's signed shim and GRUB), and a kernel, its \
initrd (busybox and the modules for virtio, IDE, AHCI, NVMe and ext4) and its \
/lib/modules from the cache (fsmaker kernel fetch; $FSMAKER_CACHE, else \
$XDG_CACHE_HOME/fsmaker, else ~/.cache/fsmaker).

The same inputs give the same bytes (timestamps are SOURCE_DATE_EPOCH, or the rootfs's \
last write time). The disk is built in files that have no name until the end, so a \
failed, interrupted or killed build leaves no temp file and OUT as it was.";

/// After fsmaker's flags.
pub const FSMAKER_AFTER: &str = "\
Exit status: 0 the disk was written; 2 it was not (one line says why: a bad or too small \
ROOTFS, OUT exists without --force or is not a regular file, GRUB files or a kernel \
missing, an unsigned kernel for --secure-boot, ...).

See also: sparsecopy (copy the image onto a device), imgtest run (test it); docs/images.md \
and docs/firmware.md in imgtest's source.";

/// Writes `DIR/man/*.1` and `DIR/completions/` (`NAME.bash`, `_NAME`, `NAME.fish`).
pub fn write(dir: &Path) -> std::io::Result<()> {
    let (man, completions) = (dir.join("man"), dir.join("completions"));
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    for cmd in [
        super::imgtest::command(),
        super::fsmaker::command(),
        super::sparsecopy::command(),
    ] {
        clap_mangen::generate_to(cmd.clone(), &man)?;
        let name = cmd.get_name().to_string();
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            clap_complete::generate_to(shell, &mut cmd.clone(), &name, &completions)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_tool_and_subcommand_has_a_page_and_every_shell_a_completion() {
        let d = tempfile::tempdir().unwrap();
        super::write(d.path()).unwrap();
        let mut pages: Vec<String> = std::fs::read_dir(d.path().join("man"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        pages.sort();
        for page in [
            "imgtest.1",
            "imgtest-run.1",
            "imgtest-shell.1",
            "imgtest-report-html.1",
            "imgtest-report-merge.1",
            "fsmaker.1",
            "fsmaker-kernel-fetch.1",
            "sparsecopy.1",
        ] {
            assert!(pages.contains(&page.to_string()), "{page}: {pages:?}");
        }
        // Internal subcommands are not documented.
        assert!(!pages.iter().any(|p| p.contains("__")), "{pages:?}");
        let run = std::fs::read_to_string(d.path().join("man/imgtest-run.1")).unwrap();
        assert!(
            run.contains("\\-\\-html") && run.contains("\\-\\-artifacts"),
            "{run}"
        );
        for file in ["imgtest.bash", "_fsmaker", "sparsecopy.fish"] {
            let c = std::fs::read_to_string(d.path().join("completions").join(file)).unwrap();
            assert!(!c.is_empty(), "{file}");
        }
    }

    #[test]
    fn the_run_page_says_what_a_run_does() {
        let d = tempfile::tempdir().unwrap();
        super::write(d.path()).unwrap();
        let run = std::fs::read_to_string(d.path().join("man/imgtest-run.1")).unwrap();
        let description = run
            .split(".SH DESCRIPTION")
            .nth(1)
            .and_then(|rest| rest.split(".SH OPTIONS").next())
            .unwrap_or_else(|| panic!("no DESCRIPTION before OPTIONS:\n{run}"));
        // The steps of a run, in the order they happen.
        let steps = [
            "every input and output is checked",
            "root filesystem is read without booting",
            "in parallel under QEMU",
            "metadata service at 169.254.169.254",
            "logs in over SSH",
            "ACPI power button",
            "Every selected check",
            "The summary goes to stdout",
        ];
        let at: Vec<usize> = steps
            .iter()
            .map(|s| {
                description
                    .find(s)
                    .unwrap_or_else(|| panic!("{s}:\n{description}"))
            })
            .collect();
        assert!(at.is_sorted(), "{steps:?} at {at:?}");
        let exit = run
            .split(".SH EXTRA")
            .nth(1)
            .unwrap_or_else(|| panic!("no exit status section:\n{run}"));
        for code in [
            "0  every image passed",
            "1  an image failed a check",
            "2  imgtest could not judge",
        ] {
            assert!(exit.contains(code), "{code}:\n{exit}");
        }
    }

    /// The lines of a Markdown file outside its fenced code blocks.
    fn prose(text: &str) -> impl Iterator<Item = &str> {
        let mut fenced = false;
        text.lines().filter(move |l| {
            if l.trim_start().starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
    }

    /// The anchors GitHub gives a Markdown file's headings.
    fn anchors(text: &str) -> Vec<String> {
        prose(text)
            .filter_map(|l| l.strip_prefix('#'))
            .map(|h| {
                h.trim_start_matches('#')
                    .trim()
                    .to_lowercase()
                    .chars()
                    .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
                    .map(|c| if c == ' ' { '-' } else { c })
                    .collect()
            })
            .collect()
    }

    /// The relative link targets (`](TARGET)`) of a Markdown file's prose.
    fn links(text: &str) -> Vec<String> {
        prose(text)
            .flat_map(|l| l.split("](").skip(1))
            .filter_map(|rest| rest.split(')').next())
            .filter(|t| !t.contains("://"))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn every_doc_is_reachable_from_the_readme_and_every_link_resolves() {
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = vec![repo.join("README.md")];
        for e in std::fs::read_dir(repo.join("docs")).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_some_and(|x| x == "md") {
                files.push(path);
            }
        }
        let readme = std::fs::read_to_string(&files[0]).unwrap();
        let from_readme = links(&readme);
        for doc in &files[1..] {
            let name = format!("docs/{}", doc.file_name().unwrap().to_string_lossy());
            assert!(
                from_readme
                    .iter()
                    .any(|l| l.split('#').next() == Some(name.as_str())),
                "README.md links no {name}: {from_readme:?}"
            );
        }
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            for link in links(&text) {
                let (path, anchor) = link.split_once('#').unwrap_or((&link, ""));
                let target = if path.is_empty() {
                    file.clone()
                } else {
                    file.parent().unwrap().join(path)
                };
                assert!(target.exists(), "{}: {link}: no such file", file.display());
                if !anchor.is_empty() {
                    let headings = anchors(&std::fs::read_to_string(&target).unwrap());
                    assert!(
                        headings.iter().any(|h| h == anchor),
                        "{}: {link}: no such heading in {headings:?}",
                        file.display()
                    );
                }
            }
        }
    }
}
