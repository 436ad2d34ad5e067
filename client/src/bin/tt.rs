//! `tt`: a command-line TeamTalk client, like the C++ test client.
//!
//! ```text
//! tt [OPTIONS] login USER PASS            interactive prompt
//! tt [OPTIONS] send --as USER:PASS TO TEXT one message, then exit
//! tt [OPTIONS] gsend --as USER:PASS GROUP TEXT
//!
//! OPTIONS: --login HOST:PORT  login_server's HTTP port (default 127.0.0.1:8080)
//!          --server HOST:PORT a msg_server, skipping login_server
//!          --aes-key KEY      the cluster's aesKey (default: the demo key)
//! ```
//!
//! At the prompt: `send USER TEXT`, `gsend GROUP TEXT`, `list`, `unread`,
//! `history USER`, `groups`, `quit`. USER is a login name or a user id.
//! Incoming messages are printed as they arrive.

use std::io::BufRead;
use std::time::Duration;
use tt_client::{discovery, ClientError, Event, LoginOptions, Session};
use tt_proto::IM::BaseDefine::SessionType;

struct Options {
    login: String,
    server: Option<String>,
    aes_key: String,
}

/// The command line, for `--help` and for a mistake on it.
const HELP: &str = "\
usage: tt [--login HOST:PORT] [--server HOST:PORT] [--aes-key KEY] login USER PASS
       tt [...] send --as USER:PASS TO TEXT
       tt [...] gsend --as USER:PASS GROUP TEXT

  --login HOST:PORT    login_server's HTTP port (default 127.0.0.1:8080)
  --server HOST:PORT   a msg_server, skipping login_server
  --aes-key KEY        the cluster's aesKey (default: the demo key)

At the prompt: send USER TEXT, gsend GROUP TEXT, list, unread, history USER,
groups, quit. USER is a login name or a user id; GROUP is a group id.
";

fn usage() -> ! {
    eprint!("{HELP}");
    std::process::exit(2);
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut opts = Options {
        login: "127.0.0.1:8080".into(),
        server: None,
        aes_key: LoginOptions::default().aes_key,
    };
    if args.first().is_some_and(|a| a == "--help" || a == "-h") {
        print!("{HELP}");
        return;
    }
    while args.first().is_some_and(|a| a.starts_with("--")) {
        let flag = args.remove(0);
        if args.is_empty() {
            usage();
        }
        let value = args.remove(0);
        match flag.as_str() {
            "--login" => opts.login = value,
            "--server" => opts.server = Some(value),
            "--aes-key" => opts.aes_key = value,
            _ => usage(),
        }
    }
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["login", user, pass] => interactive(&opts, user, pass),
        ["send", "--as", cred, to, text @ ..] if !text.is_empty() => {
            one_shot(&opts, cred, to, &text.join(" "), false)
        }
        ["gsend", "--as", cred, group, text @ ..] if !text.is_empty() => {
            one_shot(&opts, cred, group, &text.join(" "), true)
        }
        _ => usage(),
    };
    if let Err(e) = result {
        eprintln!("tt: {e}");
        std::process::exit(1);
    }
}

fn connect(opts: &Options, user: &str, pass: &str) -> Result<Session, ClientError> {
    let addr = match &opts.server {
        Some(s) => s.clone(),
        None => {
            let ms = discovery::via_http(&opts.login)?;
            format!("{}:{}", ms.prior_ip, ms.port)
        }
    };
    let login = LoginOptions {
        aes_key: opts.aes_key.clone(),
        ..LoginOptions::default()
    };
    Session::login(&addr, user, pass, &login)
}

/// A user id from a login name or a number.
fn resolve_user(s: &mut Session, who: &str) -> Result<u32, ClientError> {
    if let Ok(id) = who.parse() {
        return Ok(id);
    }
    s.users(0)?
        .into_iter()
        .find(|u| u.user_real_name == who)
        .map(|u| u.user_id)
        .ok_or_else(|| ClientError::Protocol(format!("no user named {who}")))
}

