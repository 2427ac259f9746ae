//! The SELinux label of a rewritten file.
//!
//! A rename gives the new file the directory's default type, which locks
//! GA-compatible policies out (GA #93/#101), so the temp file takes the label of the
//! file it replaces. The xattr calls go through rustix: no hand-written `unsafe`.

use std::fs::File;

use rustix::fs::XattrFlags;
use rustix::io::Errno;

use super::FileError;

const SELINUX_XATTR: &str = "security.selinux";

/// Longest label read. Real labels are well under 256 bytes; a longer one is an
/// error rather than a truncated copy.
const MAX_LABEL: usize = 1024;

/// Gives `to` the SELinux label of `from`. No label (or no SELinux) means nothing to
/// do.
pub(super) fn copy_selinux_label(from: &File, to: &File) -> Result<(), FileError> {
    copy_xattr(from, to, SELINUX_XATTR)
}

// The attribute name is a parameter so that tests can run the same code with a
// `user.` attribute on a machine without SELinux.
fn copy_xattr(from: &File, to: &File, name: &str) -> Result<(), FileError> {
    let Some(label) = read_xattr(from, name)? else {
        return Ok(());
    };
    if read_xattr(to, name)?.as_deref() == Some(label.as_slice()) {
        return Ok(());
    }
    rustix::fs::fsetxattr(to, name, &label, XattrFlags::empty())
        .map_err(|e| os("set SELinux label", e))
}

fn read_xattr(file: &File, name: &str) -> Result<Option<Vec<u8>>, FileError> {
    let mut buf = vec![0u8; MAX_LABEL];
    match rustix::fs::fgetxattr(file, name, &mut buf[..]) {
        Ok(n) => {
            buf.truncate(n);
            Ok(Some(buf))
        }
        Err(Errno::NODATA | Errno::OPNOTSUPP) => Ok(None),
        Err(e) => Err(os("read SELinux label", e)),
    }
}

fn os(op: &'static str, e: Errno) -> FileError {
    FileError::Os {
        op,
        errno: e.raw_os_error(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // tmpfs and most test filesystems carry no SELinux label (or refuse the
    // attribute outright): both must read as "no label", never as an error, or every
    // rewrite would fail on a machine without SELinux.
    #[test]
    fn a_file_without_a_label_reads_as_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = File::create(dir.path().join("f")).expect("create");
        assert_eq!(read_xattr(&f, SELINUX_XATTR), Ok(None));
        let g = File::create(dir.path().join("g")).expect("create");
        assert_eq!(copy_selinux_label(&f, &g), Ok(()));
    }

    // A `user.` attribute stands in for the label, so the read/compare/write path runs
    // with real kernel calls (the test directory is on a filesystem with user xattrs).
    #[test]
    fn an_attribute_is_copied_to_the_new_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = File::create(dir.path().join("a")).expect("create");
        let b = File::create(dir.path().join("b")).expect("create");
        let name = "user.pam_totp_label";
        rustix::fs::fsetxattr(&a, name, b"system_u:object_r:x_t:s0", XattrFlags::empty())
            .expect("the test filesystem supports user xattrs");
        assert_eq!(read_xattr(&b, name), Ok(None));
        copy_xattr(&a, &b, name).expect("copy");
        assert_eq!(
            read_xattr(&b, name),
            Ok(Some(b"system_u:object_r:x_t:s0".to_vec()))
        );
        // Already equal: nothing to write, still fine.
        copy_xattr(&a, &b, name).expect("copy again");
    }
}
