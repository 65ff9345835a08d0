//! The presence and channel verbs clients send (`$presence` and `$channel`
//! requests), the app's hooks that authorize them per topic or channel
//! pattern and identity, and server code's publishing. The registries they
//! drive are in `crate::presence`; this module decides who may do what.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::auth::Identity;
use crate::error::{Error, FieldErrors};
use crate::presence::channels::Channels;
use crate::presence::{Member, Presence};
use crate::protocol::{self, Request, MAX_NAME_BYTES};
use crate::session::Session;

/// The pseudo-route of presence requests (`join`, `update`, `leave`).
pub const PRESENCE_ROUTE: &str = "$presence";
/// The pseudo-route of channel requests (`subscribe`, `unsubscribe`, `publish`).
pub const CHANNEL_ROUTE: &str = "$channel";

/// What a client asks to do on a channel, for the app's channel hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelAccess {
    /// Receive the channel's messages.
    Subscribe,
    /// Send a message to the channel's subscribers.
    Publish,
}

pub(crate) type PresenceHook = Arc<dyn Fn(&Identity, &str) -> bool + Send + Sync>;
pub(crate) type ChannelHook = Arc<dyn Fn(&Identity, &str, ChannelAccess) -> bool + Send + Sync>;

/// Hooks by name pattern: `"todo-list:*"` matches every name starting with
/// `todo-list:`, a pattern without a trailing `*` matches itself only. The
/// first pattern that matches decides; a name no pattern matches is refused.
pub(crate) struct Rules<H>(Vec<(String, H)>);

impl<H> Default for Rules<H> {
    fn default() -> Self {
        Rules(Vec::new())
    }
}

impl<H> Rules<H> {
    pub(crate) fn add(&mut self, pattern: &str, hook: H) {
        self.0.push((pattern.to_owned(), hook));
    }

    fn find(&self, name: &str) -> Option<&H> {
        self.0
            .iter()
            .find(|(pattern, _)| match pattern.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => pattern == name,
            })
            .map(|(_, hook)| hook)
    }
}

/// Presence and channels of one app: the registries and the hooks.
pub(crate) struct Live {
    pub(crate) presence: Arc<Presence>,
    pub(crate) channels: Arc<Channels>,
    pub(crate) topics: Rules<PresenceHook>,
    pub(crate) channel_rules: Rules<ChannelHook>,
    /// The largest channel message, in bytes of JSON.
    pub(crate) max_message_bytes: usize,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").field("presence", &self.presence).finish()
    }
}

/// A request's arguments, with nothing but `allowed` keys.
fn args<'a>(request: &'a Request, allowed: &[&str]) -> Result<&'a serde_json::Map<String, Value>, Error> {
    let args = request.args.as_object().ok_or_else(|| Error::bad_arg("args", "must be an object"))?;
    let mut problems = FieldErrors::new();
    for key in args.keys().filter(|k| !allowed.contains(&k.as_str())) {
        problems.add(key, format!("unknown argument (expected {})", allowed.join(", ")));
    }
    problems.into_result().map_err(Error::BadArgs)?;
    Ok(args)
}

/// A topic or channel name: a non-empty string of at most 256 bytes.
fn name<'a>(args: &'a serde_json::Map<String, Value>, key: &str) -> Result<&'a str, Error> {
    match args.get(key).and_then(Value::as_str) {
        Some(s) if !s.is_empty() && s.len() <= MAX_NAME_BYTES => Ok(s),
        _ => Err(Error::bad_arg(key, format!("must be a non-empty string of at most {MAX_NAME_BYTES} bytes"))),
    }
}

/// JSON text of `value`, if it fits `limit` bytes.
fn bounded(value: &Value, key: &str, limit: usize) -> Result<String, Error> {
    let text = value.to_string();
    if text.len() > limit {
        return Err(Error::bad_arg(key, format!("is {} bytes of JSON; at most {limit} are allowed", text.len())));
    }
    Ok(text)
}

impl Live {
    pub(crate) fn new(max_message_bytes: usize) -> Live {
        Live {
            presence: Presence::new(),
            channels: Arc::default(),
            topics: Rules::default(),
            channel_rules: Rules::default(),
            max_message_bytes,
        }
    }

