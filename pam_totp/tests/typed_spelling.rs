//! Migration from google-authenticator with `secret=…/${USER}`: GA pastes the name typed
//! at login into the path, we paste the name service's canonical name (pam_totp(8)). A
//! store whose files were named by a typed spelling (`ALICE` where NSS answers `alice`)
//! must not read as "not enrolled": with `nullok` that would skip the second factor
//! without a word. The flow is driven through [`pam_totp::auth::authenticate_with`] with a
//! fake PAM handle and a fake name service over real files in a scratch directory (opened
//! as the identity of the test process itself, as in `faults.rs`).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use pam_totp::auth::authenticate_with;
use pam_totp::error::{AuthError, Outcome};
use pam_totp::pamio::{ConvError, ItemKind, Level, PamIo, Style};
use pam_totp::system::{ClockError, System};
use totp_core::base32;
use totp_core::membership::{GroupEntry, GroupList};
use totp_core::otp::{self, Algorithm, Digits};
use totp_core::secret::Secret;
use totp_os::creds::{self, Identity};
use totp_os::nss::{NssError, Passwd};
use zeroize::Zeroizing;

const SECRET_B32: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
/// 2026-01-01T00:00:10Z, the fake clock.
const NOW: i64 = 1_767_225_610;
/// The canonical name, and the spelling typed at login that NSS also resolves to it.
const CANONICAL: &str = "alice";
const TYPED: &str = "ALICE";

fn me() -> Identity {
    creds::current_fs_ids().expect("read /proc/thread-self/status")
}

/// A name service that answers `alice` for both spellings (a case-insensitive directory
/// service), with the scratch directory as the home.
struct FakeSys {
    home: PathBuf,
    me: Identity,
}

impl FakeSys {
    fn passwd(&self) -> Passwd {
        Passwd {
            name: CANONICAL.into(),
            uid: self.me.uid,
            gid: self.me.gid,
            dir: self.home.clone(),
        }
    }
}

impl System for FakeSys {
    fn now(&self) -> Result<i64, ClockError> {
        Ok(NOW)
    }
    fn user_by_name(&self, name: &str) -> Result<Option<Passwd>, NssError> {
        Ok(name.eq_ignore_ascii_case(CANONICAL).then(|| self.passwd()))
    }
    fn user_by_uid(&self, uid: u32) -> Result<Option<Passwd>, NssError> {
        Ok((uid == self.me.uid).then(|| self.passwd()))
    }
    fn identity(&self, _pw: &Passwd) -> Result<Identity, NssError> {
        Ok(self.me.clone())
    }
    fn group_by_name(&self, _name: &str) -> Result<Option<GroupEntry>, NssError> {
        Ok(None)
    }
    fn group_list(&self, _pw: &Passwd) -> Result<GroupList, NssError> {
        Ok(GroupList {
            gids: vec![self.me.gid],
            complete: true,
        })
    }
    fn uptime(&self) -> Option<u64> {
        Some(86_400)
    }
}

struct FakePam {
    user: &'static str,
    answers: VecDeque<String>,
    prompts: usize,
    logs: RefCell<Vec<(Level, String)>>,
}

impl PamIo for FakePam {
    fn user(&mut self) -> Option<Vec<u8>> {
        Some(self.user.as_bytes().to_vec())
    }
    fn item(&self, kind: ItemKind) -> Option<Vec<u8>> {
        match kind {
            ItemKind::Service => Some(b"spelling".to_vec()),
            ItemKind::RHost => Some(b"192.0.2.7".to_vec()),
            _ => None,
        }
    }
    fn authtok(&self) -> Option<Zeroizing<Vec<u8>>> {
        None
    }
    fn set_authtok(&mut self, _value: &[u8]) -> Result<(), ConvError> {
        Ok(())
    }
    fn converse(
        &mut self,
        style: Style,
        _text: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, ConvError> {
        if !matches!(style, Style::PromptEchoOff | Style::PromptEchoOn) {
            return Ok(None);
        }
        self.prompts += 1;
        self.answers
            .pop_front()
            .map(|a| Some(Zeroizing::new(a.into_bytes())))
            .ok_or(ConvError::Failed)
    }
    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.to_owned()));
    }
}

