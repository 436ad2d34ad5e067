//! Stand-ins for db_proxy_server and push_server speaking the protocol,
//! for the message routing tests. The fake db_proxy validates the known
//! users, stores messages by giving them ids, answers group member lists,
//! membership changes and device tokens (every user has `tok<id>`, iOS),
//! and records every request so tests can count them. The fake
//! push_server records the pushes; the fake file_server gives out tasks.

use base::md5::md5_hex;
use base::pdu::ImPdu;
use std::collections::HashMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use tt_proto::IM::BaseDefine::{
    ClientType, GroupCmdID, GroupInfo, GroupModifyType, GroupType, IpAddr, MessageCmdID,
    OtherCmdID, ServiceID, UserInfo, UserTokenInfo,
};
use tt_proto::IM::Group::{
    IMGroupChangeMemberReq, IMGroupChangeMemberRsp, IMGroupInfoListReq, IMGroupInfoListRsp,
};
use tt_proto::IM::Message::IMMsgData;
use tt_proto::IM::Server::{
    IMFileServerIPRsp, IMFileTransferReq, IMFileTransferRsp, IMGetDeviceTokenReq,
    IMGetDeviceTokenRsp, IMPushToUserReq, IMValidateReq, IMValidateRsp,
};

/// What the fake db_proxy knows and saw.
#[derive(Default)]
pub struct FakeDbState {
    /// Group id → members.
    pub groups: HashMap<u32, Vec<u32>>,
    /// Every request received: (command id, PDU).
    pub seen: Vec<(u16, ImPdu)>,
    /// The last message id given.
    pub last_msg_id: u32,
}

/// The fake db_proxy: a listener with a thread per msg_server link.
pub struct FakeDb {
    pub port: u16,
    pub state: Arc<Mutex<FakeDbState>>,
}

impl FakeDb {
    /// Starts listening on a free loopback port; `users` are
    /// (id, name, plain password).
    pub fn start(users: &[(u32, &str, &str)], groups: HashMap<u32, Vec<u32>>) -> FakeDb {
        let state = Arc::new(Mutex::new(FakeDbState {
            groups,
            ..FakeDbState::default()
        }));
        let users: Vec<(u32, String, String)> = users
            .iter()
            .map(|(id, n, p)| (*id, n.to_string(), md5_hex(p.as_bytes())))
            .collect();
        let shared = state.clone();
        let port = serve(move |pdu| {
            let mut st = shared.lock().unwrap();
            st.seen.push((pdu.command_id(), pdu.clone()));
            answer(&mut st, &users, pdu)
        });
        FakeDb { port, state }
    }

    /// How many requests with `cid` arrived so far.
    pub fn count(&self, cid: u16) -> usize {
        self.requests(cid).len()
    }

    /// The requests with `cid` so far.
    pub fn requests(&self, cid: u16) -> Vec<ImPdu> {
        self.state
            .lock()
            .unwrap()
            .seen
            .iter()
            .filter(|(c, _)| *c == cid)
            .map(|(_, p)| p.clone())
            .collect()
    }
}

fn read_pdu(s: &mut TcpStream) -> Option<ImPdu> {
    base::pdu::read_frame(s).ok()
}

fn user_info(id: u32, name: &str) -> UserInfo {
    UserInfo {
        user_id: id,
        user_gender: 1,
        user_nick_name: format!("{name}-nick"),
        avatar_url: String::new(),
        department_id: 1,
        email: String::new(),
        user_real_name: name.to_string(),
        user_tel: String::new(),
        user_domain: name.to_string(),
        status: 0,
        sign_info: None,
    }
}

