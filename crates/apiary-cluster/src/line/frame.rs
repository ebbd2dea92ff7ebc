//! What travels on a task line: length-delimited frames (a 4-byte big-endian length, then
//! the frame), in three kinds.
//!
//! - **Hello**, the caller's first frame: postcard of [`Hello`] (its node name and the
//!   single-use ticket token its peer handed out over their authenticated session). The
//!   server answers with one frame: empty if it accepts, else why not (UTF-8).
//! - **Call**: the call's id (8 bytes, little endian), then postcard of the task. One
//!   encode: the sender is known from the hello, so no envelope wraps the task.
//! - **Answer**: the call's id, a tag byte, then the output's postcard (tag 0), or why there
//!   is no output (tag 1: the task failed or was refused; tag 2: the task did not decode),
//!   UTF-8.
//!
//! Decoding never trusts the peer: a frame too short for its header, an unknown tag, or an
//! unreadable message is an error naming what was wrong, and a frame over [`MAX_FRAME`] is
//! refused by the codec before anything is allocated for it.

use serde::{Deserialize, Serialize};
use tokio_util::codec::LengthDelimitedCodec;

use crate::wire::Reply;

/// The largest frame either side reads or writes: 64 MiB.
pub(crate) const MAX_FRAME: usize = 64 << 20;

/// Bytes before a call's task or an answer's tag: the call id.
pub(crate) const ID_LEN: usize = 8;

/// A single-use ticket's secret.
pub(crate) type Token = [u8; 16];

/// The caller's first frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Hello {
    /// The calling node's name.
    pub(crate) from: String,
    /// The ticket the server handed out.
    pub(crate) token: Token,
}

/// The codec of both directions.
pub(crate) fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec()
}

/// A call frame for `task` with its id still blank ([`set_id`] fills it per attempt).
pub(crate) fn call<T: Serialize>(task: &T) -> Result<Vec<u8>, String> {
    let frame = postcard::to_extend(task, vec![0; ID_LEN]).map_err(|e| e.to_string())?;
    if frame.len() > MAX_FRAME {
        return Err(format!(
            "the task encodes to {} bytes, over the task line's limit of {MAX_FRAME}",
            frame.len() - ID_LEN
        ));
    }
    Ok(frame)
}

/// Writes the call id into a frame made by [`call`].
pub(crate) fn set_id(frame: &mut [u8], id: u64) {
    frame[..ID_LEN].copy_from_slice(&id.to_le_bytes());
}

/// A frame's call id and the rest.
pub(crate) fn split_id(frame: &[u8]) -> Result<(u64, &[u8]), String> {
    match frame.split_first_chunk::<ID_LEN>() {
        Some((id, rest)) => Ok((u64::from_le_bytes(*id), rest)),
        None => Err(format!(
            "a frame of {} bytes is too short for its call id",
            frame.len()
        )),
    }
}

/// The answer frame to call `id`. An output too large for a frame is answered as a failure
/// saying so: the call ends, and the line (with every other call on it) stays open.
pub(crate) fn answer(id: u64, reply: &Reply) -> Vec<u8> {
    if let Reply::Output(out) = reply
        && ID_LEN + 1 + out.len() > MAX_FRAME
    {
        let why = format!(
            "the output encodes to {} bytes, over the task line's limit of {MAX_FRAME}",
            out.len()
        );
        return answer(id, &Reply::Failed(why));
    }
    let (tag, body): (u8, &[u8]) = match reply {
        Reply::Output(out) => (0, out),
        Reply::Failed(why) => (1, why.as_bytes()),
        Reply::Undecodable(why) => (2, why.as_bytes()),
    };
    let mut frame = Vec::with_capacity(ID_LEN + 1 + body.len());
    frame.extend_from_slice(&id.to_le_bytes());
    frame.push(tag);
    frame.extend_from_slice(body);
    frame
}

/// Reads an answer frame: the call it answers and the reply.
pub(crate) fn read_answer(frame: &[u8]) -> Result<(u64, Reply), String> {
    let (id, rest) = split_id(frame)?;
    let text = |body: &[u8]| {
        String::from_utf8(body.to_vec()).map_err(|e| format!("answer to call {id}: {e}"))
    };
    let reply = match rest.split_first() {
        Some((0, out)) => Reply::Output(out.to_vec()),
        Some((1, why)) => Reply::Failed(text(why)?),
        Some((2, why)) => Reply::Undecodable(text(why)?),
        Some((tag, _)) => return Err(format!("answer to call {id} has unknown tag {tag}")),
        None => return Err(format!("answer to call {id} has no tag")),
    };
    Ok((id, reply))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_carries_its_id_and_the_task_encoded_once() {
        let mut frame = call(&(7u64, "seven")).unwrap();
        set_id(&mut frame, 42);
        let (id, task) = split_id(&frame).unwrap();
        assert_eq!(id, 42);
        assert_eq!(
            postcard::from_bytes::<(u64, String)>(task).unwrap(),
            (7, "seven".to_owned())
        );
    }

    #[test]
    fn a_task_over_the_frame_limit_fails_alone_naming_its_size_and_the_limit() {
        let huge = vec![7u8; MAX_FRAME];
        let err = call(&huge).unwrap_err();
        assert!(err.contains(&format!("limit of {MAX_FRAME}")), "{err}");
        assert!(call(&vec![7u8; 1024]).is_ok());
        let (id, reply) = read_answer(&answer(5, &Reply::Output(huge))).unwrap();
        assert!(
            matches!(&reply, Reply::Failed(why) if id == 5 && why.contains("over the task line's limit")),
            "{reply:?}"
        );
    }

    #[test]
    fn answers_round_trip_and_bad_ones_say_what_is_wrong() {
        for reply in [
            Reply::Output(vec![1, 2, 3]),
            Reply::Failed("boom".into()),
            Reply::Undecodable("eof".into()),
        ] {
            let (id, back) = read_answer(&answer(9, &reply)).unwrap();
            assert_eq!((id, format!("{back:?}")), (9, format!("{reply:?}")));
        }
        assert!(read_answer(&[1, 2]).unwrap_err().contains("too short"));
        assert!(read_answer(&[0; 8]).unwrap_err().contains("no tag"));
        let mut unknown = answer(3, &Reply::Failed(String::new()));
        unknown[8] = 9;
        assert!(read_answer(&unknown).unwrap_err().contains("unknown tag 9"));
        let mut not_utf8 = answer(3, &Reply::Failed("x".into()));
        not_utf8[9] = 0xff;
        assert!(read_answer(&not_utf8).unwrap_err().contains("call 3"));
    }
}
