//! The file-system helpers every crate that writes output shares: creating
//! an output directory, and writing a file or a directory so that a reader
//! (or a crash) never sees half of it.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// [`std::fs::create_dir_all`], except that a symbolic link to a target that
/// does not exist, the path itself or one of its parents, is reported as such
/// (the standard library says only "File exists").
pub fn create_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref();
    std::fs::create_dir_all(path).map_err(|error| {
        path.ancestors()
            .find_map(|at| {
                let target = std::fs::read_link(at).ok().filter(|_| !at.exists())?;
                let which = if at == path {
                    String::new()
                } else {
                    format!("{} is ", at.display())
                };
                Some(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "{which}a symbolic link to {}, which does not exist",
                        target.display()
                    ),
                ))
            })
            .unwrap_or(error)
    })
}

/// Writes `path` whole or not at all, and durably: the content goes to a
/// temporary file beside it, which is flushed and synced, renamed over
/// `path`, and then the directory is synced so the rename survives a crash.
/// On error the temporary file is removed and `path` is left as it was.
pub fn write_atomically<E: From<io::Error>>(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<(), E>,
) -> Result<(), E> {
    let temp = temporary_sibling(path);
    let result = (|| {
        let mut out = BufWriter::new(File::create(&temp)?);
        write(&mut out)?;
        out.flush()?;
        drop(out);
        commit_file(&temp, path)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Moves a fully written staging directory to `target` as one rename: each
/// file in it is synced first, then the rename, then the parent directory,
/// so `target` appears complete or not at all.
pub fn publish_dir(staging: &Path, target: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(staging)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            File::open(entry.path())?.sync_all()?;
        }
    }
    sync_dir(staging)?;
    std::fs::rename(staging, target)?;
    sync_parent(target)
}

/// Publishes a fully written temporary file as `path`: syncs it, renames it
/// over `path`, syncs the directory. For writers that stream into
/// [`temporary_sibling`] themselves (a file too large to hold in memory).
pub fn commit_file(temp: &Path, path: &Path) -> io::Result<()> {
    File::open(temp)?.sync_all()?;
    std::fs::rename(temp, path)?;
    sync_parent(path)
}

/// `dir/.name.tmp-PID`: hidden, unique to this process, on the same file
/// system as `path` so that the rename is atomic.
pub fn temporary_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => sync_dir(Path::new(".")),
    }
}

/// Syncs a directory's entries (where the platform allows opening one).
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_dangling_link_is_named_with_its_target() {
        let dir = std::env::temp_dir().join(format!("churn-core-fs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let link = dir.join("out");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(dir.join("nowhere"), &link).expect("symlink");
        let error = create_dir_all(&link).expect_err("a link to nowhere");
        let text = error.to_string();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        assert!(
            text.starts_with("a symbolic link to") && text.contains("nowhere"),
            "{text}"
        );
        // Below the link: the link is named.
        let text = create_dir_all(link.join("inner"))
            .expect_err("a link to nowhere above")
            .to_string();
        assert!(
            text.starts_with(&format!("{} is a symbolic link to", link.display())),
            "{text}"
        );
        // A real directory behind the link: created through it as std does.
        std::fs::create_dir(dir.join("nowhere")).expect("target");
        create_dir_all(link.join("inner")).expect("through the link");
        assert!(dir.join("nowhere").join("inner").is_dir());
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn an_atomic_write_replaces_whole_or_leaves_the_old_file() {
        let dir = std::env::temp_dir().join(format!("churn-core-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("out.json");
        write_atomically(&path, |w| w.write_all(b"first")).expect("written");
        assert_eq!(std::fs::read(&path).expect("read"), b"first");
        let failed: io::Result<()> = write_atomically(&path, |w| {
            w.write_all(b"half")?;
            Err(io::Error::other("stopped half way"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&path).expect("read"), b"first");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .expect("list")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left.len(), 1, "no temporary file left: {left:?}");

        let staging = dir.join(".staging");
        std::fs::create_dir_all(&staging).expect("staging");
        std::fs::write(staging.join("a.bin"), b"a").expect("write");
        publish_dir(&staging, &dir.join("published")).expect("published");
        assert_eq!(
            std::fs::read(dir.join("published/a.bin")).expect("read"),
            b"a"
        );
        assert!(!staging.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
