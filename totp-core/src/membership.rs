//! Whether a user is in a group, as far as the name service can prove it (rule R22).
//!
//! A skip that rests on the user *not* being in a group (`require_group=`,
//! `ALL EXCEPT (group)`, a `-` rule on a group) is only as good as the answer it rests
//! on. glibc's `getgrouplist` leaves out a source that answers "unavailable" or "try
//! again" without telling the caller, and a group id without a name could be any group,
//! so "not in the list" is not "not a member". Membership is therefore three-valued, and
//! only [`Membership::NotMember`] may let a "not in the group" rule match.

/// What is known about one user's membership of one group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Membership {
    /// Proven: the group is the user's primary group, lists the user, or is in the
    /// user's group list.
    Member,
    /// Proven: the group was found, does not list the user, is not the primary group,
    /// and a group list that every source answered for does not contain it.
    NotMember,
    /// Anything less: a failed or empty lookup, or a group list that may be incomplete.
    Unknown,
}

/// A group as the name service returned it by name (`getgrnam_r`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupEntry {
    /// `gr_gid`.
    pub gid: u32,
    /// `gr_mem`: the names listed as members (a primary-group member is usually not).
    pub members: Vec<String>,
}

/// The user's group ids (`getgrouplist`), and whether every source answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupList {
    /// The ids found, primary group included.
    pub gids: Vec<u32>,
    /// False when some source reported a failure: an id missing from `gids` may then
    /// still be one of the user's groups.
    pub complete: bool,
}

/// The facts about one user and one group that membership is decided from.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a> {
    /// The user's canonical (NSS) name.
    pub user: &'a str,
    /// The user's primary group id (`pw_gid`).
    pub primary_gid: u32,
    /// The group looked up by name; `None` when the lookup failed or found nothing
    /// (a source that is down may be the one that holds the group).
    pub group: Option<&'a GroupEntry>,
    /// The user's group list; `None` when it could not be obtained.
    pub list: Option<&'a GroupList>,
}

/// Decides membership from the facts: positive evidence from any source proves
/// membership; non-membership needs the group entry and a complete group list.
pub fn decide(facts: &Facts<'_>) -> Membership {
    let Some(group) = facts.group else {
        return Membership::Unknown;
    };
    if group.gid == facts.primary_gid || group.members.iter().any(|m| m == facts.user) {
        return Membership::Member;
    }
    match facts.list {
        Some(list) if list.gids.contains(&group.gid) => Membership::Member,
        Some(list) if list.complete => Membership::NotMember,
        _ => Membership::Unknown,
    }
}

/// What a rule needs to know of one membership.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Question {
    /// Only a proven membership changes the outcome (`skip_group=`): "not a member" and
    /// "unknown" both ask for the code, so the walk that proves a group list complete
    /// (each source's `initgroups_dyn`) is not made, and the answer is never
    /// [`Membership::NotMember`].
    IsMember,
    /// A proven non-membership changes the outcome too (`require_group=`, the `(group)`
    /// items of a rule file).
    MemberOrNot,
}

