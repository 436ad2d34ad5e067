//! `file_server`: not written yet; its issue in the tracker describes it.

fn main() {
    base::cli::not_implemented("file_server")
}
