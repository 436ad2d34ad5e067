//! Reading an upload's `multipart/form-data` body: the parsing half of the
//! C++ `CHttpTask::OnUpload` (`HttpConn.cpp`).
//!
//! Ours, not a crate: the C++ answers each way a body can be malformed with
//! its own `error_code` (2 to 11, in the order it looks), and clients rely
//! on uploads the C++ takes (a part header `Content-Type:` anywhere after
//! the boundary, the file ending 4 bytes before the closing boundary); a
//! general multipart parser neither finds the same faults in the same
//! order nor names them. `multer` is async on tokio, `multipart` is
//! unmaintained. The body is whole (at most 10 MiB) when this runs, so it is
//! a few substring searches (`memchr::memmem`) over it, as the C++ does,
//! with every bound checked.
//!
//! Differences from the C++:
//! - An unterminated `filename="` is code 3 (the C++ searches past the body
//!   for the quote, and crashes about half the time).
//! - An extension holding `/`, `\`, `%`, `?`, `#`, a control character or
//!   invalid UTF-8 is code 9 (a `/` aborts the whole C++ server; the others
//!   would make names the download URL cannot reach).
//! - A quoted boundary (`boundary="x"`, RFC 2046) is unquoted, and a
//!   parameter after it (`; charset=...`) is not taken as part of it (the
//!   C++ searches for the quotes and answers 5).
//! - A closing boundary less than 4 bytes after the blank line (no room for
//!   its `\r\n--`) is code 8 (the C++ computes a negative size and answers
//!   `error_code` 0 with an empty path, storing nothing).
//! - The `_<W>x<H>` suffix is kept whole however long the extension is (the
//!   C++ cuts `<W>x<H>.<ext>` at 15 bytes).

use memchr::memmem;
use std::ops::Range;
use thiserror::Error;

const CONTENT_DISPOSITION: &[u8] = b"Content-Disposition:";
const FILENAME: &[u8] = b"filename=";
const BOUNDARY_MARK: &str = "boundary=";
const PART_CONTENT_TYPE: &[u8] = b"Content-Type:";
const BLANK_LINE: &[u8] = b"\r\n\r\n";
/// Longest file name the C++ takes (`char szFileName[256]`).
pub const MAX_FILE_NAME: usize = 255;
/// Longest extension (`char szType[16]`).
pub const MAX_EXTENSION: usize = 15;

/// Why an upload is refused; [`UploadError::code`] is the C++ `error_code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum UploadError {
    /// 1: the body is over 10 MiB.
    #[error("body over 10 MiB")]
    TooLarge,
    /// 2: no `Content-Disposition:` in the body.
    #[error("no Content-Disposition")]
    NoDisposition,
    /// 3: no (terminated, quoted) `filename="..."`.
    #[error("no filename")]
    NoFileName,
    /// 4: the request's `Content-Type` names no boundary.
    #[error("no boundary in the Content-Type")]
    NoBoundary,
    /// 5: the boundary is not in the body.
    #[error("boundary not in the body")]
    BoundaryNotFound,
    /// 6: no part `Content-Type:` after the boundary.
    #[error("no part Content-Type")]
    NoPartType,
    /// 7: no blank line after the part `Content-Type:`.
    #[error("no blank line after the part headers")]
    NoBlankLine,
    /// 8: no closing boundary after the file.
    #[error("no closing boundary")]
    NoClosingBoundary,
    /// 9: the extension is over 15 bytes (or unusable in a name).
    #[error("bad extension")]
    BadExtension,
    /// 10: the file name has no `.`.
    #[error("no extension")]
    NoExtension,
    /// 11: the file name is over 255 bytes.
    #[error("file name too long")]
    NameTooLong,
}

impl UploadError {
    /// The `error_code` the C++ answers.
    pub fn code(self) -> u32 {
        match self {
            UploadError::TooLarge => 1,
            UploadError::NoDisposition => 2,
            UploadError::NoFileName => 3,
            UploadError::NoBoundary => 4,
            UploadError::BoundaryNotFound => 5,
            UploadError::NoPartType => 6,
            UploadError::NoBlankLine => 7,
            UploadError::NoClosingBoundary => 8,
            UploadError::BadExtension => 9,
            UploadError::NoExtension => 10,
            UploadError::NameTooLong => 11,
        }
    }

    /// The `error_msg` the C++ answers.
    pub fn message(self) -> &'static str {
        match self {
            UploadError::TooLarge => "上传文件过大",
            _ => "格式错误",
        }
    }
}

/// A well-formed upload: where the file is in the body and how its stored
/// name ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The file's bytes within the body.
    pub file: Range<usize>,
    /// What follows `<usec>_<thread>` in the stored name: `.<ext>`, or
    /// `_<W>x<H>.<ext>` when the client named a thumbnail size.
    pub name_suffix: String,
}