/// Listens on a free loopback port (returned) and serves each connection
/// in a thread of its own: every PDU read gets what `answer` makes of it,
/// if anything.
fn serve(answer: impl Fn(&ImPdu) -> Option<ImPdu> + Clone + Send + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let answer = answer.clone();
            std::thread::spawn(move || {
                while let Some(pdu) = read_pdu(&mut s) {
                    if let Some(out) = answer(&pdu) {
                        if s.write_all(out.as_bytes()).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    port
}

fn answer(st: &mut FakeDbState, users: &[(u32, String, String)], pdu: &ImPdu) -> Option<ImPdu> {
    let cid = pdu.command_id();
    let seq = pdu.seq_num();
    if cid == OtherCmdID::CID_OTHER_HEARTBEAT as u16 {
        return Some(pdu.clone());
    }
    if cid == OtherCmdID::CID_OTHER_VALIDATE_REQ as u16 {
        let req: IMValidateReq = pdu.msg().ok()?;
        let found = users
            .iter()
            .find(|(_, n, p)| *n == req.user_name && *p == req.password);
        let rsp = IMValidateRsp {
            user_name: req.user_name,
            result_code: if found.is_some() { 0 } else { 1 },
            result_string: Some(
                if found.is_some() {
                    "成功"
                } else {
                    "用户名/密码错误"
                }
                .into(),
            ),
            user_info: found.map(|(id, n, _)| user_info(*id, n)),
            attach_data: req.attach_data,
        };
        let sid = ServiceID::SID_OTHER as u16;
        return ImPdu::with_msg(sid, OtherCmdID::CID_OTHER_VALIDATE_RSP as u16, seq, &rsp).ok();
    }
    if cid == MessageCmdID::CID_MSG_DATA as u16 {
        let mut msg: IMMsgData = pdu.msg().ok()?;
        st.last_msg_id += 1;
        msg.msg_id = st.last_msg_id;
        return ImPdu::with_msg(ServiceID::SID_MSG as u16, cid, seq, &msg).ok();
    }
    if cid == OtherCmdID::CID_OTHER_GET_DEVICE_TOKEN_REQ as u16 {
        let req: IMGetDeviceTokenReq = pdu.msg().ok()?;
        let rsp = IMGetDeviceTokenRsp {
            user_token_info: req
                .user_id
                .iter()
                .map(|&id| UserTokenInfo {
                    user_id: id,
                    user_type: ClientType::CLIENT_TYPE_IOS,
                    token: format!("tok{id}"),
                    push_count: 1,
                    push_type: 0,
                })
                .collect(),
            attach_data: req.attach_data,
        };
        let rcid = OtherCmdID::CID_OTHER_GET_DEVICE_TOKEN_RSP as u16;
        return ImPdu::with_msg(ServiceID::SID_OTHER as u16, rcid, seq, &rsp).ok();
    }
    if cid == GroupCmdID::CID_GROUP_INFO_REQUEST as u16 {
        let req: IMGroupInfoListReq = pdu.msg().ok()?;
        let rsp = IMGroupInfoListRsp {
            user_id: req.user_id,
            group_info_list: req
                .group_version_list
                .iter()
                .filter_map(|v| {
                    st.groups.get(&v.group_id).map(|m| GroupInfo {
                        group_id: v.group_id,
                        version: 1,
                        group_name: format!("g{}", v.group_id),
                        group_avatar: String::new(),
                        group_creator_id: m.first().copied().unwrap_or(0),
                        group_type: GroupType::GROUP_TYPE_TMP,
                        shield_status: 0,
                        group_member_list: m.clone(),
                    })
                })
                .collect(),
            attach_data: req.attach_data,
        };
        let (sid, rcid) = (
            ServiceID::SID_GROUP as u16,
            GroupCmdID::CID_GROUP_INFO_RESPONSE as u16,
        );
        return ImPdu::with_msg(sid, rcid, seq, &rsp).ok();
    }
    if cid == GroupCmdID::CID_GROUP_CHANGE_MEMBER_REQUEST as u16 {
        let req: IMGroupChangeMemberReq = pdu.msg().ok()?;
        let members = st.groups.entry(req.group_id).or_default();
        match req.change_type {
            GroupModifyType::GROUP_MODIFY_TYPE_ADD => {
                for u in &req.member_id_list {
                    if !members.contains(u) {
                        members.push(*u);
                    }
                }
            }
            GroupModifyType::GROUP_MODIFY_TYPE_DEL => {
                members.retain(|u| !req.member_id_list.contains(u));
            }
        }
        let rsp = IMGroupChangeMemberRsp {
            user_id: req.user_id,
            change_type: req.change_type,
            result_code: 0,
            group_id: req.group_id,
            cur_user_id_list: members.clone(),
            chg_user_id_list: req.member_id_list,
            attach_data: req.attach_data,
        };
        let (sid, rcid) = (
            ServiceID::SID_GROUP as u16,
            GroupCmdID::CID_GROUP_CHANGE_MEMBER_RESPONSE as u16,
        );
        return ImPdu::with_msg(sid, rcid, seq, &rsp).ok();
    }
    None
}

/// The fake push_server: records every `IMPushToUserReq`.
pub struct FakePush {
    pub port: u16,
    pub pushes: Arc<Mutex<Vec<IMPushToUserReq>>>,
}

impl FakePush {
    /// Starts listening on a free loopback port.
    pub fn start() -> FakePush {
        let pushes = Arc::new(Mutex::new(Vec::new()));
        let shared = pushes.clone();
        let port = serve(move |pdu| {
            if pdu.command_id() == OtherCmdID::CID_OTHER_HEARTBEAT as u16 {
                return Some(pdu.clone());
            }
            if pdu.command_id() == OtherCmdID::CID_OTHER_PUSH_TO_USER_REQ as u16 {
                if let Ok(p) = pdu.msg::<IMPushToUserReq>() {
                    shared.lock().unwrap().push(p);
                }
            }
            None
        });
        FakePush { port, pushes }
    }

    /// (user id, push type, flash) of every token pushed to so far.
    pub fn pushed(&self) -> Vec<(u32, u32, String)> {
        self.pushes
            .lock()
            .unwrap()
            .iter()
            .flat_map(|p| {
                p.user_token_list
                    .iter()
                    .map(|t| (t.user_id, t.push_type, p.flash.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// The fake file_server: serves clients on 127.0.0.1:8601 (it says) and
/// makes a task `task-<n>` for every transfer request, recorded.
pub struct FakeFile {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<IMFileTransferReq>>>,
}

/// The client address the fake file_server reports.
pub const FAKE_FILE_CLIENT_PORT: u32 = 8601;

impl FakeFile {
    /// Starts listening on a free loopback port.
    pub fn start() -> FakeFile {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let shared = requests.clone();
        let port = serve(move |pdu| file_answer(&shared, pdu));
        FakeFile { port, requests }
    }
}

fn file_answer(requests: &Mutex<Vec<IMFileTransferReq>>, pdu: &ImPdu) -> Option<ImPdu> {
    let cid = pdu.command_id();
    let sid = ServiceID::SID_OTHER as u16;
    if cid == OtherCmdID::CID_OTHER_HEARTBEAT as u16 {
        return Some(pdu.clone());
    }
    if cid == OtherCmdID::CID_OTHER_FILE_SERVER_IP_REQ as u16 {
        let rsp = IMFileServerIPRsp {
            ip_addr_list: vec![IpAddr {
                ip: "127.0.0.1".into(),
                port: FAKE_FILE_CLIENT_PORT,
            }],
        };
        let rcid = OtherCmdID::CID_OTHER_FILE_SERVER_IP_RSP as u16;
        return ImPdu::with_msg(sid, rcid, 0, &rsp).ok();
    }
    if cid == OtherCmdID::CID_OTHER_FILE_TRANSFER_REQ as u16 {
        let req: IMFileTransferReq = pdu.msg().ok()?;
        let n = {
            let mut r = requests.lock().unwrap();
            r.push(req.clone());
            r.len()
        };
        let rsp = IMFileTransferRsp {
            result_code: 0,
            from_user_id: req.from_user_id,
            to_user_id: req.to_user_id,
            file_name: Some(req.file_name),
            file_size: Some(req.file_size),
            task_id: Some(format!("task-{n}")),
            trans_mode: Some(req.trans_mode),
            attach_data: req.attach_data,
        };
        let rcid = OtherCmdID::CID_OTHER_FILE_TRANSFER_RSP as u16;
        return ImPdu::with_msg(sid, rcid, pdu.seq_num(), &rsp).ok();
    }
    None
}
