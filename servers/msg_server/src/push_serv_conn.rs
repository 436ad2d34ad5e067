//! Links to push_server, and the mobile pushes of stored messages: the C++
//! `PushServConn.cpp` (`CPushServConn`, `build_ios_push_flash`) and
//! `CDBServConn::_HandleGetDeviceTokenResponse`; `get_push_serv_conn` is
//! [`crate::peers::PushServers`].
//!
//! After a message is stored, db_proxy is asked for its receivers' device
//! tokens with the message as attach data. For a receiver logged in here
//! the push is silent while one of its PC clients is on (as route_server
//! reports); for one that is not, route_server is asked for its status
//! first. Text is decrypted with `aesKey` for the push's flash line.
//!
//! Difference from the C++: when a push_server link other than the one in
//! use closes, the one in use is kept (the C++ forgets it until the next
//! push_server connects).

use crate::attach_data::{AttachData, AttachType};
use crate::state::MsgState;
use base::pdu::PduError;
use base::ImPdu;
use netlib::PeerLink;
use netlib::{Ctx, Heartbeat, ImConn, Reactor};
use tt_proto::cid;
use tt_proto::IM::BaseDefine::{MsgType, UserStatType, UserTokenInfo};
use tt_proto::IM::Buddy::IMUsersStatReq;
use tt_proto::IM::Message::IMMsgData;
use tt_proto::IM::Server::{IMGetDeviceTokenRsp, IMPushToUserReq};

/// `IOS_PUSH_FLASH_MAX_LENGTH`: bytes of a push's flash line.
pub const IOS_PUSH_FLASH_MAX_LENGTH: usize = 40;
/// `IM_PUSH_TYPE_NORMAL`.
pub const PUSH_TYPE_NORMAL: u32 = 1;
/// `IM_PUSH_TYPE_SILENT`.
pub const PUSH_TYPE_SILENT: u32 = 2;
/// The flash line of a picture message or of an unknown sender.
pub const COMMON_FLASH: &str = "您收到了一条消息";

/// `CPushServConn`: the handler of the link to push_server `idx`.
#[derive(Debug)]
pub struct PushServConn {
    link: PeerLink,
}

impl PushServConn {
    /// The handler for peer `idx`.
    pub fn new(idx: usize) -> PushServConn {
        PushServConn {
            link: PeerLink::new("push_server", idx),
        }
    }
}

impl ImConn<MsgState> for PushServConn {
    /// `OnConfirm`: pushes go here from now on.
    fn on_confirm(&mut self, cx: &mut Ctx<'_, MsgState>) {
        let addr = cx.peer_addr();
        self.link.confirm(&mut cx.state.push.peers, cx.id, addr);
        cx.state.push.master = Some(cx.id);
    }

    /// `OnClose`.
    fn on_close(&mut self, cx: &mut Ctx<'_, MsgState>) {
        let addr = cx.peer_addr();
        self.link.closed(&mut cx.state.push.peers, cx.id, addr);
        if cx.state.push.master == Some(cx.id) {
            cx.state.push.master = cx.state.push.peers.open_links().last().copied();
        }
    }

    /// `OnTimer`: heartbeat after 5 s of quiet, close after 30 s of silence.
    fn on_timer(&mut self, cx: &mut Ctx<'_, MsgState>, now: u64) {
        cx.keep_alive(Heartbeat::SERVER, now);
    }

    /// `HandlePdu`: only heartbeats and push results, which are logged.
    fn on_pdu(&mut self, _cx: &mut Ctx<'_, MsgState>, pdu: ImPdu) {
        match pdu.command_id() {
            cid::OTHER_PUSH_TO_USER_RSP => log::debug!("push to user response"),
            cid::OTHER_HEARTBEAT => {}
            other => log::warn!("push_server: unexpected command {other:#06x}"),
        }
    }
}

/// `build_ios_push_flash`: the line a phone shows for a message of
/// `msg_type` with text `text` from a sender with `nick` (None when the
/// sender is not logged in here).
pub fn build_ios_push_flash(text: &str, msg_type: MsgType, nick: Option<&str>) -> String {
    let (prefix, suffix) = ("&$#@~^@[{:", ":}]&$~@#@");
    if let (Some(p), Some(s)) = (text.find(prefix), text.find(suffix)) {
        if p < s {
            return COMMON_FLASH.to_string();
        }
    }
    let Some(nick) = nick else {
        return COMMON_FLASH.to_string();
    };
    let flash = match msg_type {
        MsgType::MSG_TYPE_GROUP_AUDIO => format!("{nick}在群聊中发送了一条语音消息"),
        MsgType::MSG_TYPE_SINGLE_AUDIO => format!("{nick}给您发送了一条语音消息"),
        _ => format!("{nick}:{text}"),
    };
    truncate_flash(flash)
}

/// Cuts at `IOS_PUSH_FLASH_MAX_LENGTH - 3` bytes and appends `...`. The
/// C++ cuts bytes, possibly inside a UTF-8 character; we cut at the
/// character boundary before.
fn truncate_flash(flash: String) -> String {
    let max = IOS_PUSH_FLASH_MAX_LENGTH - 3;
    if flash.len() <= max {
        return flash;
    }
    let mut end = max;
    while !flash.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &flash[..end])
}

/// The `data` of a push: `{"from_id":…,"group_id":…,"msg_type":…}`.
pub fn push_data(msg: &IMMsgData) -> String {
    let mut obj = serde_json::Map::new();
    obj.insert("msg_type".into(), (msg.msg_type as u32).into());
    obj.insert("from_id".into(), msg.from_user_id.into());
    if base::msg_type::is_group_msg(msg.msg_type) {
        obj.insert("group_id".into(), msg.to_session_id.into());
    }
    serde_json::Value::Object(obj).to_string()
}