/// Finds the upload in `body`, sent with the request `Content-Type`
/// `content_type`, looking for faults in the C++ order.
pub fn parse_upload(content_type: &str, body: &[u8]) -> Result<Upload, UploadError> {
    let disposition = memmem::find(body, CONTENT_DISPOSITION).ok_or(UploadError::NoDisposition)?;
    let after = &body[disposition..];
    let at = memmem::find(after, FILENAME).ok_or(UploadError::NoFileName)?;
    let quoted = &after[at + FILENAME.len()..];
    let name = match quoted.split_first() {
        Some((b'"', rest)) => {
            let end = memchr::memchr(b'"', rest).ok_or(UploadError::NoFileName)?;
            &rest[..end]
        }
        _ => return Err(UploadError::NoFileName),
    };
    let name_suffix = name_suffix(name)?;

    let boundary = boundary(content_type).ok_or(UploadError::NoBoundary)?;
    let boundary = boundary.as_bytes();
    let first = memmem::find(body, boundary).ok_or(UploadError::BoundaryNotFound)?;
    let part_type = memmem::find(&body[first..], PART_CONTENT_TYPE)
        .map(|i| first + i)
        .ok_or(UploadError::NoPartType)?;
    let blank = memmem::find(&body[part_type..], BLANK_LINE)
        .map(|i| part_type + i)
        .ok_or(UploadError::NoBlankLine)?;
    let start = blank + BLANK_LINE.len();
    let closing = memmem::find(&body[blank..], boundary)
        .map(|i| blank + i)
        .ok_or(UploadError::NoClosingBoundary)?;
    // The file ends before the `\r\n--` of the delimiter.
    let end = closing
        .checked_sub(4)
        .filter(|&end| end >= start)
        .ok_or(UploadError::NoClosingBoundary)?;
    Ok(Upload {
        file: start..end,
        name_suffix,
    })
}

/// The boundary named by a request `Content-Type` (what follows
/// `boundary=`, unquoted, up to a `;`).
pub fn boundary(content_type: &str) -> Option<&str> {
    let at = content_type.find(BOUNDARY_MARK)?;
    let value = content_type[at + BOUNDARY_MARK.len()..]
        .split(';')
        .next()
        .unwrap_or("")
        .trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    (!value.is_empty()).then_some(value)
}

/// The end of the stored name for the client's file name: `.<ext>`, or
/// `_<W>x<H>.<ext>` when the name ends in `_<W>x<H>.<ext>` with W and H of
/// at most 4 characters each (read as C `atoi` reads them).
fn name_suffix(name: &[u8]) -> Result<String, UploadError> {
    if name.len() > MAX_FILE_NAME {
        return Err(UploadError::NameTooLong);
    }
    let dot = memchr::memrchr(b'.', name).ok_or(UploadError::NoExtension)?;
    let ext = &name[dot + 1..];
    if ext.len() > MAX_EXTENSION {
        return Err(UploadError::BadExtension);
    }
    let ext = std::str::from_utf8(ext).map_err(|_| UploadError::BadExtension)?;
    if ext
        .chars()
        .any(|c| c.is_control() || matches!(c, '/' | '\\' | '%' | '?' | '#'))
    {
        return Err(UploadError::BadExtension);
    }
    let size = memchr::memrchr(b'_', name).and_then(|underscore| {
        let x = underscore + 1 + memchr::memchr(b'x', &name[underscore + 1..])?;
        let width = &name[underscore + 1..x];
        let height = name.get(x + 1..dot)?;
        (width.len() <= 4 && height.len() <= 4).then(|| (atoi(width), atoi(height)))
    });
    Ok(match size {
        Some((w, h)) => format!("_{w}x{h}.{ext}"),
        None => format!(".{ext}"),
    })
}

