//! `sparsecopy`: copy disk images keeping holes. Parses flags into a
//! [`CopyPlan`], calls the library with a progress bar as its observer, prints a
//! one-line summary, and returns its errors, with the flag that would help (`hint`), to
//! [`crate::cli::exit_code`].

use std::path::PathBuf;
use std::process::ExitCode;

use crate::cli::progress::CopyBar;
use crate::cli::{CliError, Outcome, with_hint};
use crate::disk::table;
use crate::exit;
use crate::sparsecopy::{self, CopyPlan, CopyStats, Source, SparseError};
use crate::units::{human, parse_size};
use clap::Parser;

/// Copy SRC to DST like dd, keeping holes: only non-zero blocks are written.
///
/// SRC may be a file, a block device or `-` for stdin; gzip, zstd and xz are
/// decompressed on the fly. DST is created if missing and never truncated
/// unless --truncate. Sizes take K, M, G, T suffixes (binary).
#[derive(Parser, Debug)]
#[command(
    name = "sparsecopy",
    version,
    after_help = "Examples:\n  sparsecopy disk.img /dev/sdb\n  sparsecopy -f2G /dev/null rootfs.img\n  zcat disk.img.gz | sparsecopy - disk.img\n  sparsecopy --seek 1M rootfs.img disk.img\n  sparsecopy --info --json disk.img"
)]
struct Args {
    /// Source file, block device, or `-` for stdin (with --info: the image to describe).
    src: String,
    /// Destination file or block device.
    #[arg(required_unless_present = "info")]
    dst: Option<PathBuf>,
    /// Zero-detection granularity.
    #[arg(short = 'b', long, default_value = "4K", value_name = "SIZE")]
    block_size: String,
    /// Start writing at this byte offset of DST.
    #[arg(long, value_name = "BYTES")]
    seek: Option<String>,
    /// Start reading at this byte offset of SRC (after decompression).
    #[arg(long, value_name = "BYTES")]
    skip: Option<String>,
    /// Copy at most this many bytes of SRC.
    #[arg(long, value_name = "BYTES")]
    count: Option<String>,
    /// Make DST exactly SIZE bytes (e.g. -f2G).
    #[arg(short = 'f', long, value_name = "SIZE")]
    size: Option<String>,
    /// Allow DST to end at the copy's end or --size, cutting SRC or DST.
    #[arg(long)]
    truncate: bool,
    /// Re-read and compare after copying.
    #[arg(long)]
    verify: bool,
    /// Block device: discard zero ranges instead of zeroing them.
    #[arg(long)]
    discard: bool,
    /// Block device: it already reads as zeros; leave zero ranges alone.
    #[arg(long, conflicts_with = "discard")]
    assume_zero: bool,
    /// fsync a file DST at the end, writing back during the copy (block devices always are).
    #[arg(long)]
    sync: bool,
    /// No progress bar, no summary.
    #[arg(short, long)]
    quiet: bool,
    /// Describe SRC (size, allocation, partition table) instead of copying.
    #[arg(long, conflicts_with_all = ["dst", "seek", "skip", "count", "size"])]
    info: bool,
    /// With --info: print JSON.
    #[arg(long)]
    json: bool,
}

/// sparsecopy's command line as clap defines it (for its manual and completions).
pub fn command() -> clap::Command {
    <Args as clap::CommandFactory>::command()
}

/// The `sparsecopy` binary. SIGINT, SIGTERM and SIGHUP stop the copy between two pieces:
/// a DST it was creating is not created, an existing one is left as written so far.
pub fn main() -> ExitCode {
    crate::cli::guarded("sparsecopy", "sparsecopy: error", || {
        exit::quiet_on_closed_stdout();
        crate::vm::process::install_signal_guard();
        let args = Args::parse();
        if args.json && !args.info {
            return Err("--json only changes what --info prints: add --info".into());
        }
        let result = if args.info { info(&args) } else { run(&args) };
        result.map(|()| Outcome::Success).map_err(|e| {
            let hint = e.downcast_ref::<SparseError>().and_then(hint);
            CliError::from(with_hint(&e.to_string(), hint))
        })
    })
}

