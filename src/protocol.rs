//! The wire protocol: request frames in, reply and event frames out, close
//! codes. `docs/protocol.md` describes the same shapes for client authors.

use serde::Deserialize;

use crate::change::Action;
use crate::error::Error;

/// The longest request `id` (a string, in bytes), `route` and `verb`: the
/// id is echoed in every reply, so a long one would be copied into each.
pub const MAX_NAME_BYTES: usize = 256;

/// The longest request `key` (see [`Request::key`]), in bytes: the server
/// keeps each in its database for a while.
pub const MAX_KEY_BYTES: usize = 128;

/// A request frame: `{"id": .., "route": "..", "verb": "..", "args": {..},
/// "key": ".."}` (`key` optional, writes only).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Echoed in the reply so the client can correlate (string or number).
    pub id: serde_json::Value,
    /// The route addressed.
    pub route: String,
    /// The verb to run.
    pub verb: String,
    /// The verb's arguments (an object; `{}` when absent).
    pub args: serde_json::Value,
    /// A write's idempotency key, chosen by the client (a UUID, say): a
    /// write sent again with the same key by the same identity is answered
    /// with the first one's reply instead of running twice.
    pub key: Option<String>,
}

impl Request {
    /// Parses a text frame. The error carries whatever request id could be
    /// recovered, so even a bad request gets a correlated reply.
    pub fn parse(text: &str) -> Result<Request, (serde_json::Value, Error)> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| (serde_json::Value::Null, Error::MalformedFrame(format!("invalid JSON: {e}"))))?;
        let serde_json::Value::Object(mut object) = value else {
            return Err((serde_json::Value::Null, Error::MalformedFrame("a request must be a JSON object".into())));
        };
        let mut id = object.remove("id").unwrap_or(serde_json::Value::Null);
        let mut problems = crate::error::FieldErrors::new();
        if !(id.is_string() || id.is_number()) {
            problems.add("id", "must be a string or a number");
        }
        if id.as_str().is_some_and(|s| s.len() > MAX_NAME_BYTES) {
            problems.add("id", format!("may be at most {MAX_NAME_BYTES} bytes long"));
        }
        id = Self::echoable(id);
        let mut text_field = |name: &str| match object.remove(name) {
            Some(serde_json::Value::String(s)) if s.len() > MAX_NAME_BYTES => {
                problems.add(name, format!("may be at most {MAX_NAME_BYTES} bytes long"));
                String::new()
            }
            Some(serde_json::Value::String(s)) if !s.is_empty() => s,
            _ => {
                problems.add(name, "must be a non-empty string");
                String::new()
            }
        };
        let route = text_field("route");
        let verb = text_field("verb");
        let args = match object.remove("args") {
            None | Some(serde_json::Value::Null) => serde_json::Value::Object(Default::default()),
            Some(args @ serde_json::Value::Object(_)) => args,
            Some(_) => {
                problems.add("args", "must be an object");
                serde_json::Value::Null
            }
        };
        let key = match object.remove("key") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(k)) if !k.is_empty() && k.len() <= MAX_KEY_BYTES => Some(k),
            Some(_) => {
                problems.add("key", format!("must be a string of 1 to {MAX_KEY_BYTES} bytes"));
                None
            }
        };
        for key in object.keys() {
            problems.add(key, "is not a request field (expected id, route, verb, args, key)");
        }
        if !problems.is_empty() {
            return Err((id, Error::BadArgs(problems)));
        }
        Ok(Request { id, route, verb, args, key })
    }

    /// Recovers just the id of a frame too large to handle, without
    /// building the rest of it.
    pub fn peek_id(text: &str) -> serde_json::Value {
        #[derive(Deserialize)]
        struct IdOnly {
            #[serde(default)]
            id: serde_json::Value,
        }
        Self::echoable(serde_json::from_str::<IdOnly>(text).map(|r| r.id).unwrap_or_default())
    }

    /// The id a reply echoes: a number, or a string of at most
    /// [`MAX_NAME_BYTES`]; anything else is echoed as `null`, so a reply
    /// never copies more of a request than that.
    pub fn echoable(id: serde_json::Value) -> serde_json::Value {
        match &id {
            serde_json::Value::Number(_) => id,
            serde_json::Value::String(s) if s.len() <= MAX_NAME_BYTES => id,
            _ => serde_json::Value::Null,
        }
    }
}