/// C `atoi`: leading blanks, an optional sign, the digits that follow; 0
/// when there are none.
fn atoi(bytes: &[u8]) -> i64 {
    let mut rest = bytes;
    while let Some((b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c', tail)) = rest.split_first() {
        rest = tail;
    }
    let negative = rest.first() == Some(&b'-');
    if matches!(rest.first(), Some(b'-' | b'+')) {
        rest = &rest[1..];
    }
    let mut value: i64 = 0;
    for &b in rest.iter().take_while(|b| b.is_ascii_digit()) {
        value = value * 10 + i64::from(b - b'0');
    }
    if negative {
        -value
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT: &str = "multipart/form-data; boundary=XyZ";

    fn body(name: &str, file: &[u8]) -> Vec<u8> {
        let mut b = format!(
            "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
             Content-Type: image/jpeg\r\n\r\n"
        )
        .into_bytes();
        b.extend_from_slice(file);
        b.extend_from_slice(b"\r\n--XyZ--\r\n");
        b
    }

    fn file_of(ct: &str, b: &[u8]) -> Result<(Vec<u8>, String), UploadError> {
        parse_upload(ct, b).map(|u| (b[u.file].to_vec(), u.name_suffix))
    }

    #[test]
    fn the_file_is_between_the_blank_line_and_the_crlf_before_the_boundary() {
        assert_eq!(
            file_of(CT, &body("a.jpg", b"\r\n\x00bytes\r\n")),
            Ok((b"\r\n\x00bytes\r\n".to_vec(), ".jpg".into()))
        );
        assert_eq!(
            file_of(CT, &body("a.png", b"")),
            Ok((vec![], ".png".into()))
        );
        // db_proxy's audio upload: no space after the part's `Content-Type:`.
        let b = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"1.audio\"\r\n\
                  Content-Type:image/jpg\r\n\r\nAUDIO\r\n--XyZ--\r\n\r\n";
        assert_eq!(file_of(CT, b), Ok((b"AUDIO".to_vec(), ".audio".into())));
    }

    #[test]
    fn thumbnail_sizes_are_kept_before_the_extension() {
        let suffix = |n: &str| file_of(CT, &body(n, b"x")).map(|(_, s)| s);
        assert_eq!(suffix("img_100x200.jpg"), Ok("_100x200.jpg".into()));
        assert_eq!(suffix("a_b_0640x480.png"), Ok("_640x480.png".into()));
        assert_eq!(suffix("img_wxh.jpg"), Ok("_0x0.jpg".into()));
        assert_eq!(suffix("img_12345x1.jpg"), Ok(".jpg".into()));
        assert_eq!(suffix("img_100.jpg"), Ok(".jpg".into()));
        assert_eq!(suffix("a.b_1x2"), Ok(".b_1x2".into()));
        assert_eq!(suffix("noscore.gif"), Ok(".gif".into()));
    }

    #[test]
    fn each_fault_has_the_cpp_code_in_the_cpp_order() {
        let err = |ct: &str, b: &[u8]| parse_upload(ct, b).unwrap_err().code();
        assert_eq!(err(CT, b"--XyZ\r\nno headers\r\n\r\nx\r\n--XyZ--"), 2);
        assert_eq!(
            err(CT, b"Content-Disposition: form-data; name=\"f\"\r\n"),
            3
        );
        assert_eq!(
            err(CT, b"Content-Disposition: form-data; filename=\"a.jpg"),
            3
        );
        assert_eq!(
            err(CT, b"Content-Disposition: form-data; filename=a.jpg\r\n"),
            3
        );
        assert_eq!(err(CT, &body(&"n".repeat(252), b"x")), 10);
        assert_eq!(
            err(CT, &body(&format!("{}.jpg", "n".repeat(252)), b"x")),
            11
        );
        assert_eq!(err(CT, &body("a.0123456789abcdef", b"x")), 9);
        assert_eq!(err(CT, &body("a.j/g", b"x")), 9);
        assert_eq!(err(CT, &body("a.j%2fg", b"x")), 9);
        assert_eq!(err("multipart/form-data", &body("a.jpg", b"x")), 4);
        assert_eq!(
            err("multipart/form-data; boundary=", &body("a.jpg", b"x")),
            4
        );
        assert_eq!(
            err("multipart/form-data; boundary=Other", &body("a.jpg", b"x")),
            5
        );
        let no_type =
            b"--XyZ\r\nContent-Disposition: form-data; filename=\"a.jpg\"\r\n\r\nx\r\n--XyZ--";
        assert_eq!(err(CT, no_type), 6);
        let no_blank =
            b"--XyZ\r\nContent-Disposition: form-data; filename=\"a.jpg\"\r\nContent-Type: x\r\n";
        assert_eq!(err(CT, no_blank), 7);
        let no_close = b"--XyZ\r\nContent-Disposition: form-data; filename=\"a.jpg\"\r\nContent-Type: x\r\n\r\ndata";
        assert_eq!(err(CT, no_close), 8);
        let squeezed = b"--XyZ\r\nContent-Disposition: form-data; filename=\"a.jpg\"\r\nContent-Type: x\r\n\r\n--XyZ";
        assert_eq!(err(CT, squeezed), 8);
    }

    #[test]
    fn quoted_boundaries_and_parameters() {
        assert_eq!(
            boundary("multipart/form-data; boundary=\"XyZ\""),
            Some("XyZ")
        );
        assert_eq!(
            boundary("multipart/form-data; boundary=XyZ; charset=x"),
            Some("XyZ")
        );
        assert_eq!(boundary("multipart/form-data; boundary=\"\""), None);
        assert_eq!(boundary("text/plain"), None);
    }

    #[test]
    fn atoi_reads_as_c_does() {
        assert_eq!(atoi(b"0640"), 640);
        assert_eq!(atoi(b" -12z"), -12);
        assert_eq!(atoi(b"+7"), 7);
        assert_eq!(atoi(b"abc"), 0);
        assert_eq!(atoi(b""), 0);
    }
}
