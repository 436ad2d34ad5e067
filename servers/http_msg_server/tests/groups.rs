//! CreateGroup and ChangeMembers over HTTP, seen by clients logged in at a
//! real msg_server: group lists, group info, the change notify, messages.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::time::Duration;
use tt_client::Event;
use tt_proto::IM::BaseDefine::{GroupModifyType, GroupType};

#[test]
fn groups_made_and_changed_over_http_are_what_clients_see() {
    let hc = HttpCluster::start("");
    let addr = hc.addr();
    let mut alice = hc.login("alice");
    let mut bob = hc.login("bob");
    let mut carol = hc.login("carol");
    let mut dave = hc.login("dave");

    // A normal group: listed, with its name, avatar, type and exact members.
    let (c, g) = create_group(&addr, "team", 1, &[1, 2, 3]);
    assert_eq!(c, 0);
    assert!(g > 0);
    for s in [&mut alice, &mut bob, &mut carol] {
        assert_eq!(group_ids(s), vec![g]);
    }
    assert!(group_ids(&mut dave).is_empty());
    let info = group_info(&mut alice, g);
    assert_eq!(
        (
            info.group_name.as_str(),
            info.group_avatar.as_str(),
            info.group_type,
            info.group_creator_id
        ),
        (
            "team",
            "http://img/team.png",
            GroupType::GROUP_TYPE_NORMAL,
            0
        ),
        "creator 0, as the C++ stores it"
    );
    let mut members = info.group_member_list.clone();
    members.sort_unstable();
    assert_eq!(members, vec![1, 2, 3], "req_user_id is not made a member");

    // A temporary group: not in the normal list, but known by its info.
    let (c, t) = create_group(&addr, "chat", 2, &[1, 4]);
    assert_eq!(c, 0);
    assert_ne!(t, g);
    assert_eq!(group_ids(&mut alice), vec![g]);
    assert!(group_ids(&mut dave).is_empty());
    assert_eq!(
        group_info(&mut dave, t).group_type,
        GroupType::GROUP_TYPE_TMP
    );

    // The group works for messages.
    let sent = alice.send_group_text(g, "hello team").unwrap();
    assert!(sent > 0);
    let got = loop {
        match bob.next_event(Duration::from_secs(30)).unwrap() {
            Some(Event::Message(m)) => break m,
            Some(_) => continue,
            None => panic!("no group message"),
        }
    };
    assert_eq!((got.to_session, got.text.as_str()), (g, "hello team"));

    // Add dave: every online member, dave too, is told.
    assert_eq!(change_members(&addr, g, 1, &[4]), 0);
    for s in [&mut alice, &mut bob, &mut carol, &mut dave] {
        let n = change_notify(s, g);
        let mut cur = n.cur_user_id_list.clone();
        cur.sort_unstable();
        assert_eq!(n.change_type, GroupModifyType::GROUP_MODIFY_TYPE_ADD);
        assert_eq!((n.chg_user_id_list, cur), (vec![4], vec![1, 2, 3, 4]));
    }
    assert_eq!(group_ids(&mut dave), vec![g]);

    // Remove bob: bob is told too, and the group is gone from his list.
    assert_eq!(change_members(&addr, g, 2, &[2]), 0);
    for s in [&mut alice, &mut bob, &mut carol, &mut dave] {
        let n = change_notify(s, g);
        let mut cur = n.cur_user_id_list.clone();
        cur.sort_unstable();
        assert_eq!(n.change_type, GroupModifyType::GROUP_MODIFY_TYPE_DEL);
        assert_eq!((n.chg_user_id_list, cur), (vec![2], vec![1, 3, 4]));
    }
    assert!(group_ids(&mut bob).is_empty());
    let mut members = group_info(&mut carol, g).group_member_list;
    members.sort_unstable();
    assert_eq!(members, vec![1, 3, 4]);

    // Adding only members already in fails, as in the C++, and tells nobody.
    assert_eq!(change_members(&addr, g, 1, &[1, 3]), 12);
    let sent = alice.send_group_text(g, "after").unwrap();
    let mut before = Vec::new();
    let got = loop {
        match carol.next_event(Duration::from_secs(30)).unwrap() {
            Some(Event::Message(m)) => break m,
            Some(Event::Other(p)) => before.push(p.command_id()),
            Some(_) => continue,
            None => panic!("no group message"),
        }
    };
    assert_eq!(got.msg_id, sent);
    assert!(
        !before.contains(&tt_proto::cid::GROUP_CHANGE_MEMBER_NOTIFY),
        "a failed change is not announced"
    );
}

#[test]
fn twenty_parallel_creates_get_twenty_ids() {
    let hc = HttpCluster::start("");
    let addr = hc.addr();
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || create_group(&addr, &format!("g{i}"), 1, &[1, 2]))
        })
        .collect();
    let mut ids: Vec<u32> = handles
        .into_iter()
        .map(|h| {
            let (c, id) = h.join().unwrap();
            assert_eq!(c, 0);
            id
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 20, "distinct ids: {ids:?}");
    let mut alice = hc.login("alice");
    let mut listed = group_ids(&mut alice);
    listed.sort_unstable();
    assert_eq!(listed, ids);
}