/// The flag that would get past `e`, if there is one.
fn hint(e: &SparseError) -> Option<String> {
    Some(match e {
        SparseError::SizeTooSmall { .. } => "add --truncate to cut it".into(),
        SparseError::TooLarge { .. } => "lower --seek, or copy less with --count".into(),
        SparseError::SizeOnDevice(_) => "--size is for a file DST".into(),
        SparseError::WouldShorten { .. } => "add --truncate to cut it".into(),
        SparseError::SkipPastEnd { .. } => "lower --skip".into(),
        _ => return None,
    })
}

fn info(args: &Args) -> anyhow::Result<()> {
    let info = table::inspect(&info_source(&args.src)?)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        print!("{}", table::render(&info));
    }
    Ok(())
}

/// What `--info` reads: SRC, or for `-` standard input when it is a file or a block
/// device (a pipe cannot be looked into without consuming it).
fn info_source(src: &str) -> anyhow::Result<PathBuf> {
    if src != "-" {
        return Ok(PathBuf::from(src));
    }
    let st = rustix::fs::fstat(std::io::stdin())?;
    match rustix::fs::FileType::from_raw_mode(st.st_mode) {
        rustix::fs::FileType::RegularFile | rustix::fs::FileType::BlockDevice => {
            Ok(PathBuf::from("/dev/stdin"))
        }
        _ => anyhow::bail!(
            "--info reads a file or a block device, and standard input is a stream: name the image, or redirect it from a file"
        ),
    }
}

fn plan(args: &Args) -> Result<CopyPlan, SparseError> {
    let src = if args.src == "-" {
        Source::Stdin
    } else {
        Source::Path(args.src.clone().into())
    };
    let dst = args.dst.clone().expect("clap requires DST without --info");
    let opt = |v: &Option<String>| v.as_deref().map(parse_size).transpose();
    let block_size = parse_size(&args.block_size)?;
    Ok(CopyPlan {
        block_size: usize::try_from(block_size).unwrap_or(usize::MAX),
        seek: opt(&args.seek)?.unwrap_or(0),
        skip: opt(&args.skip)?.unwrap_or(0),
        count: opt(&args.count)?,
        size: opt(&args.size)?,
        truncate: args.truncate,
        verify: args.verify,
        discard: args.discard,
        assume_zero: args.assume_zero,
        sync: args.sync,
        ..CopyPlan::new(src, dst)
    })
}

fn run(args: &Args) -> anyhow::Result<()> {
    let plan = plan(args)?;
    let mut bar = CopyBar::new(!args.quiet);
    let result = sparsecopy::copy_with(&plan, &mut |p| bar.update(p));
    bar.finish();
    let stats = result?;
    for w in &stats.warnings {
        eprintln!("sparsecopy: warning: {w}");
    }
    if !args.quiet {
        eprintln!("{}", summary(&stats));
    }
    Ok(())
}

fn summary(s: &CopyStats) -> String {
    let secs = s.elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        human((s.copied as f64 / secs) as u64)
    } else {
        "-".into()
    };
    let gpt = if s.gpt_relocated {
        "; backup GPT moved to the end"
    } else {
        ""
    };
    format!(
        "sparsecopy: copied {} in {secs:.2} s ({rate}/s): read {}, wrote {}, skipped {}; DST size {}{gpt}",
        human(s.copied),
        human(s.bytes_read),
        human(s.bytes_written),
        human(s.bytes_skipped),
        human(s.dst_size),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn hints_name_the_flags_that_help() {
        let e = SparseError::SizeTooSmall {
            size: 5 << 20,
            needed: 6 << 20,
            seek: 0,
        };
        assert_eq!(
            with_hint(&e.to_string(), hint(&e)),
            "size 5242880 is too small: SRC's 6291456 bytes at seek offset 0 end at byte 6291456 (add --truncate to cut it)"
        );
        let e = SparseError::TooLarge {
            path: "/dev/sdx".into(),
            needed: 10,
            seek: 4,
            size: 8,
        };
        assert!(hint(&e).unwrap().contains("--seek"));
        assert!(!e.to_string().contains("--"), "{e}");
        assert_eq!(hint(&SparseError::BadBlockSize(1000)), None);
    }

    #[test]
    fn version_names_the_tool() {
        assert_eq!(Args::command().render_version(), "sparsecopy 0.1.0\n");
    }
}