/// A home (mode 0700) with a store directory for secret files named by user name.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        // Below directories only their owner can write: the state store refuses a
        // state directory below /tmp (anyone could create it first).
        let root = me().uid == 0;
        let base = if root {
            PathBuf::from("/run/pam_totp-tests")
        } else {
            PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        };
        fs::create_dir_all(&base).expect("test base");
        let dir = tempfile::Builder::new()
            .prefix("pam_totp-spelling")
            .tempdir_in(&base)
            .expect("tempdir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).expect("chmod");
        let h = Home { dir };
        fs::create_dir(h.store()).expect("store dir");
        fs::set_permissions(h.store(), fs::Permissions::from_mode(0o700)).expect("chmod");
        h
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn store(&self) -> PathBuf {
        self.path().join("store")
    }
    fn put(&self, name: &str) {
        let p = self.store().join(name);
        fs::write(&p, format!("{SECRET_B32}\n\" TOTP_AUTH\n")).expect("write secret");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    fn remove(&self, name: &str) {
        fs::remove_file(self.store().join(name)).expect("rm");
    }
}

fn code_at(unix: i64) -> String {
    let secret = Secret::new(base32::decode_lenient(SECRET_B32.as_bytes()).expect("b32"));
    let v = otp::totp(&secret, unix, 30, Algorithm::Sha1, Digits::SIX).expect("code");
    otp::format_code(v, Digits::SIX)
}

fn login(home: &Home, extra: &[&str], user: &'static str) -> (Result<Outcome, AuthError>, FakePam) {
    let sys = FakeSys {
        home: home.path().to_path_buf(),
        me: me(),
    };
    let mut pam = FakePam {
        user,
        answers: [code_at(NOW)].into_iter().collect(),
        prompts: 0,
        logs: RefCell::new(Vec::new()),
    };
    let state_dir = format!("state_dir={}", home.path().join("state").display());
    let secret = format!("secret={}/${{USER}}", home.store().display());
    let argv: Vec<&[u8]> = [state_dir.as_bytes(), secret.as_bytes()]
        .into_iter()
        .chain(extra.iter().map(|a| a.as_bytes()))
        .collect();
    let r = authenticate_with(&mut pam, &argv, &sys);
    (r, pam)
}

fn logged(pam: &FakePam, part: &str) -> bool {
    pam.logs.borrow().iter().any(|(_, m)| m.contains(part))
}

/// Both modes GA has: the user's own file (`secret=` only) and a store (`user=`).
fn modes() -> [Vec<String>; 2] {
    [Vec::new(), vec![format!("user={}", me().uid)]]
}

#[test]
fn a_file_named_by_the_typed_spelling_is_not_mistaken_for_no_file() {
    for mode in modes() {
        let mode: Vec<&str> = mode.iter().map(String::as_str).collect();
        for nullok in [None, Some("nullok")] {
            let home = Home::new();
            let args: Vec<&str> = mode.iter().copied().chain(nullok).collect();
            // GA's store: the file is named as the user typed the name.
            home.put(TYPED);
            let (r, pam) = login(&home, &args, TYPED);
            assert!(
                matches!(r, Ok(Outcome::Deny(_))),
                "{args:?}: enrolled under the typed spelling, so never skipped: {r:?}"
            );
            assert_eq!(pam.prompts, 1, "{args:?}");
            let hint = format!("{}/{TYPED} exists", home.store().display());
            assert!(
                logged(&pam, &hint) && logged(&pam, "rename"),
                "{args:?}: the log says which file to rename: {:#?}",
                pam.logs.borrow()
            );

            // Controls: renamed to the canonical name, the code works ...
            home.remove(TYPED);
            home.put(CANONICAL);
            let (r, _) = login(&home, &args, TYPED);
            assert_eq!(r, Ok(Outcome::Success), "{args:?}");
            // ... and with no file under either name, nullok still skips.
            home.remove(CANONICAL);
            let (r, pam) = login(&home, &args, TYPED);
            if nullok.is_some() {
                assert_eq!(r, Ok(Outcome::Ignore), "{args:?}");
                assert_eq!(pam.prompts, 0, "{args:?}");
            } else {
                assert!(matches!(r, Ok(Outcome::Deny(_))), "{args:?}: {r:?}");
            }
            assert!(!logged(&pam, "rename"), "{args:?}");
        }
    }
}
