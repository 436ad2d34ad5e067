//! `CID_BUDDY_LIST_DEPARTMENT_REQUEST`: the C++ `business/DepartAction.cpp`
//! (`getChgedDepart`).

use super::{depart_model, reply, HandlerResult};
use crate::services::Services;
use base::pdu::ImPdu;
use tt_proto::IM::Buddy::{IMDepartmentReq, IMDepartmentRsp};

/// Departments changed since the client's `latest_update_time`; the reply
/// carries the newest update time seen.
pub fn get_changed_depart(services: &Services, req: &ImPdu) -> HandlerResult {
    let msg: IMDepartmentReq = req.msg()?;
    let (ids, latest) = depart_model::get_changed_dept_ids(&services.db, msg.latest_update_time)?;
    let depts = depart_model::get_depts(&services.db, &ids)?;
    log::debug!("user {}: {} departments changed", msg.user_id, depts.len());
    let rsp = IMDepartmentRsp {
        user_id: msg.user_id,
        latest_update_time: latest,
        dept_list: depts,
        attach_data: msg.attach_data,
    };
    reply(req, &rsp)
}