/// `{"type":"reply","id":..,"ok":true,"data":..}`
pub fn ok_reply(id: &serde_json::Value, data: serde_json::Value) -> String {
    serde_json::json!({ "type": "reply", "id": id, "ok": true, "data": data }).to_string()
}

/// `{"type":"reply","id":..,"ok":false,"error":{"code":..,"message":..,"fields":..}}`
pub fn error_reply(id: &serde_json::Value, error: &Error) -> String {
    serde_json::json!({ "type": "reply", "id": id, "ok": false, "error": error.to_json() }).to_string()
}

/// `{"type":"event","sub":..,"seq":..,"pos":..,"route":..,"action":..,"data":..}`.
/// `data` is already-serialized JSON shared between subscribers; only the
/// small head (`event_head`) is written per subscriber.
pub fn event_frame(sub: u64, seq: u64, pos: u64, route: &str, action: Action, data: &str) -> String {
    let mut frame = Vec::with_capacity(EVENT_HEAD_BYTES + route.len() + data.len());
    event_head(&mut frame, sub, seq, pos, route, action);
    frame.extend_from_slice(data.as_bytes());
    frame.push(b'}');
    String::from_utf8(frame).expect("an event frame is UTF-8")
}

/// Room for an event's head but its route: the fixed text and three
/// 20-digit numbers.
pub(crate) const EVENT_HEAD_BYTES: usize = 128;

/// Appends an event frame's head, everything before its shared `data`
/// (which is followed by `}` to close the frame).
pub(crate) fn event_head(out: &mut Vec<u8>, sub: u64, seq: u64, pos: u64, route: &str, action: Action) {
    EventHead::new(sub, seq, pos).write(out);
    event_tail(out, route, action);
}

/// The part of an event frame's head that differs per subscriber, formatted
/// before it is written: the transport writes the WebSocket header, which
/// holds the frame's length, first, then this and the route's
/// [`event_tail`] around the one serialized payload it shares with every
/// other subscriber of the change.
pub(crate) struct EventHead {
    /// `sub`, `seq` and `pos` in decimal, one after another.
    digits: [u8; 60],
    ends: [usize; 3],
}

const HEAD_PARTS: [&[u8]; 3] = [br#"{"type":"event","sub":"#, br#","seq":"#, br#","pos":"#];
const HEAD_FIXED: usize = HEAD_PARTS[0].len() + HEAD_PARTS[1].len() + HEAD_PARTS[2].len();

impl EventHead {
    pub(crate) fn new(sub: u64, seq: u64, pos: u64) -> Self {
        let mut digits = [0u8; 60];
        let mut ends = [0; 3];
        let mut at = 0;
        let mut buffer = itoa::Buffer::new();
        for (i, value) in [sub, seq, pos].into_iter().enumerate() {
            let text = buffer.format(value).as_bytes();
            digits[at..at + text.len()].copy_from_slice(text);
            at += text.len();
            ends[i] = at;
        }
        EventHead { digits, ends }
    }

    /// Writes the head up to the route, which [`event_tail`] continues.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        let mut start = 0;
        for (part, end) in HEAD_PARTS.iter().zip(self.ends) {
            out.extend_from_slice(part);
            out.extend_from_slice(&self.digits[start..end]);
            start = end;
        }
    }

    /// Its length in bytes.
    pub(crate) fn len(&self) -> usize {
        HEAD_FIXED + self.ends[2]
    }
}

