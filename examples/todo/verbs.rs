//! The to-do example's custom verbs and the membership rules they share
//! with its routes' hooks: a list is its members'; its owner (creator)
//! alone shares, unshares, renames and deletes it; a member may leave it.

use serde_json::json;
use wyrmhole::{Error, Identity, Model};

use super::{uid, user_id, valid_name, ListMember, TodoItem, TodoList};

/// Makes `user_id` a member of list `list_id` (if not already); returns the membership.
pub(crate) fn add_member(
    tx: &mut wyrmhole::WriteTx<'_>,
    list_id: i32,
    user_id: i64,
    name: &str,
) -> Result<ListMember, Error> {
    let existing = tx.select::<ListMember>(&json!({ "list_id": list_id, "user_id": user_id }))?;
    if let Some(member) = existing.into_iter().next() {
        return Ok(member);
    }
    tx.insert::<ListMember>(&json!({ "list_id": list_id, "user_id": user_id, "name": name }))
}

/// Deletes every membership of a list (each delete published: the list
/// and its items leave those members' pages), before the list goes.
pub(crate) fn remove_members(tx: &mut wyrmhole::WriteTx<'_>, list_id: i32) -> Result<(), Error> {
    for member in tx.select::<ListMember>(&json!({ "list_id": list_id }))? {
        tx.delete::<ListMember>(member.id)?;
    }
    Ok(())
}

/// Deletes `user_id`'s membership of list `list_id` (`missing()` if there
/// is none); replies with the membership's id.
fn remove_member(
    tx: &mut wyrmhole::WriteTx<'_>,
    list_id: i32,
    user_id: i64,
    missing: impl FnOnce() -> Error,
) -> Result<serde_json::Value, Error> {
    let member = tx.select::<ListMember>(&json!({ "list_id": list_id, "user_id": user_id }))?;
    let member = member.into_iter().next().ok_or_else(missing)?;
    tx.delete::<ListMember>(member.id)?;
    Ok(json!({ "id": member.id }))
}

/// Members may edit a list's items; sharing, renaming and deleting it are
/// its owner's.
pub(crate) fn owner_only(list: &TodoList, who: &Identity, what: &str) -> Result<(), Error> {
    if list.owner_id == uid(who) && !who.is_anonymous() {
        Ok(())
    } else {
        Err(Error::Forbidden(format!("only the list's owner may {what} it")))
    }
}

/// The caller's list `id` (one they are a member of), or `not_found`: a
/// list outside the caller's lists is not theirs to know about.
fn member_list(tx: &mut wyrmhole::WriteTx<'_>, id: i64, who: &Identity) -> Result<TodoList, Error> {
    let found = tx.select::<TodoList>(&json!({ "id": id, "members__user_id": uid(who) }))?;
    found.into_iter().next().ok_or_else(|| Error::NotFound { route: TodoList::ROUTE.into(), id: id.to_string() })
}

/// The arguments `{"list_id": N, "user": "name"}` of `share` and `unshare`.
fn share_args(args: &serde_json::Value) -> Result<(i64, String), Error> {
    let serde_json::Value::Object(o) = args else { return Err(Error::bad_arg("args", "must be an object")) };
    if let Some(other) = o.keys().find(|k| !["list_id", "user"].contains(&k.as_str())) {
        return Err(Error::bad_arg(other, "is not an argument (give list_id and user)"));
    }
    let list_id = o.get("list_id").and_then(|v| v.as_i64());
    let list_id = list_id.ok_or_else(|| Error::bad_arg("list_id", "is required (a list id)"))?;
    let user = o.get("user").and_then(|v| v.as_str()).map(str::trim).unwrap_or_default();
    if !valid_name(user) {
        return Err(Error::bad_arg("user", "must be a sign-in name: letters, digits, _, - or ., at most 32"));
    }
    Ok((list_id, user.to_owned()))
}

/// `share {list_id, user}`: the list's owner makes the user a member; the
/// list and its items appear in that user's page at once. Sharing again
/// is a no-op answered alike.
pub(crate) async fn share(cx: wyrmhole::VerbContext, args: serde_json::Value) -> Result<serde_json::Value, Error> {
    let (list_id, user) = share_args(&args)?;
    let who = cx.identity.clone();
    cx.write(move |tx| {
        let list = member_list(tx, list_id, &who)?;
        owner_only(&list, &who, "share")?;
        let member = add_member(tx, list.id, user_id(&user), &user)?;
        Ok(wyrmhole::record::published(ListMember::FIELDS, &member.to_row()))
    })
    .await
}

