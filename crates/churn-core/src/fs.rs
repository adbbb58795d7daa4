//! The one file-system helper every crate that writes output shares.

use std::io;
use std::path::Path;

/// [`std::fs::create_dir_all`], except that a symbolic link to a target that
/// does not exist is reported as such (the standard library says only "File
/// exists" for a path that, followed, does not exist).
pub fn create_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref();
    std::fs::create_dir_all(path).map_err(|error| match std::fs::read_link(path) {
        Ok(target) if !path.exists() => io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "a symbolic link to {}, which does not exist",
                target.display()
            ),
        ),
        _ => error,
    })
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
            text.contains("a symbolic link to") && text.contains("nowhere"),
            "{text}"
        );
        // A real directory behind the link: created through it as std does.
        std::fs::create_dir(dir.join("nowhere")).expect("target");
        create_dir_all(link.join("inner")).expect("through the link");
        assert!(dir.join("nowhere").join("inner").is_dir());
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