    /// Runs a `$presence` or `$channel` request.
    pub(crate) fn handle(&self, session: &Session, request: &Request) -> Result<Option<Value>, Error> {
        match (request.route.as_str(), request.verb.as_str()) {
            (PRESENCE_ROUTE, "join") => self.join(session, request),
            (PRESENCE_ROUTE, "update") => self.update(session, request),
            (PRESENCE_ROUTE, "leave") => {
                let topic = name(args(request, &["topic"])?, "topic")?;
                if !self.presence.leave(session.conn(), topic) {
                    return Err(Error::bad_arg("topic", "this connection has not joined it"));
                }
                session.left_topic(topic);
                Ok(Some(json!({ "topic": topic })))
            }
            (CHANNEL_ROUTE, "subscribe") => {
                let channel = name(args(request, &["channel"])?, "channel")?;
                self.allow_channel(session, channel, ChannelAccess::Subscribe)?;
                if session.add_channel(channel)? {
                    self.channels.subscribe(channel, session.conn(), session.sink());
                    if !session.holds_channel(channel) {
                        // The connection ended meanwhile: take it out again.
                        self.channels.unsubscribe(channel, session.conn());
                    }
                }
                Ok(Some(json!({ "channel": channel })))
            }
            (CHANNEL_ROUTE, "unsubscribe") => {
                let channel = name(args(request, &["channel"])?, "channel")?;
                if !self.channels.unsubscribe(channel, session.conn()) {
                    return Err(Error::bad_arg("channel", "this connection is not subscribed to it"));
                }
                session.left_channel(channel);
                Ok(Some(json!({ "channel": channel })))
            }
            (CHANNEL_ROUTE, "publish") => {
                let args = args(request, &["channel", "data"])?;
                let channel = name(args, "channel")?;
                let data = args.get("data").ok_or_else(|| Error::bad_arg("data", "is required (any JSON)"))?;
                self.allow_channel(session, channel, ChannelAccess::Publish)?;
                self.channels.publish(channel, bounded(data, "data", self.max_message_bytes)?);
                Ok(Some(json!({ "channel": channel })))
            }
            (route, verb) => Err(Error::UnknownVerb { route: route.to_owned(), verb: verb.to_owned() }),
        }
    }

    fn allow_channel(&self, session: &Session, channel: &str, access: ChannelAccess) -> Result<(), Error> {
        match self.channel_rules.find(channel) {
            Some(hook) if hook(&session.identity, channel, access) => Ok(()),
            _ => {
                let verb = if access == ChannelAccess::Publish { "publish to" } else { "subscribe to" };
                Err(Error::Forbidden(format!("you may not {verb} channel {channel:?}")))
            }
        }
    }

    fn meta(&self, session: &Session, args: &serde_json::Map<String, Value>) -> Result<Value, Error> {
        let meta = args.get("meta").cloned().unwrap_or_else(|| json!({}));
        if !meta.is_object() {
            return Err(Error::bad_arg("meta", "must be an object"));
        }
        bounded(&meta, "meta", session.live_limits().max_meta_bytes)?;
        Ok(meta)
    }

    fn join(&self, session: &Session, request: &Request) -> Result<Option<Value>, Error> {
        let args = args(request, &["topic", "meta"])?;
        let topic = name(args, "topic")?;
        let meta = self.meta(session, args)?;
        match self.topics.find(topic) {
            Some(hook) if hook(&session.identity, topic) => {}
            _ => return Err(Error::Forbidden(format!("you may not join presence topic {topic:?}"))),
        }
        if !session.add_topic(topic)? {
            return Err(Error::bad_arg("topic", "this connection has joined it already; update or leave it"));
        }
        let identity = &session.identity;
        let id = self.presence.member_id();
        let member =
            Member { id: id.clone(), user: identity.user_id(), name: identity.name().map(str::to_owned), meta };
        // Bounded like any reply: a list too large for the connection is
        // refused (and nobody joins) rather than queued.
        let reply = |members: &[&Member]| {
            let frame = protocol::ok_reply(&request.id, json!({ "topic": topic, "id": id, "members": members }));
            let limit = session.max_reply_bytes();
            if frame.len() > limit {
                return Err(Error::ReplyTooLarge { size: frame.len(), limit });
            }
            Ok(frame)
        };
        if let Err(e) = self.presence.join(session.conn(), session.sink(), topic, member, reply) {
            session.left_topic(topic);
            return Err(e);
        }
        if !session.holds_topic(topic) {
            // The connection ended while joining: it must not stay a member.
            self.presence.leave(session.conn(), topic);
        }
        // The reply went out with the member list, ahead of later changes.
        Ok(None)
    }

    fn update(&self, session: &Session, request: &Request) -> Result<Option<Value>, Error> {
        let args = args(request, &["topic", "meta"])?;
        let topic = name(args, "topic")?;
        let meta = self.meta(session, args)?;
        let member = self
            .presence
            .update(session.conn(), topic, meta)
            .ok_or_else(|| Error::bad_arg("topic", "this connection has not joined it"))?;
        Ok(Some(json!({ "topic": topic, "id": member.id })))
    }

    /// Server code's publish: `data` to every subscriber of `channel`.
    pub(crate) fn publish(&self, channel: &str, data: &Value) -> Result<(), Error> {
        self.channels.publish(channel, bounded(data, "data", self.max_message_bytes)?);
        Ok(())
    }

    /// Server code's push to every connection of one user.
    pub(crate) fn to_user(&self, user: i64, data: &Value) -> Result<(), Error> {
        self.channels.to_user(user, bounded(data, "data", self.max_message_bytes)?);
        Ok(())
    }
}
