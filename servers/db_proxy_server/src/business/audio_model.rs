//! Voice messages: the C++ `business/AudioModel.cpp` (`CAudioModel`).
//!
//! An audio message's body is a 4-byte big-endian duration followed by the
//! sound. The sound is posted to the msfs at `MsfsSite`; a row of
//! `IMAudio` keeps the URL msfs returns, the size and the duration; the
//! message row's content is that row's id. Reading a message back
//! downloads the sound and rebuilds the body.

use super::{col_str, col_u32};
use crate::db_pool::{DbError, DbManager, SLAVE};
use mysql::prelude::Queryable;
use mysql::Row;
use tt_http::client::{self as http_client, HttpError};
use tt_proto::IM::BaseDefine::{MsgInfo, MsgType};

/// What the C++ shows as the text of an audio session's latest message,
/// before encryption.
const AUDIO_TEXT: &str = "[语音]";

/// The msfs site and the encrypted "\[语音\]" (`setUrl`, `strAudioEnc`).
pub struct AudioModel {
    site: String,
    latest_text: Vec<u8>,
}

/// A sound stored on msfs, not yet recorded in `IMAudio`.
pub struct UploadedAudio {
    /// The URL msfs answered with.
    pub path: String,
    /// Bytes of sound (the body less its 4-byte duration).
    pub size: u32,
    /// The duration the client put first.
    pub duration: u32,
}

impl AudioModel {
    /// `setUrl` plus `strAudioEnc`: the site gets a trailing `/`, and
    /// "\[语音\]" is encrypted once with `aesKey`.
    pub fn new(msfs_site: &str, aes_key: &str) -> Result<AudioModel, base::aes::AesError> {
        let mut site = msfs_site.to_string();
        if !site.ends_with('/') {
            site.push('/');
        }
        let aes = base::aes::Aes::new(aes_key.as_bytes())?;
        let latest_text = aes.encrypt(AUDIO_TEXT.as_bytes())?.into_bytes();
        Ok(AudioModel { site, latest_text })
    }

    /// The latest-message text of a session whose last message is audio.
    pub fn latest_text(&self) -> &[u8] {
        &self.latest_text
    }

    /// The first half of `saveAudioInfo`: posts the sound to msfs. Bodies
    /// of 4 bytes or less carry no sound and are refused, as in the C++.
    pub fn upload(&self, body: &[u8]) -> Result<Option<UploadedAudio>, HttpError> {
        if body.len() <= 4 {
            return Ok(None);
        }
        let duration = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        let sound = &body[4..];
        let Ok(size) = u32::try_from(sound.len()) else {
            return Ok(None);
        };
        let path = http_client::upload_byte_file(&self.site, sound)?;
        Ok(Some(UploadedAudio {
            path,
            size,
            duration,
        }))
    }
}

/// The second half of `saveAudioInfo`: the `IMAudio` row, written in the
/// caller's transaction; returns its id.
pub fn insert_audio(
    tx: &mut mysql::Transaction<'_>,
    from_id: u32,
    to_id: u32,
    created: u32,
    audio: &UploadedAudio,
) -> Result<Option<u64>, mysql::Error> {
    tx.exec_drop(
        "INSERT INTO IMAudio (fromId, toId, path, size, duration, created) \
         VALUES (?, ?, ?, ?, ?, ?)",
        (
            from_id,
            to_id,
            &audio.path,
            audio.size,
            audio.duration,
            created,
        ),
    )?;
    Ok(tx.last_insert_id())
}

fn is_audio(t: MsgType) -> bool {
    matches!(
        t,
        MsgType::MSG_TYPE_SINGLE_AUDIO | MsgType::MSG_TYPE_GROUP_AUDIO
    )
}

/// An `IMAudio` row, read before any download.
struct StoredAudio {
    id: u64,
    duration: u32,
    size: u32,
    path: String,
}

/// `readAudios`: replaces each audio message's content (an `IMAudio` id)
/// with the duration and the sound downloaded from msfs. As in the C++, a
/// message whose id does not query is dropped, and one whose sound cannot
/// be fetched keeps its stored content.
pub fn read_audios(db: &DbManager, list: &mut Vec<MsgInfo>) -> Result<(), DbError> {
    if !list.iter().any(|m| is_audio(m.msg_type)) {
        return Ok(());
    }
    // The rows first, then the downloads with no database connection held:
    // a slow or unreachable msfs must not starve the pool.
    let mut conn = db.get(SLAVE)?;
    let mut kept: Vec<(MsgInfo, Option<StoredAudio>)> = Vec::with_capacity(list.len());
    for msg in list.drain(..) {
        if !is_audio(msg.msg_type) {
            kept.push((msg, None));
            continue;
        }
        let Some(audio_id) = std::str::from_utf8(&msg.msg_data)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
        else {
            log::info!("audio message {} names no audio row, dropped", msg.msg_id);
            continue;
        };
        let row: Option<Row> = conn.run(|c| {
            crate::db_rows::exec_first(
                c,
                "SELECT duration, size, path FROM IMAudio WHERE id = ?",
                (audio_id,),
            )
        })?;
        let found = row.map(|row| StoredAudio {
            id: audio_id,
            duration: col_u32(&row, "duration"),
            size: col_u32(&row, "size"),
            path: col_str(&row, "path"),
        });
        kept.push((msg, found));
    }
    drop(conn);
    for (msg, found) in &mut kept {
        let Some(a) = found else {
            continue;
        };
        if a.path.is_empty() || a.duration == 0 || a.size == 0 {
            continue;
        }
        match http_client::download_byte_file(&a.path, a.size as usize) {
            Ok(sound) => {
                let mut body = Vec::with_capacity(4 + sound.len());
                body.extend_from_slice(&a.duration.to_be_bytes());
                body.extend_from_slice(&sound);
                msg.msg_data = body;
            }
            Err(e) => log::warn!("audio {}: download from {}: {e}", a.id, a.path),
        }
    }
    *list = kept.into_iter().map(|(m, _)| m).collect();
    Ok(())
}
