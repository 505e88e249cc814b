//! The three tools' manuals and shell completions, generated from their clap definitions
//! (`clap_mangen`, `clap_complete`), so they say what `--help` says: one page per tool and
//! per subcommand (`imgtest-run.1`), completions for bash, zsh and fish. `imgtest __docs
//! DIR` writes them; `scripts/package.sh` installs them.

use std::path::Path;

use clap_complete::Shell;

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
}
