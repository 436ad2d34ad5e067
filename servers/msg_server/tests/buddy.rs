//! Client commands msg_server relays to the real db_proxy_server and back
//! by attach data: user info, all users, departments, sign info (with its
//! notify through route_server), push shield, device token.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use mysql::prelude::Queryable;
use tt_proto::IM::BaseDefine::{BuddyListCmdID, LoginCmdID};
use tt_proto::IM::Buddy::{
    IMAllUserReq, IMAllUserRsp, IMChangeSignInfoReq, IMChangeSignInfoRsp, IMDepartmentReq,
    IMDepartmentRsp, IMSignInfoChangedNotify, IMUsersInfoReq, IMUsersInfoRsp,
};
use tt_proto::IM::Login::{
    IMDeviceTokenReq, IMDeviceTokenRsp, IMPushShieldReq, IMPushShieldRsp, IMQueryPushShieldReq,
    IMQueryPushShieldRsp,
};

use BuddyListCmdID as B;
use LoginCmdID as L;

#[test]
fn buddy_and_settings_commands_are_relayed_to_the_right_client() {
    let cluster = Cluster::start();
    let db = cluster.db.as_ref().unwrap();
    db.conn()
        .query_drop(
            "INSERT INTO IMDepart (id, departName, priority, parentId, status, created, updated) \
             VALUES (1, 'Eng', 5, 0, 0, 1, 500)",
        )
        .unwrap();
    let ms1 = cluster.start_msg_server();
    let ms2 = cluster.start_msg_server();
    let (mut alice, _) = login(ms1.port, "alice", password("alice"), PC);
    let (mut bob, _) = login(ms2.port, "bob", password("bob"), PC);
    let (mut carol, _) = login(ms1.port, "carol", password("carol"), PC);

    // The user id is the logged-in user's, whatever the client wrote.
    let req = IMUsersInfoReq {
        user_id: 99,
        user_id_list: vec![2, 3],
        attach_data: None,
    };
    let (_, rsp) = ask::<_, IMUsersInfoRsp>(
        &mut alice,
        SID_BUDDY,
        B::CID_BUDDY_LIST_USER_INFO_REQUEST as u16,
        1,
        &req,
        B::CID_BUDDY_LIST_USER_INFO_RESPONSE as u16,
    );
    assert_eq!(rsp.user_id, 1);
    let mut names: Vec<String> = rsp
        .user_info_list
        .iter()
        .map(|u| u.user_real_name.clone())
        .collect();
    names.sort();
    assert_eq!(names, vec!["bob", "carol"]);
    assert_eq!(rsp.attach_data, None);

    let req = IMAllUserReq {
        user_id: 0,
        latest_update_time: 0,
        attach_data: None,
    };
    let (_, rsp) = ask::<_, IMAllUserRsp>(
        &mut bob,
        SID_BUDDY,
        B::CID_BUDDY_LIST_ALL_USER_REQUEST as u16,
        2,
        &req,
        B::CID_BUDDY_LIST_ALL_USER_RESPONSE as u16,
    );
    assert_eq!((rsp.user_id, rsp.user_list.len()), (2, USERS.len()));

    let req = IMDepartmentReq {
        user_id: 0,
        latest_update_time: 0,
        attach_data: None,
    };
    let (_, rsp) = ask::<_, IMDepartmentRsp>(
        &mut alice,
        SID_BUDDY,
        B::CID_BUDDY_LIST_DEPARTMENT_REQUEST as u16,
        3,
        &req,
        B::CID_BUDDY_LIST_DEPARTMENT_RESPONSE as u16,
    );
    assert_eq!(rsp.user_id, 1);
    assert_eq!(rsp.dept_list.len(), 1);
    assert_eq!(rsp.dept_list[0].dept_name, "Eng");

    // A new signature: answered to alice, announced to everyone everywhere.
    let req = IMChangeSignInfoReq {
        user_id: 0,
        sign_info: "busy 忙".into(),
        attach_data: None,
    };
    let (_, rsp) = ask::<_, IMChangeSignInfoRsp>(
        &mut alice,
        SID_BUDDY,
        B::CID_BUDDY_LIST_CHANGE_SIGN_INFO_REQUEST as u16,
        4,
        &req,
        B::CID_BUDDY_LIST_CHANGE_SIGN_INFO_RESPONSE as u16,
    );
    assert_eq!((rsp.user_id, rsp.result_code), (1, 0));
    for c in [&mut alice, &mut bob, &mut carol] {
        let (_, n) = c
            .recv_cmd::<IMSignInfoChangedNotify>(B::CID_BUDDY_LIST_SIGN_INFO_CHANGED_NOTIFY as u16);
        assert_eq!((n.changed_user_id, n.sign_info.as_str()), (1, "busy 忙"));
    }

    let req = IMPushShieldReq {
        user_id: 0,
        shield_status: 1,
        attach_data: None,
    };
    let (_, rsp) = ask::<_, IMPushShieldRsp>(
        &mut bob,
        SID_LOGIN,
        L::CID_LOGIN_REQ_PUSH_SHIELD as u16,
        5,
        &req,
        L::CID_LOGIN_RES_PUSH_SHIELD as u16,
    );
    assert_eq!(
        (rsp.user_id, rsp.result_code, rsp.shield_status),
        (2, 0, Some(1))
    );
    let req = IMQueryPushShieldReq {
        user_id: 0,
        attach_data: None,
    };
    let (_, rsp) = ask::<_, IMQueryPushShieldRsp>(
        &mut bob,
        SID_LOGIN,
        L::CID_LOGIN_REQ_QUERY_PUSH_SHIELD as u16,
        6,
        &req,
        L::CID_LOGIN_RES_QUERY_PUSH_SHIELD as u16,
    );
    assert_eq!((rsp.user_id, rsp.shield_status), (2, Some(1)));

    // Device tokens: answered at once to a mobile client, stored by db_proxy.
    let (mut phone, _) = login(ms2.port, "dave", password("dave"), IOS);
    let req = IMDeviceTokenReq {
        user_id: 0,
        device_token: "tok-dave".into(),
        client_type: None,
        attach_data: None,
    };
    let (_, rsp) = ask::<_, IMDeviceTokenRsp>(
        &mut phone,
        SID_LOGIN,
        L::CID_LOGIN_REQ_DEVICETOKEN as u16,
        7,
        &req,
        L::CID_LOGIN_RES_DEVICETOKEN as u16,
    );
    assert_eq!(rsp.user_id, 4);
    // Stamped with the user and client type: the `token` pool (Redis db 3)
    // holds `device_<uid>` = `ios:<token>`.
    let redis_port = cluster.redis.as_ref().unwrap().port();
    eventually("token stored", || {
        redis(redis_port, 3, &["GET", "device_4"]).contains("ios:tok-dave")
    });
}
