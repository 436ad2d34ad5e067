//! The generated command vocabulary: `sid`/`cid` constants from
//! IM.BaseDefine and the `Command` ids each message type carries.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use tt_proto::IM::{File, Group, Login, Message, Other, Server};
use tt_proto::{cid, sid, Command};

#[test]
fn constants_match_base_define() {
    assert_eq!(sid::LOGIN, 0x0001);
    assert_eq!(sid::OTHER, 0x0007);
    assert_eq!(cid::MSG_DATA, 0x0301);
    assert_eq!(cid::OTHER_HEARTBEAT, 0x0701);
    assert_eq!(cid::OTHER_FILE_SERVER_IP_RSP, 0x0734);
    assert_eq!(cid::FILE_PULL_DATA_RSP, 0x0505);
    assert_eq!(cid::name(sid::MSG, cid::MSG_DATA), Some("CID_MSG_DATA"));
    // A command id is only a name under its own service.
    assert_eq!(cid::name(sid::LOGIN, cid::MSG_DATA), None);
}

fn ids<M: Command>() -> (u16, u16) {
    (M::SID, M::CID)
}

#[test]
fn messages_carry_the_command_their_proto_comment_names() {
    assert_eq!(ids::<Message::IMMsgData>(), (sid::MSG, cid::MSG_DATA));
    assert_eq!(
        ids::<Message::IMMsgDataAck>(),
        (sid::MSG, cid::MSG_DATA_ACK)
    );
    assert_eq!(
        ids::<Other::IMHeartBeat>(),
        (sid::OTHER, cid::OTHER_HEARTBEAT)
    );
    assert_eq!(
        ids::<Login::IMLoginReq>(),
        (sid::LOGIN, cid::LOGIN_REQ_USERLOGIN)
    );
    assert_eq!(
        ids::<Login::IMQueryPushShieldRsp>(),
        (sid::LOGIN, cid::LOGIN_RES_QUERY_PUSH_SHIELD)
    );
    assert_eq!(
        ids::<Server::IMPushToUserReq>(),
        (sid::OTHER, cid::OTHER_PUSH_TO_USER_REQ)
    );
    assert_eq!(
        ids::<Server::IMFileTransferRsp>(),
        (sid::OTHER, cid::OTHER_FILE_TRANSFER_RSP)
    );
    assert_eq!(
        ids::<File::IMFilePullDataReq>(),
        (sid::FILE, cid::FILE_PULL_DATA_REQ)
    );
    assert_eq!(
        ids::<Group::IMGroupChangeMemberNotify>(),
        (sid::GROUP, cid::GROUP_CHANGE_MEMBER_NOTIFY)
    );
}
