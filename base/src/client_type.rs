//! Client-type classes: the C++ `CHECK_CLIENT_TYPE_PC` /
//! `CHECK_CLIENT_TYPE_MOBILE` macros (`ImPduBase.h`), which route_server and
//! msg_server both apply to `IM.BaseDefine.ClientType` values.

/// PC clients: Windows (0x01), Mac (0x02); any type without the 0x10 bit.
pub fn is_pc(client_type: u32) -> bool {
    client_type & 0x10 == 0
}

/// Mobile clients: iOS (0x11), Android (0x12); the 0x10 bit.
pub fn is_mobile(client_type: u32) -> bool {
    !is_pc(client_type)
}

/// `(a ^ b) >> 4 == 0`: the same class of client (both PC or both mobile),
/// the rule of `KickOutSameClientType`: one PC and one mobile client per user.
pub fn same_class(a: u32, b: u32) -> bool {
    (a ^ b) >> 4 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert!(is_pc(0x01) && is_pc(0x02) && is_mobile(0x11) && is_mobile(0x12));
        assert!(same_class(0x01, 0x02) && same_class(0x11, 0x12));
        assert!(!same_class(0x01, 0x11));
    }
}
