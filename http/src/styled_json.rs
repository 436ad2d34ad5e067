//! The JSON text of the HTTP answers, laid out as the C++ jsoncpp
//! `Json::Value::toStyledString` (`json_writer.cpp`, `StyledWriter`) lays
//! out a flat object: keys in byte order, one member per line indented by
//! three spaces, `" : "` between key and value, and a final newline. Clients
//! parse it as JSON; matching the layout keeps captures byte-comparable.
//! login_server and http_msg_server answer in it.

/// A scalar member value (the answers hold nothing else).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonScalar {
    /// An integer (`"code" : 0`).
    Int(i64),
    /// A string, escaped as JSON.
    Str(String),
}

/// `toStyledString` of a flat object with `members`.
pub fn styled_object(members: &[(&str, JsonScalar)]) -> String {
    if members.is_empty() {
        return "{}\n".to_string();
    }
    let mut sorted: Vec<&(&str, JsonScalar)> = members.iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let lines: Vec<String> = sorted
        .iter()
        .map(|(key, value)| {
            let value = match value {
                JsonScalar::Int(n) => n.to_string(),
                JsonScalar::Str(s) => quoted(s),
            };
            format!("   {} : {value}", quoted(key))
        })
        .collect();
    format!("{{\n{}\n}}\n", lines.join(",\n"))
}

/// A JSON string literal. jsoncpp escapes `"`, `\`, the named control
/// characters and other controls as `\u00XX`, and leaves `/` and non-ASCII
/// as they are; serde_json escapes the same set.
fn quoted(s: &str) -> String {
    // Serializing a &str cannot fail.
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lays_out_like_jsoncpp() {
        let text = styled_object(&[
            ("msg", JsonScalar::Str("没有msg_server".into())),
            ("code", JsonScalar::Int(1)),
        ]);
        assert_eq!(
            text,
            "{\n   \"code\" : 1,\n   \"msg\" : \"没有msg_server\"\n}\n"
        );
    }

    #[test]
    fn escapes_like_jsoncpp() {
        let text = styled_object(&[("u", JsonScalar::Str("a\"b\\c/d\r\u{1}".into()))]);
        assert_eq!(text, "{\n   \"u\" : \"a\\\"b\\\\c/d\\r\\u0001\"\n}\n");
        assert_eq!(styled_object(&[]), "{}\n");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["u"], "a\"b\\c/d\r\u{1}");
    }
}