/// The rest of an event's head, the same for every event of one route
/// and action: `,"route":..,"action":..,"data":`.
pub(crate) fn event_tail(out: &mut Vec<u8>, route: &str, action: Action) {
    out.extend_from_slice(br#","route":"#);
    if route.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)) {
        // The usual route name needs no escaping: skip serde_json's writer.
        out.push(b'"');
        out.extend_from_slice(route.as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(serde_json::Value::from(route).to_string().as_bytes());
    }
    out.extend_from_slice(br#","action":""#);
    out.extend_from_slice(action.as_str().as_bytes());
    out.extend_from_slice(br#"","data":"#);
}

/// An event of an ordered, limited window: an event frame with `index`,
/// the place the row takes in the window (0-based) once the client has
/// removed it from where it was; none for `deleted`.
pub fn window_event_frame(
    sub: u64,
    seq: u64,
    pos: u64,
    route: &str,
    action: Action,
    index: Option<usize>,
    data: &str,
) -> String {
    let mut frame = event_frame(sub, seq, pos, route, action, data);
    if let Some(index) = index {
        // Before the closing brace; `data` is the last member.
        frame.insert_str(frame.len() - 1, &format!(r#","index":{index}"#));
    }
    frame
}

/// `{"type":"gap","sub":..,"reason":..}`: the subscription ended because
/// changes were lost on their way to this server; subscribe again.
pub fn gap_frame(sub: u64, reason: &str) -> String {
    serde_json::json!({ "type": "gap", "sub": sub, "reason": reason }).to_string()
}

/// `{"type":"presence","topic":..,"event":"join"|"leave"|"update","member":{..}}`:
/// one change to a topic's member list.
pub fn presence_frame(topic: &str, event: &str, member: &impl serde::Serialize) -> String {
    serde_json::json!({ "type": "presence", "topic": topic, "event": event, "member": member }).to_string()
}

/// `{"type":"message","channel":..,"data":..}`: a channel message; `data`
/// is JSON text, written as it is.
pub fn message_frame(channel: &str, data: &str) -> String {
    format!(r#"{{"type":"message","channel":{},"data":{data}}}"#, serde_json::Value::from(channel))
}

/// `{"type":"push","data":..}`: a message the server sent to the user;
/// `data` is JSON text, written as it is.
pub fn push_frame(data: &str) -> String {
    format!(r#"{{"type":"push","data":{data}}}"#)
}

/// Why the server closed a connection, sent as the WebSocket close code and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    /// The close code.
    pub code: u16,
    /// A human-readable reason (at most 123 bytes, as WebSocket requires).
    pub reason: String,
}

impl CloseReason {
    /// 1000: the client asked to close.
    pub const NORMAL: u16 = 1000;
    /// 1001: the server is shutting down; reconnect.
    pub const GOING_AWAY: u16 = 1001;
    /// 1012: the server is draining (a restart or deploy) after flushing
    /// what it had queued; reconnect at once, to another server if there is
    /// one (RFC 6455's registry: "Service Restart").
    pub const SERVICE_RESTART: u16 = 1012;
    /// 1002: the client broke the WebSocket protocol (an unmasked frame, a
    /// reserved opcode or bit, a bad continuation).
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// 1007: a text frame that is not valid UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// 1009: a frame over the hard size limit (the soft limit gets an error reply instead).
    pub const TOO_BIG: u16 = 1009;
    /// 4001: no frame or pong from the client within the heartbeat timeout.
    pub const HEARTBEAT_TIMEOUT: u16 = 4001;
    /// 4008: the client read too slowly and its outbound queue filled up.
    pub const SLOW_CONSUMER: u16 = 4008;

    /// The outbound queue of `capacity` frames overflowed.
    pub fn slow_consumer(capacity: usize) -> Self {
        CloseReason {
            code: Self::SLOW_CONSUMER,
            reason: format!("slow consumer: outbound queue of {capacity} frames is full"),
        }
    }

    /// The outbound queue's `budget` of bytes would have overflowed.
    pub fn slow_consumer_bytes(budget: usize) -> Self {
        CloseReason {
            code: Self::SLOW_CONSUMER,
            reason: format!("slow consumer: outbound queue of {budget} bytes is full"),
        }
    }

    /// Nothing heard from the client for `secs` seconds.
    pub fn heartbeat_timeout(secs: f64) -> Self {
        CloseReason {
            code: Self::HEARTBEAT_TIMEOUT,
            reason: format!("heartbeat timeout: nothing received for {secs:.1}s"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_request() {
        let r = Request::parse(r#"{"id":1,"route":"item","verb":"get_list","args":{"filter":{}}}"#).unwrap();
        assert_eq!(r.id, 1);
        assert_eq!(r.verb, "get_list");
        let r = Request::parse(r#"{"id":"a","route":"item","verb":"get_list"}"#).unwrap();
        assert_eq!(r.args, serde_json::json!({}));
    }

    #[test]
    fn bad_requests_keep_their_id() {
        let (id, e) = Request::parse(r#"{"id":7,"route":5,"args":[]}"#).unwrap_err();
        assert_eq!(id, 7);
        assert_eq!(e.code(), "bad_args");
        let fields = e.fields().unwrap();
        assert!(fields.0.contains_key("route") && fields.0.contains_key("verb") && fields.0.contains_key("args"));
        let (id, e) = Request::parse("[1,2]").unwrap_err();
        assert_eq!((id, e.code()), (serde_json::Value::Null, "malformed_frame"));
        let (_, e) = Request::parse("{nope").unwrap_err();
        assert_eq!(e.code(), "malformed_frame");
    }

    #[test]
    fn long_ids_and_names_are_refused_without_echoing_them() {
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        let frame = serde_json::json!({"id": long, "route": long, "verb": "get_list"}).to_string();
        let (id, e) = Request::parse(&frame).unwrap_err();
        assert_eq!((id, e.code()), (serde_json::Value::Null, "bad_args"));
        let fields = e.fields().unwrap();
        assert!(fields.0.contains_key("id") && fields.0.contains_key("route"), "{fields:?}");
        let ok = "x".repeat(MAX_NAME_BYTES);
        assert!(Request::parse(&serde_json::json!({"id": ok, "route": ok, "verb": ok}).to_string()).is_ok());
    }

    #[test]
    fn event_frame_is_valid_json() {
        let frame = event_frame(3, 9, 120, "todo-item", Action::Updated, r#"{"id":1,"done":true}"#);
        let v: serde_json::Value = serde_json::from_str(&frame).unwrap();
        assert_eq!(v["seq"], 9);
        assert_eq!(v["data"]["done"], true);
        assert_eq!(v["action"], "updated");
        assert_eq!(v["sub"], 3);
        assert_eq!(v["pos"], 120);
        assert_eq!(v["route"], "todo-item");
        let max = event_frame(u64::MAX, u64::MAX, u64::MAX, "r", Action::Deleted, "{}");
        let v: serde_json::Value = serde_json::from_str(&max).unwrap();
        assert_eq!((v["sub"].as_u64(), v["pos"].as_u64()), (Some(u64::MAX), Some(u64::MAX)));
        for (sub, pos) in [(0, 0), (12345, 99), (u64::MAX, u64::MAX)] {
            let head = EventHead::new(sub, 1, pos);
            let mut out = Vec::new();
            head.write(&mut out);
            assert_eq!(head.len(), out.len());
        }
        for route in ["a\"b", "ü\\n", "x y"] {
            let v: serde_json::Value =
                serde_json::from_str(&event_frame(1, 1, 1, route, Action::Created, "{}")).unwrap();
            assert_eq!(v["route"], route);
        }
    }

    #[test]
    fn presence_and_message_frames_are_valid_json() {
        let v: serde_json::Value =
            serde_json::from_str(&presence_frame("t\"1", "join", &serde_json::json!({"id": "a.1"}))).unwrap();
        assert_eq!((v["topic"].as_str(), v["member"]["id"].as_str()), (Some("t\"1"), Some("a.1")));
        let v: serde_json::Value = serde_json::from_str(&message_frame("c\"h", r#"{"n":1}"#)).unwrap();
        assert_eq!(
            (v["type"].as_str(), v["channel"].as_str(), &v["data"]["n"]),
            (Some("message"), Some("c\"h"), &1.into())
        );
        let v: serde_json::Value = serde_json::from_str(&push_frame("[1,2]")).unwrap();
        assert_eq!(v["data"][1], 2);
    }

    #[test]
    fn peek_id_of_a_huge_frame() {
        assert_eq!(Request::peek_id(r#"{"route":"x","id":42,"args":{"data":"....."}}"#), 42);
        assert_eq!(Request::peek_id("not json"), serde_json::Value::Null);
    }
}
