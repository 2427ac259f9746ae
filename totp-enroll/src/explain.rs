//! `totp-enroll explain`: which access rule decides a login, and why.
//!
//! The decision comes from `totp_core::access`, the same code the module runs,
//! so the answer cannot drift from what a real login would get.

use totp_core::access::{self, AccessRules, Groups, LoginItems, ParseOptions};
use totp_core::membership::{self, Facts, GroupEntry, GroupList};
use totp_os::nss;
use totp_os::safefile::{self, FileError, FileRules};

use crate::args::ExplainArgs;
use crate::error::Error;

/// The module reads the rule file only when root owns it and nobody else can
/// write it; read bits for group and other are harmless.
const RULE_FILE_PERM: u32 = 0o644;

pub fn run(args: ExplainArgs) -> Result<u8, Error> {
    let path = std::path::absolute(&args.accessfile)
        .map_err(|e| Error::failed(format!("\"{}\": {e}", args.accessfile.display())))?;
    let mut rules = FileRules::new(vec![0]);
    rules.allowed_perm = RULE_FILE_PERM;
    rules.max_size = access::MAX_FILE_BYTES;
    let text = match safefile::open_checked(&path, &rules) {
        Ok(opened) => opened.contents.to_vec(),
        // A draft the module would refuse is still worth explaining, with a warning.
        Err(
            e @ (FileError::BadOwner { .. }
            | FileError::BadMode { .. }
            | FileError::UnsafeDirectory { .. }),
        ) => {
            println!(
                "warning: the module would refuse \"{}\" ({e}) and require the code for everybody",
                path.display()
            );
            let mut draft = FileRules::new(vec![current_uid(), 0]);
            draft.allowed_perm = 0o777;
            draft.max_size = access::MAX_FILE_BYTES;
            safefile::open_checked(&path, &draft)
                .map_err(|e| Error::failed(format!("\"{}\": {e}", path.display())))?
                .contents
                .to_vec()
        }
        Err(e) => return Err(Error::failed(format!("\"{}\": {e}", path.display()))),
    };
    let parsed = AccessRules::parse(&text, ParseOptions::default()).map_err(|e| {
        Error::failed(format!(
            "\"{}\" is rejected, so the module requires the code for everybody: {e}",
            path.display()
        ))
    })?;

    let pw = nss::lookup_user_by_name(&args.user)
        .map_err(|e| Error::failed(format!("cannot look up \"{}\": {e}", args.user)))?
        .ok_or_else(|| Error::failed(format!("no such user \"{}\"", args.user)))?;
    // Groups are proven one at a time exactly as the module does: a failed or
    // incomplete lookup leaves a (group) item undecided, and the explanation says so.
    let list = nss::lookup_group_list(&pw.name, pw.gid)
        .ok()
        .map(|l| GroupList {
            gids: l.gids,
            complete: l.complete,
        });
    let ask = |group: &str| {
        let entry = nss::lookup_group_by_name(group)
            .ok()
            .flatten()
            .map(|g| GroupEntry {
                gid: g.gid,
                members: g.members,
            });
        membership::decide(&Facts {
            user: &pw.name,
            primary_gid: pw.gid,
            group: entry.as_ref(),
            list: list.as_ref(),
        })
    };
    let items = LoginItems {
        user: &pw.name,
        groups: Groups::Each(&ask),
        rhost: Some(args.rhost.as_bytes()),
        tty: args.tty.as_deref().map(str::as_bytes),
        service: args.service.as_deref().map(str::as_bytes),
    };
    println!("{}", parsed.explain(&items));
    Ok(0)
}

fn current_uid() -> libc::uid_t {
    crate::target::Caller::current().uid
}