fn one_shot(
    opts: &Options,
    cred: &str,
    to: &str,
    text: &str,
    group: bool,
) -> Result<(), ClientError> {
    let (user, pass) = cred.split_once(':').unwrap_or_else(|| usage());
    let mut s = connect(opts, user, pass)?;
    let id = if group {
        s.send_group_text(to.parse().unwrap_or_else(|_| usage()), text)
            .map_err(group_hint)?
    } else {
        let to = resolve_user(&mut s, to)?;
        s.send_text(to, text)?
    };
    println!("sent, message id {id}");
    s.logout()
}

/// Prints a line for the person at the prompt.
fn say(text: &str) -> Result<(), ClientError> {
    println!("{text}");
    Ok(())
}

/// Prints what the server sent on its own; a kick ends the session (the
/// caller gets it as an error, printed once by `main`).
fn print_event(e: Event) -> Result<(), ClientError> {
    match e {
        Event::Message(m) => println!("[{}] {} -> {}: {}", m.msg_id, m.from, m.to_session, m.text),
        Event::Kicked(reason) => return Err(ClientError::Kicked(format!("{reason:?}"))),
        Event::ReadNotify(n) => println!(
            "(read {} up to {} on another device)",
            n.session_id, n.msg_id
        ),
        Event::Other(_) => {}
    }
    Ok(())
}

/// A group send that got no answer: the C++ db_proxy ignores messages to a
/// group whose member hash is not in Redis (a group written by SQL alone),
/// so say so rather than only "no answer".
fn group_hint(e: ClientError) -> ClientError {
    match e {
        ClientError::Timeout(t) => ClientError::TimeoutWithHint(
            t,
            "a C++ db_proxy_server drops messages to a group it has no member \
             list for in Redis, `group_member_<id>`",
        ),
        other => other,
    }
}

fn interactive(opts: &Options, user: &str, pass: &str) -> Result<(), ClientError> {
    let mut s = connect(opts, user, pass)?;
    println!(
        "logged in as {} (id {})",
        s.user.user_nick_name,
        s.user_id()
    );
    let (tx, lines) = crossbeam_channel::unbounded::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    loop {
        while let Some(e) = s.next_event(Duration::from_millis(50))? {
            print_event(e)?;
        }
        let line = match lines.try_recv() {
            Ok(l) => l,
            Err(crossbeam_channel::TryRecvError::Empty) => continue,
            Err(crossbeam_channel::TryRecvError::Disconnected) => break,
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        let outcome = match words.as_slice() {
            [] => Ok(()),
            ["quit"] | ["exit"] => break,
            ["send", to, text @ ..] if !text.is_empty() => resolve_user(&mut s, to)
                .and_then(|to| s.send_text(to, &text.join(" ")))
                .map(|id| println!("sent, message id {id}")),
            ["gsend", group, text @ ..] if !text.is_empty() => match group.parse() {
                Ok(g) => s
                    .send_group_text(g, &text.join(" "))
                    .map_err(group_hint)
                    .map(|id| println!("sent, message id {id}")),
                Err(_) => say("GROUP is a group id"),
            },
            ["list"] => s.users(0).map(|users| {
                for u in users {
                    println!("{:>6}  {:<16} {}", u.user_id, u.user_real_name, u.user_nick_name);
                }
            }),
            ["unread"] => s.unread().map(|r| {
                println!("{} unread", r.total_cnt);
                for u in r.unreadinfo_list {
                    println!("  session {} ({:?}): {}", u.session_id, u.session_type, u.unread_cnt);
                }
            }),
            ["history", who] => resolve_user(&mut s, who).and_then(|peer| {
                let msgs = s.history(peer, SessionType::SESSION_TYPE_SINGLE, 0, 20)?;
                for m in msgs.iter().rev() {
                    println!("[{}] {}: {}", m.msg_id, m.from_session_id, s.decrypt(m));
                }
                Ok(())
            }),
            ["groups"] => s.all_groups().map(|groups| {
                for g in groups {
                    println!("{:>6}  {} ({} members)", g.group_id, g.group_name, g.group_member_list.len());
                }
            }),
            _ => say("commands: send USER TEXT, gsend GROUP TEXT, list, unread, history USER, groups, quit"),
        };
        if let Err(e) = outcome {
            match e {
                ClientError::Closed | ClientError::Kicked(_) => return Err(e),
                other => println!("error: {other}"),
            }
        }
    }
    s.logout()
}
