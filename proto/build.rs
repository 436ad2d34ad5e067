//! Generates the Rust for the nine `.proto` files with quick-protobuf's pb-rs,
//! plus, for every message, the table of its proto2 `required` fields that
//! `tt_proto::decode` checks (pb-rs decodes a body that lacks a required
//! field into a default value; the C++ `ParseFromArray` refuses it).
//!
//! Output: `$OUT_DIR/im.rs`, one file holding `pub mod IM { pub mod Login {..} .. }`
//! (pb-rs writes one file per package; we inline them so `include!` works).

use pb_rs::types::{Config, FieldType, FileDescriptor, Frequency, Message};
use pb_rs::ConfigBuilder;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const PROTOS: &[&str] = &[
    "IM.BaseDefine.proto",
    "IM.Buddy.proto",
    "IM.File.proto",
    "IM.Group.proto",
    "IM.Login.proto",
    "IM.Message.proto",
    "IM.Other.proto",
    "IM.Server.proto",
    "IM.SwitchService.proto",
];

type BoxError = Box<dyn std::error::Error>;

fn main() -> Result<(), BoxError> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let gen_dir = out_dir.join("pbrs");
    if gen_dir.exists() {
        std::fs::remove_dir_all(&gen_dir)?;
    }
    std::fs::create_dir_all(&gen_dir)?;
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let inputs: Vec<PathBuf> = PROTOS.iter().map(|p| manifest.join(p)).collect();
    for p in &inputs {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    println!("cargo:rerun-if-changed=build.rs");

    let configs: Vec<Config> = ConfigBuilder::new(
        &inputs,
        None,
        Some(&gen_dir),
        std::slice::from_ref(&manifest),
    )
    .map_err(|e| format!("pb-rs config: {e:?}"))?
    .dont_use_cow(true)
    .build();
    FileDescriptor::run(&configs).map_err(|e| format!("pb-rs: {e:?}"))?;

    let mut code = String::new();
    code.push_str("pub mod IM {\n");
    for proto in PROTOS {
        let module = module_of(proto);
        let text = std::fs::read_to_string(gen_dir.join("IM").join(format!("{module}.rs")))?;
        writeln!(code, "pub mod {module} {{")?;
        code.push_str(&text);
        code.push_str("\n}\n");
    }
    code.push_str("}\n");
    code.push_str(&required_tables(&manifest, &inputs)?);
    code.push_str(&command_tables(&manifest)?);
    std::fs::write(out_dir.join("im.rs"), code)?;
    Ok(())
}

/// `IM.Login.proto` -> `Login`.
fn module_of(proto: &str) -> &str {
    proto.trim_start_matches("IM.").trim_end_matches(".proto")
}

/// One message as the required-field check needs it.
struct MessageEntry {
    rust_path: String,
    required: Vec<i32>,
    /// The wire type of each required field.
    required_wire: Vec<u8>,
    /// (field number, full proto name of the message type)
    nested: Vec<(i32, String)>,
    /// (field number, the values its enum type defines)
    enums: Vec<(i32, Vec<i32>)>,
}

