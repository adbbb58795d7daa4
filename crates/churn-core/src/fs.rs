//! The one file-system helper every crate that writes output shares.

use std::io;
use std::path::Path;

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
}