/// `unshare {list_id, user}`: the list's owner removes a member; the list
/// and its items leave that user's page, and nothing of it reaches them
/// after. The owner cannot be removed.
pub(crate) async fn unshare(cx: wyrmhole::VerbContext, args: serde_json::Value) -> Result<serde_json::Value, Error> {
    let (list_id, user) = share_args(&args)?;
    let who = cx.identity.clone();
    cx.write(move |tx| {
        let list = member_list(tx, list_id, &who)?;
        owner_only(&list, &who, "unshare")?;
        let target = user_id(&user);
        if target == list.owner_id {
            return Err(Error::bad_arg("user", "is the list's owner, who stays a member"));
        }
        remove_member(tx, list.id, target, || Error::NotFound { route: ListMember::ROUTE.into(), id: user.clone() })
    })
    .await
}

/// The argument `{"list_id": N}` of `leave` and `clear_done`, and nothing else.
fn list_id_arg(args: &serde_json::Value) -> Result<i64, Error> {
    let list_id = match args {
        serde_json::Value::Object(o) if o.len() == 1 => o.get("list_id").and_then(|v| v.as_i64()),
        _ => None,
    };
    list_id.ok_or_else(|| Error::bad_arg("list_id", "is required (a list id), and nothing else"))
}

/// `leave {list_id}`: a member (not the owner) stops being one; the list
/// and its items leave their page, and the other members see them go.
pub(crate) async fn leave(cx: wyrmhole::VerbContext, args: serde_json::Value) -> Result<serde_json::Value, Error> {
    let list_id = list_id_arg(&args)?;
    let who = cx.identity.clone();
    cx.write(move |tx| {
        let list = member_list(tx, list_id, &who)?;
        if list.owner_id == uid(&who) {
            return Err(Error::bad_arg("list_id", "is your own list: delete it instead"));
        }
        remove_member(tx, list.id, uid(&who), || Error::NotFound {
            route: TodoList::ROUTE.into(),
            id: list_id.to_string(),
        })
    })
    .await
}

/// `clear_done {list_id}`: deletes the done items of one of the caller's
/// lists in one transaction; each delete is published like any other.
pub(crate) async fn clear_done(cx: wyrmhole::VerbContext, args: serde_json::Value) -> Result<serde_json::Value, Error> {
    let list_id = list_id_arg(&args)?;
    let me = uid(&cx.identity);
    cx.db
        .write(move |tx| {
            let filter = json!({ "list_id": list_id, "done": true, "list__members__user_id": me });
            let done = tx.select::<TodoItem>(&filter)?;
            for item in &done {
                tx.delete::<TodoItem>(item.id)?;
            }
            Ok::<_, Error>(json!({ "deleted": done.len() }))
        })
        .await
}

/// `delete_with_items {id}`: the owner deletes a list, its items and its
/// memberships in one transaction (a plain `delete` of a list that has
/// items is a `conflict`); every delete is published.
pub(crate) async fn delete_with_items(
    cx: wyrmhole::VerbContext,
    args: serde_json::Value,
) -> Result<serde_json::Value, Error> {
    let id = match &args {
        serde_json::Value::Object(o) if o.len() == 1 => o.get("id").and_then(|v| v.as_i64()),
        _ => None,
    };
    let id = id.ok_or_else(|| Error::bad_arg("id", "is required (a list id), and nothing else"))?;
    let who = cx.identity.clone();
    cx.db
        .write(move |tx| {
            let list = member_list(tx, id, &who)?;
            owner_only(&list, &who, "delete")?;
            let items = tx.select::<TodoItem>(&json!({ "list_id": id }))?;
            for item in &items {
                tx.delete::<TodoItem>(item.id)?;
            }
            remove_members(tx, list.id)?;
            tx.delete::<TodoList>(id)?;
            Ok::<_, Error>(json!({ "id": id, "items": items.len() }))
        })
        .await
}
