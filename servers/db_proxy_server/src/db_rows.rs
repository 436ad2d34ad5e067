//! Rows read from MySQL without a panic (not in the C++, whose
//! `CResultSet` reads every column as a string).
//!
//! The `mysql` crate's `exec` and `exec_first` convert each row with
//! `from_row`, which panics when a value does not fit the type asked for
//! (a NULL where a number was expected, a number out of range): a worker
//! would unwind on data from the database. These read the same rows with
//! `from_row_opt` and answer a row that does not convert as an error of
//! that request, without the row's values (a user's password hash must not
//! reach a log line).

use mysql::prelude::{AsStatement, FromRow, Queryable};
use mysql::{Params, Row};

/// The error for a row that does not convert: no values, only the columns.
fn bad_row(row: &Row) -> mysql::Error {
    let columns: Vec<String> = row
        .columns_ref()
        .iter()
        .map(|c| c.name_str().into_owned())
        .collect();
    mysql::Error::IoError(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!(
            "a row ({}) does not convert to the expected types",
            columns.join(", ")
        ),
    ))
}

/// One row converted, or [`bad_row`].
fn convert<T: FromRow>(row: Row) -> mysql::Result<T> {
    T::from_row_opt(row).map_err(|e| bad_row(&e.0))
}

/// `Queryable::exec` without its panic: every row of the statement.
pub fn exec<T, S, P>(c: &mut impl Queryable, stmt: S, params: P) -> mysql::Result<Vec<T>>
where
    T: FromRow,
    S: AsStatement,
    P: Into<Params>,
{
    c.exec_iter(stmt, params)?
        .map(|row| convert(row?))
        .collect()
}

/// `Queryable::exec_first` without its panic: the statement's first row.
pub fn exec_first<T, S, P>(c: &mut impl Queryable, stmt: S, params: P) -> mysql::Result<Option<T>>
where
    T: FromRow,
    S: AsStatement,
    P: Into<Params>,
{
    let mut rows = c.exec_iter(stmt, params)?;
    match rows.next() {
        Some(row) => convert(row?).map(Some),
        None => Ok(None),
    }
}

/// `Queryable::query` without its panic: every row of a text query.
pub fn query<T: FromRow>(c: &mut impl Queryable, sql: &str) -> mysql::Result<Vec<T>> {
    c.query_iter(sql)?.map(|row| convert(row?)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value that does not fit is an error of that statement, not a
    /// panic, its message names the columns and not the values, and the
    /// connection goes on serving.
    #[test]
    fn a_row_that_does_not_convert_is_an_error_not_a_panic() {
        let db = tt_rs::TestDb::empty();
        let mut c = db.conn();
        let null: mysql::Result<Vec<(u32,)>> = exec(&mut c, "SELECT NULL AS secret", ());
        let e = null.expect_err("NULL is no u32");
        assert!(e.to_string().contains("secret"), "{e}");
        let negative: mysql::Result<Option<u32>> = exec_first(&mut c, "SELECT ? AS n", (-1i64,));
        let e = negative.expect_err("-1 is no u32");
        assert!(
            !e.to_string().contains("-1"),
            "no value in the message: {e}"
        );
        let listed: mysql::Result<Vec<u32>> = query(&mut c, "SELECT 'x' AS word");
        assert!(listed.is_err());
        let fine: Option<(u32, Option<u32>)> =
            exec_first(&mut c, "SELECT ?, NULL", (7u32,)).expect("fits");
        assert_eq!(fine, Some((7, None)));
        let rows: Vec<u32> = exec(&mut c, "SELECT 1 UNION ALL SELECT 2", ()).expect("fits");
        assert_eq!(rows, vec![1, 2]);
    }
}
