//! `tt-idle users`: generated users for a run, as the two files a bulk
//! load needs: `name,password` lines for `tt-idle run --csv` (and
//! `tt-load --csv`), and tab-separated `IMUser` rows for MariaDB's
//! `LOAD DATA` (`scripts/load-users.sh` runs both steps). The stored
//! password is what db_proxy_server checks: md5(md5(plain) + salt), with a
//! 4-digit salt, as the admin UI writes it (and `tt_rs::add_user`).

use base::md5::md5_hex;
use std::io::{BufWriter, Write};

/// The `IMUser` columns of each TSV row, in order, for `LOAD DATA ... (cols)`.
pub const TSV_COLUMNS: &str = "id, sex, name, domain, nick, password, salt, phone, email, \
                               avatar, departId, status, created, updated, sign_info";

/// One generated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedUser {
    /// `IMUser.id`.
    pub id: u32,
    /// Login name: the prefix and the id.
    pub name: String,
    /// Plain password: `pw` and the id.
    pub password: String,
}

/// User number `id` with names made from `prefix`.
pub fn user(prefix: &str, id: u32) -> GeneratedUser {
    GeneratedUser {
        id,
        name: format!("{prefix}{id}"),
        password: format!("pw{id}"),
    }
}

/// (salt, stored hash) of `plain` for user `id`, as db_proxy checks them.
pub fn stored_password(id: u32, plain: &str) -> (String, String) {
    let salt = format!("{:04}", id % 10_000);
    let stored = md5_hex(format!("{}{salt}", md5_hex(plain.as_bytes())).as_bytes());
    (salt, stored)
}

/// The `LOAD DATA` row of `u` (tab-separated, no field holds a tab, a
/// newline or a backslash: names are generated).
pub fn tsv_row(u: &GeneratedUser, now: u32) -> String {
    let (salt, stored) = stored_password(u.id, &u.password);
    let n = &u.name;
    format!(
        "{id}\t1\t{n}\t{n}-domain\t{n}\t{stored}\t{salt}\t1380000\t{n}@example.com\t\
         http://a/x.png\t1\t0\t{now}\t{now}\tidle\n",
        id = u.id
    )
}

/// Writes `count` users from `first_id` to `csv` and, if given, `tsv`,
/// streaming (a million users never sit in memory).
pub fn write_files(
    prefix: &str,
    first_id: u32,
    count: u32,
    csv: &str,
    tsv: Option<&str>,
) -> std::io::Result<()> {
    let last = first_id
        .checked_add(count.saturating_sub(1))
        .ok_or_else(|| std::io::Error::other("ids past 4,294,967,295"))?;
    let mut csv_out = BufWriter::new(std::fs::File::create(csv)?);
    let mut tsv_out = match tsv {
        Some(p) => Some(BufWriter::new(std::fs::File::create(p)?)),
        None => None,
    };
    let now = base::tick::unix_time();
    for id in first_id..=last {
        if count == 0 {
            break;
        }
        let u = user(prefix, id);
        writeln!(csv_out, "{},{}", u.name, u.password)?;
        if let Some(t) = tsv_out.as_mut() {
            t.write_all(tsv_row(&u, now).as_bytes())?;
        }
    }
    csv_out.flush()?;
    if let Some(mut t) = tsv_out {
        t.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_carry_the_hash_db_proxy_checks() {
        let u = user("idle", 12_345);
        assert_eq!(
            (u.name.as_str(), u.password.as_str()),
            ("idle12345", "pw12345")
        );
        let (salt, stored) = stored_password(12_345, "pw12345");
        assert_eq!(salt, "2345");
        assert_eq!(
            stored,
            md5_hex(format!("{}2345", md5_hex(b"pw12345")).as_bytes())
        );
        let row = tsv_row(&u, 7);
        let fields: Vec<&str> = row.trim_end().split('\t').collect();
        assert_eq!(fields.len(), TSV_COLUMNS.split(',').count());
        assert_eq!(
            (fields[0], fields[2], fields[5], fields[6]),
            ("12345", "idle12345", stored.as_str(), "2345")
        );
    }

    #[test]
    fn files_hold_count_users() {
        let dir = std::env::temp_dir().join(format!("tt-idle-users-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (csv, tsv) = (dir.join("u.csv"), dir.join("u.tsv"));
        write_files(
            "x",
            10,
            3,
            csv.to_str().unwrap(),
            Some(tsv.to_str().unwrap()),
        )
        .unwrap();
        let text = std::fs::read_to_string(&csv).unwrap();
        assert_eq!(text, "x10,pw10\nx11,pw11\nx12,pw12\n");
        assert_eq!(std::fs::read_to_string(&tsv).unwrap().lines().count(), 3);
        write_files("x", 10, 0, csv.to_str().unwrap(), None).unwrap();
        assert_eq!(std::fs::read_to_string(&csv).unwrap(), "");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
