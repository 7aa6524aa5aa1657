//! Opening a run directory for training: one writer at a time (an exclusive advisory lock),
//! the cleanup of temp files a killed writer left behind, and the trainer of a fresh or a
//! resumed run.
//!
//! `ebm train --out D`, `ebm train --resume D` and `ebm compare --out D` take an exclusive
//! lock (`flock` on Unix, `LockFileEx` on Windows, through [`std::fs::File::try_lock`]) on
//! `D/.lock` for as long as they run, and write their pid, host and start time into it. A
//! second writer does not wait: it reads who holds the lock and stops with one error line
//! (exit 2). The lock dies with its process, so a killed run never leaves a stale lock; the
//! file itself stays (deleting it would let two processes lock two different files).

use crate::config::TrainConfig;
use crate::error::Error;
use crate::heldout;
use crate::train::{Trainer, CHECKPOINT};
use crate::verify;
use ebm_nn::Checkpoint;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// The lock file inside a run directory.
pub const LOCK_FILE: &str = ".lock";

/// Files the writer of a run directory writes atomically (temp file + rename): their temp
/// files are its own, so once it holds the lock any it finds are stale.
pub const WRITER_FILES: [&str; 10] = [
    "checkpoint.safetensors",
    "best.safetensors",
    "metrics.jsonl",
    "config.json",
    "eval.json",
    "samples.npy",
    "density.png",
    "samples.png",
    "loss.png",
    "compare.json",
];

/// An exclusive lock on a run directory, held until dropped.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Locks `dir` (which must exist) for `command`, or says who holds it.
    pub fn acquire(dir: &Path, command: &str) -> Result<RunLock, Error> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(format!("cannot open the lock {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(Error::Busy(format!(
                    "{} is in use by {}; wait for it to finish or pick another directory",
                    dir.display(),
                    describe_holder(&holder)
                )));
            }
            Err(TryLockError::Error(e)) => {
                return Err(Error::io(format!("cannot lock {}: {e}", path.display())))
            }
        }
        let info = serde_json::json!({
            "pid": std::process::id(),
            "host": hostname(),
            "started": format!("{} UTC", utc_timestamp(true)),
            "command": command,
        });
        // the lock is ours: rewrite the holder's details in place (an error here only costs
        // the next writer a less precise message)
        let _ = file
            .set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{info}"))
            .and_then(|_| file.flush());
        Ok(RunLock { _file: file })
    }
}

/// The trainer of the run in `dir`, put back exactly where its checkpoint left it, and the
/// directory's lock. Every stored value is checked before it is used ([`crate::verify`]);
/// `extend_steps` lengthens the run.
pub fn resume_trainer(dir: &Path, extend_steps: Option<u64>) -> Result<(Trainer, RunLock), Error> {
    let ckpt_path = dir.join(CHECKPOINT);
    if !ckpt_path.exists() {
        return Err(Error::checkpoint(format!(
            "cannot resume: {} does not exist",
            ckpt_path.display()
        )));
    }
    let lock = RunLock::acquire(dir, "train --resume")?;
    remove_stale_temps(dir);
    let ckpt = Checkpoint::load(&ckpt_path).map_err(|e| Error::from_checkpoint(&ckpt_path, e))?;
    Ok((trainer_from(&ckpt, &ckpt_path, extend_steps)?, lock))
}

/// The trainer of the run `ckpt` (read from `ckpt_path`) holds, put back exactly where the
/// checkpoint left it, after checking every stored value ([`crate::verify`]); `extend_steps`
/// lengthens the run.
pub fn trainer_from(
    ckpt: &Checkpoint,
    ckpt_path: &Path,
    extend_steps: Option<u64>,
) -> Result<Trainer, Error> {
    let mut cfg = verify::stored_config(ckpt, ckpt_path)?;
    if let Some(s) = extend_steps {
        if s < ckpt.step {
            return Err(Error::usage(format!(
                "--steps {s} is below the {} steps the checkpoint has already taken",
                ckpt.step
            )));
        }
        cfg.steps = s;
    }
    let dim = verify::stored_dim(&cfg, ckpt, ckpt_path)?;
    verify::tensors_fit(&cfg, dim, ckpt, ckpt_path)?;
    let mut trainer = Trainer::new(cfg)?;
    if trainer.data.dim != dim {
        return Err(Error::checkpoint(format!(
            "{}: the run was trained on {dim}-dimensional data, but {} now has {} columns",
            ckpt_path.display(),
            trainer.config.data.label(),
            trainer.data.dim
        )));
    }
    trainer.restore(ckpt, ckpt_path)?;
    Ok(trainer)
}