/// [`decide`] the way a login asks: the group entry first, and the user's group list
/// (`list`, fetched only then: a lookup a rule does not need is not made) only where
/// the entry neither proves membership nor is missing. A non-membership proven that way
/// rests on the entry of the first source that has the name; the same name in another
/// source may be another group (another gid, other members), so it stands only when
/// `every_source` (asked only then) gives the group of that name in every source of
/// the group database and none of them makes the user a member; `None` (a source did
/// not answer) leaves it unknown. One proof for the module and the tools, so they
/// cannot disagree on who is a member.
///
/// One source may also hold the name twice (`/etc/group` with `g:x:500:` and
/// `g:x:501:alice`, two directory groups with one `cn`): its `getgrnam_r` answers with
/// the first alone, while the user's list holds the other's gid, and `id` shows the
/// user in `g`. So a non-membership ([`Question::MemberOrNot`]) stands only when, in
/// addition, no gid of the user's complete list is *named* `name` by any source:
/// `names_of` gives the names the sources call one gid by (each source's `getgrgid_r`;
/// none when no source knows it, a nameless gid that cannot be `name`), `None` when a
/// source did not answer, which leaves the membership unknown. Asked gid by gid, and
/// only for a non-membership that stands otherwise: a member is proven by the gid
/// found, and [`Question::IsMember`] never asks (its answer would only turn an
/// unknown, which asks for the code, into a member).
///
/// For [`Question::IsMember`], `list` is `getgrouplist`'s answer alone: its
/// completeness only decides whether the sources' groups of that name are asked (as
/// for a non-membership), and what the sources do not prove a membership is
/// [`Membership::Unknown`]. For [`Question::MemberOrNot`] it is the list every source
/// answered for as well.
#[allow(clippy::too_many_arguments)] // each fact is fetched lazily, by its own closure
pub fn prove<'a>(
    question: Question,
    user: &'a str,
    primary_gid: u32,
    name: &str,
    group: Option<&'a GroupEntry>,
    list: impl FnOnce() -> Option<&'a GroupList>,
    every_source: impl FnOnce() -> Option<Vec<GroupEntry>>,
    mut names_of: impl FnMut(u32) -> Option<Vec<String>>,
) -> Membership {
    let mut facts = Facts {
        user,
        primary_gid,
        group,
        list: None,
    };
    let from_entry = decide(&facts);
    if from_entry == Membership::Member || group.is_none() {
        return from_entry;
    }
    facts.list = list();
    let from_list = decide(&facts);
    if from_list != Membership::NotMember {
        return from_list;
    }
    let Some(entries) = every_source() else {
        return Membership::Unknown;
    };
    for entry in &entries {
        let m = decide(&Facts {
            group: Some(entry),
            ..facts
        });
        if m != Membership::NotMember {
            return m;
        }
    }
    if question == Question::IsMember {
        // `getgrouplist` alone proves no list complete.
        return Membership::Unknown;
    }
    let Some(list) = facts.list else {
        return Membership::Unknown;
    };
    // Each gid once (a list may hold one twice, the primary group's often).
    let mut gids = list.gids.clone();
    gids.sort_unstable();
    gids.dedup();
    for gid in gids {
        match names_of(gid) {
            Some(names) if names.iter().any(|n| n == name) => return Membership::Member,
            Some(_) => {}
            None => return Membership::Unknown,
        }
    }
    Membership::NotMember
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A proven non-member by the first source's entry is checked against the group
    /// of that name in every source: another source's group of the name that lists the
    /// user, or whose gid is in the user's list, makes a member; a source that did not
    /// answer leaves it unknown; none of them concerning the user keeps it proven. The
    /// sources are asked only for a non-membership.
    #[test]
    fn a_non_membership_needs_the_name_in_every_source() {
        use std::cell::Cell;
        let local = entry(500, &["bob"]);
        let full = list(&[100, 700], true);
        let run = |sources: Option<Vec<GroupEntry>>| {
            let asked = Cell::new(false);
            let m = prove(
                Question::MemberOrNot,
                "alice",
                100,
                "g",
                Some(&local),
                || Some(&full),
                || {
                    asked.set(true);
                    sources.clone()
                },
                |_| Some(Vec::new()),
            );
            (m, asked.get())
        };
        use Membership::*;
        assert_eq!(run(Some(vec![local.clone()])), (NotMember, true));
        assert_eq!(
            run(Some(vec![local.clone(), entry(600, &["carol"])])),
            (NotMember, true)
        );
        assert_eq!(
            run(Some(vec![local.clone(), entry(600, &["alice"])])),
            (Member, true)
        );
        assert_eq!(
            run(Some(vec![local.clone(), entry(700, &[])])),
            (Member, true)
        );
        assert_eq!(run(None), (Unknown, true));
        // A member by the entry: no source asked.
        let listed = entry(500, &["alice"]);
        let asked = Cell::new(false);
        let m = prove(
            Question::MemberOrNot,
            "alice",
            100,
            "g",
            Some(&listed),
            || Some(&full),
            || {
                asked.set(true);
                None
            },
            |_| None,
        );
        assert_eq!((m, asked.get()), (Member, false));
    }

    /// A question only a membership answers gets the same members (from the entry, the
    /// list, or the group of that name in another source) and never a non-membership;
    /// an incomplete list still asks no source. Control: the same facts prove the
    /// non-membership for a question that needs it.
    #[test]
    fn a_membership_question_never_proves_a_non_membership() {
        use Membership::*;
        let local = entry(500, &["bob"]);
        let glibc = list(&[100, 700], true);
        let ask = |question: Question, l: &GroupList, sources: Vec<GroupEntry>| {
            prove(
                question,
                "alice",
                100,
                "g",
                Some(&local),
                || Some(l),
                || Some(sources),
                |_| Some(Vec::new()),
            )
        };
        let none = || vec![local.clone()];
        assert_eq!(ask(Question::IsMember, &glibc, none()), Unknown);
        assert_eq!(ask(Question::MemberOrNot, &glibc, none()), NotMember);
        let shadowed = vec![local.clone(), entry(600, &["alice"])];
        assert_eq!(ask(Question::IsMember, &glibc, shadowed), Member);
        let by_gid = vec![local.clone(), entry(700, &[])];
        assert_eq!(ask(Question::IsMember, &glibc, by_gid), Member);
        assert_eq!(
            ask(Question::IsMember, &list(&[100, 500], true), none()),
            Member
        );
        let short = list(&[100], false);
        assert_eq!(
            ask(Question::IsMember, &short, vec![entry(600, &["alice"])]),
            Unknown
        );
    }

    /// One source holding the name twice (`g:x:500:` then `g:x:501:alice`): the entry
    /// found by name is the first, the user's list holds 501. A gid of the list that a
    /// source names `g` makes a member, a source that does not answer for one leaves it
    /// unknown, a gid no source knows is nameless. Control: every gid named otherwise
    /// (or not at all) keeps the non-membership. Only a non-membership that stands
    /// otherwise asks, each gid once; a membership question never asks.
    #[test]
    fn a_gid_of_the_list_named_like_the_group_makes_a_member() {
        use Membership::*;
        use std::cell::RefCell;
        let first = entry(500, &[]);
        let full = list(&[100, 501, 100, 700], true);
        let run =
            |question: Question, l: &GroupList, named: &dyn Fn(u32) -> Option<Vec<String>>| {
                let asked = RefCell::new(Vec::new());
                let m = prove(
                    question,
                    "alice",
                    100,
                    "g",
                    Some(&first),
                    || Some(l),
                    || Some(vec![first.clone()]),
                    |gid| {
                        asked.borrow_mut().push(gid);
                        named(gid)
                    },
                );
                (m, asked.into_inner())
            };
        let names = |pairs: &'static [(u32, &'static str)]| {
            move |gid: u32| {
                Some(
                    pairs
                        .iter()
                        .filter(|(g, _)| *g == gid)
                        .map(|(_, n)| (*n).to_owned())
                        .collect::<Vec<_>>(),
                )
            }
        };
        let dup = names(&[(100, "alice"), (501, "g"), (700, "staff")]);
        assert_eq!(
            run(Question::MemberOrNot, &full, &dup).0,
            Member,
            "the second g"
        );
        // Named g by a later source only (another source calls 501 otherwise).
        let later = names(&[(100, "alice"), (501, "devs"), (501, "g")]);
        assert_eq!(run(Question::MemberOrNot, &full, &later).0, Member);
        let other = names(&[(100, "alice"), (501, "devs"), (700, "staff")]);
        assert_eq!(
            run(Question::MemberOrNot, &full, &other),
            (NotMember, vec![100, 501, 700]),
            "control: no gid named g, each asked once"
        );
        let nameless = names(&[(100, "alice")]);
        assert_eq!(run(Question::MemberOrNot, &full, &nameless).0, NotMember);
        let down = |gid: u32| (gid != 501).then(Vec::new);
        assert_eq!(run(Question::MemberOrNot, &full, &down).0, Unknown);
        // A membership question never asks the gids.
        assert_eq!(run(Question::IsMember, &full, &dup), (Unknown, vec![]));
        // An incomplete list, or a member by the entry's gid, asks nothing either.
        let short = list(&[100, 501], false);
        assert_eq!(run(Question::MemberOrNot, &short, &dup), (Unknown, vec![]));
        let holds = list(&[100, 500], true);
        assert_eq!(run(Question::MemberOrNot, &holds, &dup), (Member, vec![]));
    }

    fn entry(gid: u32, members: &[&str]) -> GroupEntry {
        GroupEntry {
            gid,
            members: members.iter().map(|m| (*m).to_owned()).collect(),
        }
    }

    fn list(gids: &[u32], complete: bool) -> GroupList {
        GroupList {
            gids: gids.to_vec(),
            complete,
        }
    }

    #[test]
    fn membership_table() {
        use Membership::*;
        let mfa = entry(500, &["alice"]);
        let other = entry(600, &["bob"]);
        let full = list(&[100, 500], true);
        let short = list(&[100], false);
        let none_of_them = list(&[100], true);
        type Case<'a> = (
            &'a str,
            u32,
            Option<&'a GroupEntry>,
            Option<&'a GroupList>,
            Membership,
        );
        #[rustfmt::skip]
        let cases: &[Case<'_>] = &[
            ("listed in gr_mem", 100, Some(&mfa), None, Member),
            ("primary group", 600, Some(&other), None, Member),
            ("in the group list", 100, Some(&entry(500, &[])), Some(&full), Member),
            ("in an incomplete list still counts", 100, Some(&entry(100, &[])), Some(&short), Member),
            ("proven absent", 100, Some(&other), Some(&none_of_them), NotMember),
            ("list may be incomplete", 100, Some(&other), Some(&short), Unknown),
            ("no list", 100, Some(&other), None, Unknown),
            ("group unresolved", 100, None, Some(&full), Unknown),
            ("group unresolved, primary gid", 500, None, Some(&full), Unknown),
        ];
        for (what, primary_gid, group, list, want) in cases {
            let facts = Facts {
                user: "alice",
                primary_gid: *primary_gid,
                group: *group,
                list: *list,
            };
            assert_eq!(decide(&facts), *want, "{what}");
        }
    }

    #[test]
    fn names_are_compared_exactly() {
        let g = entry(500, &["Alice", "alice2"]);
        let facts = Facts {
            user: "alice",
            primary_gid: 1,
            group: Some(&g),
            list: Some(&list(&[1], true)),
        };
        assert_eq!(decide(&facts), Membership::NotMember);
    }

    /// The group list is fetched exactly where the entry leaves the answer open: it
    /// can prove membership (a supplementary group the entry does not list) and is the
    /// only proof of non-membership, while a lookup no answer needs is not made (a
    /// name service that is down may take long to say so).
    #[test]
    fn prove_fetches_the_group_list_only_where_the_entry_leaves_it_open() {
        use std::cell::Cell;
        let full = list(&[100, 500], true);
        let none_of_them = list(&[100], true);
        let ask = |group: Option<&GroupEntry>, l: &GroupList| {
            let fetched = Cell::new(false);
            let m = prove(
                Question::MemberOrNot,
                "alice",
                100,
                "g",
                group,
                || {
                    fetched.set(true);
                    Some(l)
                },
                || Some(Vec::new()),
                |_| Some(Vec::new()),
            );
            (m, fetched.get())
        };
        let listed = entry(500, &["alice"]);
        assert_eq!(ask(Some(&listed), &full), (Membership::Member, false));
        assert_eq!(ask(None, &full), (Membership::Unknown, false));
        let unlisted = entry(500, &[]);
        assert_eq!(ask(Some(&unlisted), &full), (Membership::Member, true));
        assert_eq!(
            ask(Some(&unlisted), &none_of_them),
            (Membership::NotMember, true)
        );
    }
}

