//! `login_server`: the C++ `login_server.cpp`'s `main`. The server itself
//! is the library beside this file (`lib.rs`, its module map).

fn main() {
    base::cli::run_server("login_server", login_server::CONF_FILE, login_server::serve)
}