/// A fresh run's trainer in a new run directory `dir`, and the directory's lock.
pub fn fresh_trainer(config: TrainConfig, dir: &Path) -> Result<(Trainer, RunLock), Error> {
    let trainer = Trainer::new(config)?;
    crate::io::create_dir(dir)?;
    let lock = RunLock::acquire(dir, "train")?;
    if dir.join(CHECKPOINT).exists() {
        return Err(Error::usage(format!(
            "{} already holds a run; continue it with `ebm train --resume {}` or pick another --out",
            dir.display(),
            dir.display()
        )));
    }
    remove_stale_temps(dir);
    // a best checkpoint without a run beside it belongs to nothing
    let _ = std::fs::remove_file(dir.join(heldout::BEST));
    Ok((trainer, lock))
}

/// "`ebm train` (pid 123 on host h, started …)" from the lock file's JSON line.
fn describe_holder(text: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(text.trim()) else {
        return "another ebm process (it has not yet written its details)".into();
    };
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("?").to_string();
    format!(
        "`ebm {}` (pid {} on host {}, started {})",
        s("command"),
        v.get("pid").and_then(|p| p.as_u64()).unwrap_or(0),
        s("host"),
        s("started")
    )
}

/// The machine's name, without libc: the kernel's, then /etc/hostname, then $HOSTNAME.
pub fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .chain(std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Removes the temp files of [`WRITER_FILES`] left in `dir` by a writer that was killed
/// mid-write (`.<file>.tmp-<pid>-<n>`). Call it holding the directory's lock. Returns how
/// many were removed.
pub fn remove_stale_temps(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let stale = WRITER_FILES
            .iter()
            .any(|f| name.starts_with(&format!(".{f}.tmp-")));
        if stale
            && e.file_type().is_ok_and(|t| t.is_file())
            && std::fs::remove_file(e.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

/// The current UTC time as `YYYYmmdd-HHMMSS`, or `YYYY-mm-dd HH:MM:SS` when `readable`.
pub fn utc_timestamp(readable: bool) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // civil-from-days (H. Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    if readable {
        format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}")
    } else {
        format!("{y:04}{m:02}{d:02}-{hh:02}{mm:02}{ss:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_fails_naming_the_holder_and_frees_on_drop() {
        let dir = std::env::temp_dir().join(format!("ebm-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = RunLock::acquire(&dir, "train").unwrap();
        // a second handle, as another process would open it (flock locks are per open file)
        let err = RunLock::acquire(&dir, "train").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())) && msg.contains("`ebm train`"),
            "{msg}"
        );
        assert_eq!(err.exit_code(), 2);
        drop(first);
        let again = RunLock::acquire(&dir, "compare").unwrap();
        drop(again);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stale_temps_of_the_writer_go_and_nothing_else() {
        let dir = std::env::temp_dir().join(format!("ebm-temps-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for f in [
            ".checkpoint.safetensors.tmp-12-0",
            ".loss.png.tmp-9-3",
            ".samples-mala.npy.tmp-4-0",
            "checkpoint.safetensors",
            "notes.tmp-1",
        ] {
            std::fs::write(dir.join(f), b"x").unwrap();
        }
        assert_eq!(remove_stale_temps(&dir), 2);
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ".samples-mala.npy.tmp-4-0",
                "checkpoint.safetensors",
                "notes.tmp-1"
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn timestamps_have_their_shapes() {
        let a = utc_timestamp(false);
        assert_eq!(a.len(), 15);
        assert_eq!(&a[8..9], "-");
        let b = utc_timestamp(true);
        assert_eq!(b.len(), 19);
        assert_eq!(&b[4..5], "-");
    }
}