/// `_HandleGetDeviceTokenResponse`: the device tokens of a stored
/// message's receivers came back; push to each but the sender.
pub fn handle_device_tokens(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    pdu: &ImPdu,
) -> Result<(), PduError> {
    let rsp: IMGetDeviceTokenRsp = pdu.msg()?;
    let msg: IMMsgData = match tt_proto::decode(rsp.attach_data.as_deref().unwrap_or_default()) {
        Ok(m) => m,
        Err(e) => {
            log::warn!("device tokens with an unusable message attached dropped: {e}");
            return Ok(());
        }
    };
    let text = match msg.msg_type {
        MsgType::MSG_TYPE_SINGLE_TEXT | MsgType::MSG_TYPE_GROUP_TEXT => {
            match state.aes.decrypt(&msg.msg_data) {
                Ok(plain) => String::from_utf8_lossy(&plain).into_owned(),
                Err(e) => {
                    log::warn!(
                        "push: cannot decrypt message {}->{}: {e}",
                        msg.from_user_id,
                        msg.to_session_id
                    );
                    return Ok(());
                }
            }
        }
        _ => String::from_utf8_lossy(&msg.msg_data).into_owned(),
    };
    let nick = state
        .users
        .get(msg.from_user_id)
        .map(|u| u.nick_name.clone());
    let flash = build_ios_push_flash(&text, msg.msg_type, nick.as_deref());
    let data = push_data(&msg);
    let mut here = IMPushToUserReq {
        flash: flash.clone(),
        data: data.clone(),
        user_token_list: Vec::new(),
    };
    for token in rsp.user_token_info {
        if token.user_id == msg.from_user_id {
            continue;
        }
        log::debug!(
            "push to user {}, client_type={:?}, push_cnt={}",
            token.user_id,
            token.user_type,
            token.push_count
        );
        match state.users.get(token.user_id) {
            Some(user) => {
                let push_type = if user.pc_login_status == crate::im_user::PC_LOGIN_STATUS_ON {
                    PUSH_TYPE_SILENT
                } else {
                    PUSH_TYPE_NORMAL
                };
                here.user_token_list
                    .push(UserTokenInfo { push_type, ..token });
            }
            None => ask_status_then_push(net, state, &flash, &data, token),
        }
    }
    if !here.user_token_list.is_empty() {
        state.push.push(net, &here);
    }
    Ok(())
}

/// A receiver not logged in here: route_server is asked whether it is
/// online elsewhere, with the push waiting in the attach data.
fn ask_status_then_push(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    flash: &str,
    data: &str,
    token: UserTokenInfo,
) {
    let user_id = token.user_id;
    let push = IMPushToUserReq {
        flash: flash.to_string(),
        data: data.to_string(),
        user_token_list: vec![UserTokenInfo {
            push_type: PUSH_TYPE_NORMAL,
            ..token
        }],
    };
    let attach = AttachData::with_pdu(AttachType::PduForPush, None, tt_proto::encode(&push));
    let req = IMUsersStatReq {
        user_id: 0,
        user_id_list: vec![user_id],
        attach_data: Some(attach.encode()),
    };
    state.route.msg_to_master(net, 0, &req);
}

/// The `ATTACH_TYPE_PDU_FOR_PUSH` branch of `_HandleUsersStatusResponse`:
/// silent push when the receiver is online elsewhere, normal otherwise.
pub fn push_after_status(
    net: &mut Reactor<MsgState>,
    state: &MsgState,
    status: UserStatType,
    push_body: &[u8],
) -> Result<(), PduError> {
    let mut push: IMPushToUserReq = match tt_proto::decode(push_body) {
        Ok(p) => p,
        Err(e) => {
            log::warn!("waiting push unusable, dropped: {e}");
            return Ok(());
        }
    };
    if let Some(token) = push.user_token_list.first_mut() {
        token.push_type = if status == UserStatType::USER_STATUS_ONLINE {
            PUSH_TYPE_SILENT
        } else {
            PUSH_TYPE_NORMAL
        };
    }
    state.push.push(net, &push);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flash_lines() {
        let text = MsgType::MSG_TYPE_SINGLE_TEXT;
        assert_eq!(build_ios_push_flash("hi", text, Some("Al")), "Al:hi");
        assert_eq!(build_ios_push_flash("hi", text, None), COMMON_FLASH);
        assert_eq!(
            build_ios_push_flash("&$#@~^@[{:http://x.png:}]&$~@#@", text, Some("Al")),
            COMMON_FLASH
        );
        assert_eq!(
            build_ios_push_flash("", MsgType::MSG_TYPE_SINGLE_AUDIO, Some("Al")),
            "Al给您发送了一条语音消息"
        );
        let long = build_ios_push_flash(&"x".repeat(100), text, Some("Al"));
        assert_eq!(long.len(), IOS_PUSH_FLASH_MAX_LENGTH);
        assert!(long.ends_with("..."));
        let wide = build_ios_push_flash(&"好".repeat(30), text, Some("Al"));
        assert!(wide.len() <= IOS_PUSH_FLASH_MAX_LENGTH && wide.ends_with("..."));
    }

    #[test]
    fn push_data_names_the_group() {
        let mut m = IMMsgData {
            from_user_id: 3,
            to_session_id: 9,
            msg_type: MsgType::MSG_TYPE_GROUP_TEXT,
            ..IMMsgData::default()
        };
        assert_eq!(push_data(&m), r#"{"from_id":3,"group_id":9,"msg_type":17}"#);
        m.msg_type = MsgType::MSG_TYPE_SINGLE_TEXT;
        assert_eq!(push_data(&m), r#"{"from_id":3,"msg_type":1}"#);
    }
}