fn required_tables(include: &Path, inputs: &[PathBuf]) -> Result<String, BoxError> {
    let mut messages: BTreeMap<String, (String, &'static str, Message)> = BTreeMap::new();
    for (input, proto) in inputs.iter().zip(PROTOS) {
        let desc = FileDescriptor::read_proto(input, &[include.to_path_buf()])
            .map_err(|e| format!("pb-rs read {}: {e:?}", input.display()))?;
        for m in desc.messages.iter().filter(|m| !m.imported) {
            // The reference protocol has no nested messages; refuse to
            // silently skip them if a future file adds some.
            if !m.messages.is_empty() {
                return Err(format!("nested messages in {} are not supported", m.name).into());
            }
            let full = format!("{}.{}", desc.package, m.name);
            messages.insert(full, (desc.package.clone(), module_of(proto), m.clone()));
        }
    }
    let names: BTreeSet<String> = messages.keys().cloned().collect();
    let mut enum_values: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for input in inputs {
        let desc = FileDescriptor::read_proto(input, &[include.to_path_buf()])
            .map_err(|e| format!("pb-rs read {}: {e:?}", input.display()))?;
        for e in desc.enums.iter().filter(|e| !e.imported) {
            let values = e.fields.iter().map(|(_, v)| *v).collect();
            enum_values.insert(format!("{}.{}", desc.package, e.name), values);
        }
    }
    let mut entries = BTreeMap::new();
    for (full, (package, module, m)) in &messages {
        let mut required = Vec::new();
        let mut required_wire = Vec::new();
        let mut nested = Vec::new();
        let mut enums = Vec::new();
        for f in &m.fields {
            if f.frequency == Frequency::Required {
                required.push(f.number);
                required_wire.push(wire_type(&f.typ));
            }
            let type_name = match &f.typ {
                FieldType::MessageOrEnum(n) => n.trim_start_matches('.').to_string(),
                _ => continue,
            };
            let candidates = [type_name.clone(), format!("{package}.{type_name}")];
            let required_here = f.frequency == Frequency::Required;
            if let Some(target) = candidates.iter().find(|c| names.contains(*c)) {
                nested.push((f.number, target.clone()));
                if required_here {
                    if let Some(w) = required_wire.last_mut() {
                        *w = 2;
                    }
                }
            } else if let Some(values) = candidates.iter().find_map(|c| enum_values.get(c)) {
                enums.push((f.number, values.clone()));
                if required_here {
                    if let Some(w) = required_wire.last_mut() {
                        *w = 0;
                    }
                }
            } else {
                return Err(
                    format!("{full}: field {} has unknown type {type_name}", f.name).into(),
                );
            }
        }
        entries.insert(
            full.clone(),
            MessageEntry {
                rust_path: format!("IM::{module}::{}", m.name),
                required,
                required_wire,
                nested,
                enums,
            },
        );
    }

    let mut code = String::new();
    code.push_str(
        "\n/// Required-field tables, one per message, generated by build.rs.\npub mod schema {\n",
    );
    code.push_str("    use crate::wire::MessageSchema;\n");
    for (full, e) in &entries {
        let nested: Vec<String> = e
            .nested
            .iter()
            .map(|(n, t)| format!("({n}, &{})", static_name(t)))
            .collect();
        let enums: Vec<String> = e
            .enums
            .iter()
            .map(|(n, values)| format!("({n}, &{values:?})"))
            .collect();
        writeln!(
            code,
            "    pub static {}: MessageSchema = MessageSchema {{ name: {:?}, required: &{:?}, required_wire: &{:?}, nested: &[{}], enums: &[{}] }};",
            static_name(full),
            full,
            e.required,
            e.required_wire,
            nested.join(", "),
            enums.join(", ")
        )?;
    }
    code.push_str("}\n");
    for (full, e) in &entries {
        writeln!(
            code,
            "impl crate::ProtoMessage for {} {{ const SCHEMA: &'static crate::wire::MessageSchema = &schema::{}; }}",
            e.rust_path,
            static_name(full)
        )?;
    }
    writeln!(
        code,
        "/// Decodes `bytes` as the message named `full_name` and encodes it again:\n\
         /// the golden-vector tests use it to check every message without naming each type.\n\
         /// `None` when no message has that name."
    )?;
    writeln!(
        code,
        "pub fn reencode_by_name(full_name: &str, bytes: &[u8]) -> Option<Result<Vec<u8>, DecodeError>> {{\n    match full_name {{"
    )?;
    for (full, e) in &entries {
        writeln!(
            code,
            "        {full:?} => Some(decode::<{}>(bytes).map(|m| encode(&m))),",
            e.rust_path
        )?;
    }
    writeln!(code, "        _ => None,\n    }}\n}}")?;
    writeln!(code, "/// Every message's schema, by full proto name.")?;
    writeln!(
        code,
        "pub static ALL_SCHEMAS: &[&crate::wire::MessageSchema] = &[{}];",
        entries
            .keys()
            .map(|k| format!("&schema::{}", static_name(k)))
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    Ok(code)
}

/// The protobuf wire type of a (non-packed) field of type `t`.
fn wire_type(t: &FieldType) -> u8 {
    match t {
        FieldType::Fixed64 | FieldType::Sfixed64 | FieldType::Double => 1,
        FieldType::Fixed32 | FieldType::Sfixed32 | FieldType::Float => 5,
        FieldType::StringCow
        | FieldType::BytesCow
        | FieldType::String_
        | FieldType::Bytes_
        | FieldType::Message(_)
        | FieldType::Map(..) => 2,
        // Unresolved names here are enums (varint) or messages (2).
        FieldType::MessageOrEnum(_) => u8::MAX,
        _ => 0,
    }
}

/// `IM.Login.IMLoginReq` -> `IM_LOGIN_IMLOGINREQ`.
fn static_name(full: &str) -> String {
    full.replace('.', "_").to_uppercase()
}

/// The service each command-id enum of `IM.BaseDefine` belongs to.
const CMD_ENUMS: &[(&str, &str)] = &[
    ("LoginCmdID", "SID_LOGIN"),
    ("BuddyListCmdID", "SID_BUDDY_LIST"),
    ("MessageCmdID", "SID_MSG"),
    ("GroupCmdID", "SID_GROUP"),
    ("FileCmdID", "SID_FILE"),
    ("SwitchServiceCmdID", "SID_SWITCH_SERVICE"),
    ("OtherCmdID", "SID_OTHER"),
];

/// `sid` and `cid` constant modules from `IM.BaseDefine`'s enums, and a
/// `Command` impl for every message whose comment names the command that
/// carries it (`// CID_MSG_DATA (0x0301): ...` above `message IMMsgData`).
fn command_tables(manifest: &Path) -> Result<String, BoxError> {
    let base = manifest.join("IM.BaseDefine.proto");
    let desc = FileDescriptor::read_proto(&base, &[manifest.to_path_buf()])
        .map_err(|e| format!("pb-rs read {}: {e:?}", base.display()))?;
    let enum_of = |name: &str| desc.enums.iter().find(|e| e.name == name);
    let services = enum_of("ServiceID").ok_or("IM.BaseDefine has no ServiceID")?;
    let sid_value = |name: &str| -> Result<i32, BoxError> {
        services
            .fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .ok_or_else(|| format!("ServiceID has no {name}").into())
    };
    let mut code = String::new();
    code.push_str("\n/// Service ids (`IM.BaseDefine.ServiceID`) as the `u16` of a PDU header: `SID_MSG` is `sid::MSG`.\npub mod sid {\n");
    for (name, value) in &services.fields {
        writeln!(
            code,
            "    /// `{name}`.\n    pub const {}: u16 = {value:#06x};",
            name.trim_start_matches("SID_")
        )?;
    }
    code.push_str("}\n");
    // CID name -> (sid, cid)
    let mut commands: BTreeMap<String, (i32, i32)> = BTreeMap::new();
    code.push_str("/// Command ids (the `*CmdID` enums of `IM.BaseDefine`) as the `u16` of a PDU header: `CID_MSG_DATA` is `cid::MSG_DATA`.\npub mod cid {\n");
    for (enum_name, sid_name) in CMD_ENUMS {
        let e = enum_of(enum_name).ok_or_else(|| format!("IM.BaseDefine has no {enum_name}"))?;
        let sid = sid_value(sid_name)?;
        for (name, value) in &e.fields {
            writeln!(
                code,
                "    /// `{name}` ({enum_name}, under `{sid_name}`).\n    pub const {}: u16 = {value:#06x};",
                name.trim_start_matches("CID_")
            )?;
            commands.insert(name.clone(), (sid, *value));
        }
    }
    code.push_str("    /// The name of a command (`CID_MSG_DATA`), for logs and metrics; `None` when no enum defines it.\n");
    code.push_str("    pub fn name(service_id: u16, command_id: u16) -> Option<&'static str> {\n        match (service_id, command_id) {\n");
    for (name, (sid, cid)) in &commands {
        writeln!(
            code,
            "            ({sid:#06x}, {cid:#06x}) => Some({name:?}),"
        )?;
    }
    code.push_str("            _ => None,\n        }\n    }\n}\n");
    for proto in PROTOS {
        let text = std::fs::read_to_string(manifest.join(proto))?;
        let module = module_of(proto);
        let mut comment: Vec<&str> = Vec::new();
        for line in text.lines() {
            let t = line.trim();
            if let Some(c) = t.strip_prefix("//") {
                comment.push(c);
                continue;
            }
            if let Some(rest) = t.strip_prefix("message ") {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let carried = comment.first().and_then(|c| {
                    c.split(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                        .find(|w| w.starts_with("CID_"))
                });
                if let Some(cmd) = carried {
                    let (sid, cid) = commands
                        .get(cmd)
                        .ok_or_else(|| format!("{proto}: {name} names unknown command {cmd}"))?;
                    writeln!(
                        code,
                        "impl crate::Command for IM::{module}::{name} {{ const SID: u16 = {sid:#06x}; const CID: u16 = {cid:#06x}; }}"
                    )?;
                }
            }
            comment.clear();
        }
    }
    Ok(code)
}