/// Debian's OpenSSH "user-group-modes" rule: a group-writable home or directory is as
/// safe as a private one when its group is the owner's private group: the owner's
/// primary group, named like the owner, with no member other than the owner (a
/// user-private group, UPG). `group` is what the name service says of the group named
/// like `user`; `None` (no such group, or the lookup failed) is never private.
/// `undecodable_members` counts the members the name service listed whose names could
/// not be decoded (not UTF-8): each is someone, and not the user, so any makes the group
/// shared; dropping them would make a shared group look private.
pub fn is_private_group(
    user: &str,
    primary_gid: u32,
    dir_gid: u32,
    group: Option<&GroupEntry>,
    undecodable_members: usize,
) -> bool {
    match group {
        Some(g) => {
            g.gid == primary_gid
                && dir_gid == primary_gid
                && undecodable_members == 0
                && g.members.iter().all(|m| m == user)
        }
        None => false,
    }
}

#[cfg(test)]
mod private_group_tests {
    use super::*;

    fn entry(gid: u32, members: &[&str]) -> GroupEntry {
        GroupEntry {
            gid,
            members: members.iter().map(|m| m.to_string()).collect(),
        }
    }

    #[test]
    fn only_the_owners_own_group_without_other_members_is_private() {
        assert!(is_private_group(
            "alice",
            1000,
            1000,
            Some(&entry(1000, &[])),
            0
        ));
        assert!(is_private_group(
            "alice",
            1000,
            1000,
            Some(&entry(1000, &["alice"])),
            0
        ));
        // Another member, another gid, the directory in another group, no answer.
        assert!(!is_private_group(
            "alice",
            1000,
            1000,
            Some(&entry(1000, &["bob"])),
            0
        ));
        assert!(!is_private_group(
            "alice",
            1000,
            1000,
            Some(&entry(1001, &[])),
            0
        ));
        assert!(!is_private_group(
            "alice",
            1000,
            100,
            Some(&entry(1000, &[])),
            0
        ));
        assert!(!is_private_group("alice", 1000, 1000, None, 0));
    }

    /// A member whose name could not be decoded is another member, not "no member":
    /// with only the owner (or nobody) listed besides it, the group is still shared.
    #[test]
    fn a_member_that_cannot_be_decoded_makes_the_group_shared() {
        for listed in [&[][..], &["alice"][..]] {
            let g = entry(1000, listed);
            assert!(is_private_group("alice", 1000, 1000, Some(&g), 0));
            assert!(!is_private_group("alice", 1000, 1000, Some(&g), 1));
            assert!(!is_private_group("alice", 1000, 1000, Some(&g), 3));
        }
    }
}
