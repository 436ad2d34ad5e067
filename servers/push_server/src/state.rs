//! The per-process state of push_server: what the C++ `CSessionManager`
//! (session_manager.cpp) holds besides the sessions, which netlib keeps.

use crate::provider::ProviderQueue;
use crate::push_plan::Providers;

/// What every msg_server link's handler reaches.
#[derive(Debug)]
pub struct PushState {
    /// Which providers are configured (`GetAPNSClient()` in the C++).
    pub providers: Providers,
    /// The queue to the provider thread; `None` when no provider is
    /// configured (every push is then answered at once).
    pub queue: Option<ProviderQueue>,
}
