//! The server state every handler reaches through its `Ctx`: the C++
//! globals of `login_server.cpp` and `LoginConn.cpp` (`g_msg_serv_info`,
//! `strMsfsUrl`, `strDiscovery`), owned by the event loop.

use crate::http_conn::ClientUrls;
use crate::msg_serv_info::MsgServTable;

/// login_server's state (`S` of the reactor).
#[derive(Debug)]
pub struct LoginState {
    /// Registered msg_servers.
    pub msg_servs: MsgServTable,
    /// URLs handed to HTTP clients.
    pub urls: ClientUrls,
}
