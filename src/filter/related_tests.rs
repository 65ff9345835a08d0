//! Unit tests of filters through relations (`related.rs`, and how
//! `parse.rs` groups keys into [`Exists`]): on todo items that belong to a
//! list, which has many members and many items.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::filter::{FieldAccess, Filter, Node};
use crate::model::{FieldDef, FieldType, Row, Value};
use crate::relation::{paths, ModelInfo, Relation, RelationKind};

const fn field(name: &'static str, ty: FieldType, published: bool) -> FieldDef {
    FieldDef { name, column: name, ty, nullable: false, published, updatable: true, primary_key: false, relation: None }
}

static ITEM_FIELDS: &[FieldDef] = &[
    FieldDef { primary_key: true, ..field("id", FieldType::I32, true) },
    FieldDef { relation: Some("list"), ..field("list_id", FieldType::I32, true) },
    field("done", FieldType::Bool, true),
];
static LIST_FIELDS: &[FieldDef] = &[
    FieldDef { primary_key: true, ..field("id", FieldType::I32, true) },
    field("title", FieldType::Text, true),
    field("secret", FieldType::Text, false),
];
static MEMBER_FIELDS: &[FieldDef] = &[
    FieldDef { primary_key: true, ..field("id", FieldType::I32, true) },
    FieldDef { relation: Some("list"), ..field("list_id", FieldType::I32, true) },
    field("user_id", FieldType::I64, true),
    field("role", FieldType::Text, true),
];

static ITEM: ModelInfo = model("todo-item", "todo_items", ITEM_FIELDS, &[belongs_to("list", 1, list)]);
static LIST: ModelInfo = model(
    "todo-list",
    "todo_lists",
    LIST_FIELDS,
    &[has_many("members", "list_id", false, member), has_many("items", "list_id", false, item)],
);
static MEMBER: ModelInfo = model("list-member", "list_members", MEMBER_FIELDS, &[belongs_to("list", 1, list)]);

const fn belongs_to(name: &'static str, field: usize, target: fn() -> &'static ModelInfo) -> Relation {
    Relation { name, kind: RelationKind::BelongsTo { field }, target }
}

const fn has_many(
    name: &'static str,
    via: &'static str,
    siblings: bool,
    target: fn() -> &'static ModelInfo,
) -> Relation {
    Relation { name, kind: RelationKind::HasMany { via, siblings }, target }
}

const fn model(
    route: &'static str,
    table: &'static str,
    fields: &'static [FieldDef],
    relations: &'static [Relation],
) -> ModelInfo {
    ModelInfo { route, table, fields, primary_key: 0, relations }
}

fn item() -> &'static ModelInfo {
    &ITEM
}
fn list() -> &'static ModelInfo {
    &LIST
}
fn member() -> &'static ModelInfo {
    &MEMBER
}

fn parse(model: &'static ModelInfo, json: serde_json::Value) -> Filter {
    Filter::parse_model(model, &json, FieldAccess::Published, true).unwrap_or_else(|e| panic!("{json}: {e:?}"))
}

/// The messages for the one key refused.
fn refused(model: &'static ModelInfo, json: serde_json::Value, access: FieldAccess) -> (String, String) {
    let errors = Filter::parse_model(model, &json, access, true).expect_err("should be refused");
    assert_eq!(errors.0.len(), 1, "{errors:?}");
    let (key, messages) = errors.0.into_iter().next().unwrap();
    (key, messages.join(" | "))
}

/// An item of list 1, with its context: the list, and its members'
/// `(id, user_id, role)`.
fn item_row(title: &str, members: &[(i64, i64, &str)]) -> Vec<Value> {
    let list: Row = vec![Value::Int(1), Value::Text(title.into()), Value::Text("s".into())].into();
    let members: Vec<Row> = members
        .iter()
        .map(|&(id, user, role)| vec![Value::Int(id), Value::Int(1), Value::Int(user), Value::Text(role.into())].into())
        .collect();
    vec![
        Value::Int(9),
        Value::Int(1),
        Value::Bool(false),
        Value::Related(Arc::new([list])),
        Value::Related(members.into()),
    ]
}

#[test]
fn paths_of_items_and_lists() {
    let names = |m| paths(m).all.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(item()), ["list", "list__members"]);
    assert_eq!(names(list()), ["members", "items"]);
    assert_eq!(names(member()), ["list", "list__items"]);
}

#[test]
fn canonical_keys_ignore_key_order_but_not_grouping() {
    let a = parse(
        item(),
        json!({"list__title": "a", "done": true, "list__members__user_id": 3, "list__members__role": "r"}),
    );
    let b = parse(
        item(),
        json!({"list__members__role": "r", "list__members__user_id": 3, "done": true, "list__title": "a"}),
    );
    assert_eq!(a.canonical_key(), b.canonical_key());
    assert_eq!(a, b);
    // Split across `and` entries, the two member keys may hold in two rows.
    let split = parse(
        item(),
        json!({"done": true, "list__title": "a", "and": [{"list__members__user_id": 3}, {"list__members__role": "r"}]}),
    );
    assert_ne!(a.canonical_key(), split.canonical_key());
    // `and` entries in either order are the same filter.
    let swapped = parse(
        item(),
        json!({"and": [{"list__members__role": "r"}, {"list__members__user_id": 3}], "list__title": "a", "done": true}),
    );
    assert_eq!(split.canonical_key(), swapped.canonical_key());
    // A relation key never reads as an own key.
    assert_ne!(
        parse(item(), json!({"list__title": "a"})).canonical_key(),
        parse(list(), json!({"title": "a"})).canonical_key()
    );
}

#[test]
fn keys_of_one_object_need_one_related_row() {
    let same = parse(item(), json!({"list__members__user_id": 3, "list__members__role": "owner"}));
    let split = parse(item(), json!({"and": [{"list__members__user_id": 3}, {"list__members__role": "owner"}]}));
    let apart = item_row("t", &[(1, 3, "viewer"), (2, 4, "owner")]);
    let together = item_row("t", &[(1, 4, "viewer"), (2, 3, "owner")]);
    assert!(!same.matches(&apart) && split.matches(&apart));
    assert!(same.matches(&together) && split.matches(&together));
    // Without its context (a row not from a change) nothing is related.
    assert!(!same.matches(&apart[..3]));
}

#[test]
fn pins_through_relations_name_the_context_slot() {
    let slot = |name: &str| ITEM_FIELDS.len() + paths(item()).get(name).unwrap().slot;
    let user = 2;
    let f = parse(item(), json!({"list__members__user_id__in": [4, 3], "done": false}));
    let pin = related_pin(slot("list__members"), user);
    assert_eq!(split_pin(pin), Some((slot("list__members"), user)));
    assert_eq!(split_pin(2), None);
    assert_eq!(f.pins(), vec![(2, vec![&Value::Bool(false)]), (pin, vec![&Value::Int(3), &Value::Int(4)])]);
    // An `or` of branches that pin the same related field pins the union.
    let f = parse(item(), json!({"or": [{"list__members__user_id": 3}, {"list__members__user_id": 5, "done": true}]}));
    assert_eq!(f.pins(), vec![(pin, vec![&Value::Int(3), &Value::Int(5)])]);
    // Nothing under a `not`, nor an unindexable field.
    assert!(parse(item(), json!({"not": {"list__members__user_id": 3}})).pins().is_empty());
}

/// Two conditions on related rows may hold in two different rows, so the
/// pins of each must not be intersected as an own field's are: a row
/// matched holds, for every pin, one of its values in some related row.
#[test]
fn pins_of_separate_related_conditions_hold_in_every_matched_row() {
    let filters = [
        json!({"and": [{"list__members__user_id": 3}, {"list__members__user_id": 4}]}),
        json!({"and": [{"list__members__user_id__in": [3, 5]}, {"list__members__user_id__in": [4, 5]}]}),
    ];
    let row = item_row("t", &[(1, 3, "a"), (2, 4, "b")]);
    for json in filters {
        let f = parse(item(), json.clone());
        assert!(f.matches(&row), "{json}");
        let pins = f.pins();
        assert_eq!(pins.len(), 1, "{json}: {pins:?}");
        for (pin, values) in pins {
            let (at, field) = split_pin(pin).expect("a pin through the relation");
            let Value::Related(rows) = &row[at] else { panic!("no context at {at}") };
            assert!(rows.iter().any(|r| values.contains(&&r[field])), "{json}: pin {values:?} misses a matched row");
        }
    }
    // Within one object the same related row holds both: intersected.
    let f = parse(item(), json!({"list__members__user_id__in": [3, 5], "list__members__user_id__gte": 4}));
    assert_eq!(f.pins()[0].1, vec![&Value::Int(3), &Value::Int(5)]);
    let f = parse(item(), json!({"list__members__user_id__in": [3, 5], "list__members__user_id": 5}));
    assert_eq!(f.pins()[0].1, vec![&Value::Int(5)]);
}

#[test]
fn a_false_condition_on_related_rows_is_false() {
    for json in [json!({"list__title__in": []}), json!({"list__members__user_id__in": [null]})] {
        let f = parse(item(), json.clone());
        // SQL renders it `1 = 0` (`relation_cases_with_known_answers` in
        // tests/filter_parity.rs), not an `EXISTS` with an empty condition.
        assert!(f.root.is_false(), "{json}: {:?}", f.root);
    }
    // Under a `not` it is true; beside a true one, only the true one is left.
    assert!(parse(item(), json!({"not": {"list__title__in": []}})).root.is_true());
    let f = parse(item(), json!({"or": [{"list__title__in": []}, {"list__title": "a"}]}));
    assert!(matches!(&f.root, Node::Exists(_)), "{:?}", f.root);
}

#[test]
fn has_many_keys_without_a_field_name_the_primary_key() {
    let f = parse(list(), json!({"items": 4}));
    let g = parse(list(), json!({"items__id": 4}));
    let h = parse(list(), json!({"items__in": [4]}));
    assert_eq!(f, g);
    assert_eq!(f.canonical_key(), h.canonical_key());
    // The foreign key's own spellings stay the column.
    assert!(!parse(item(), json!({"list__in": [1, 2]})).has_relations());
    assert!(!parse(item(), json!({"list__pk__gt": 1})).has_relations());
    assert!(parse(item(), json!({"list__title": "x"})).has_relations());
}

#[test]
fn refusals_name_the_relation_and_the_key() {
    let (key, message) = refused(item(), json!({"done": true, "or": [{"list__titel": "x"}]}), FieldAccess::All);
    assert_eq!(key, "or.0.list__titel");
    assert!(message.starts_with("through relation `list` (todo-list): unknown field `titel`"), "{message}");
    // An unpublished related field reads as a missing one for a client,
    // and the message does not list it.
    let (_, client) = refused(item(), json!({"list__secret": "s"}), FieldAccess::Published);
    assert!(client.starts_with("through relation `list` (todo-list): unknown field `secret`"), "{client}");
    assert!(!client.contains("secret;") && !client.contains(", secret"), "{client}");
    assert!(Filter::parse_model(item(), &json!({"list__secret": "s"}), FieldAccess::All, true).is_ok());
    let (_, lookup) = refused(item(), json!({"list__members__user_id__icontains": "3"}), FieldAccess::All);
    assert!(lookup.starts_with("through relation `list__members` (list-member): lookup `icontains`"), "{lookup}");
    // A model twice, past a has_many: paths a filter may not follow.
    for json in [json!({"list__items__done": true}), json!({"list__members__list__title": "x"})] {
        let (_, message) = refused(item(), json.clone(), FieldAccess::All);
        assert!(message.contains("cannot be followed"), "{json}: {message}");
    }
    let (_, message) = refused(member(), json!({"list__items__list__title": "x"}), FieldAccess::All);
    assert!(message.starts_with("relation path `list__items__list` cannot be followed"), "{message}");
}

/// Items whose list is unpublished, and lists whose members' `list_id` is.
static HIDDEN_FIELDS: &[FieldDef] = &[
    FieldDef { primary_key: true, ..field("id", FieldType::I32, true) },
    FieldDef { relation: Some("list"), ..field("list_id", FieldType::I32, false) },
];
static SECRET_MEMBER_FIELDS: &[FieldDef] = &[
    FieldDef { primary_key: true, ..field("id", FieldType::I32, true) },
    FieldDef { relation: Some("list"), ..field("list_id", FieldType::I32, false) },
    field("user_id", FieldType::I64, true),
];
static HIDDEN: ModelInfo = model("hidden", "hidden", HIDDEN_FIELDS, &[belongs_to("list", 1, list)]);
static SECRET_LIST: ModelInfo =
    model("secret-list", "secret_lists", LIST_FIELDS, &[has_many("members", "list_id", false, secret_member)]);
static SECRET_MEMBER: ModelInfo = model("secret-member", "secret_members", SECRET_MEMBER_FIELDS, &[]);
fn secret_member() -> &'static ModelInfo {
    &SECRET_MEMBER
}

/// A relation keyed by an unpublished field is invisible to clients, as
/// the key itself is: its related rows would tell the hidden key (whose
/// list an item is, which lists a user is a member of). Scopes may.
#[test]
fn a_client_cannot_follow_a_relation_keyed_by_an_unpublished_field() {
    let cases: [(&'static ModelInfo, serde_json::Value); 4] = [
        (&HIDDEN, json!({"list__title": "x"})),
        (&HIDDEN, json!({"list__members__user_id": 1})),
        (&HIDDEN, json!({"list": 1})),
        (&SECRET_LIST, json!({"members__user_id": 1})),
    ];
    for (model, json) in cases {
        let key = json.as_object().unwrap().keys().next().unwrap().clone();
        let (at, message) = refused(model, json.clone(), FieldAccess::Published);
        assert_eq!(at, key);
        assert!(message.starts_with("unknown field `"), "{json}: {message}");
        assert!(!message.contains("list_id") && !message.contains("relation"), "{json}: {message}");
        assert!(Filter::parse_model(model, &json, FieldAccess::All, true).is_ok(), "{json}");
    }
}

/// Lists whose members see each other (`has_many(.., siblings)`), and a
/// self-relation on a card.
static SIBLING_LIST: ModelInfo =
    model("sibling-list", "sibling_lists", LIST_FIELDS, &[has_many("members", "list_id", true, sibling_member)]);
static SIBLING_MEMBER: ModelInfo =
    model("sibling-member", "sibling_members", MEMBER_FIELDS, &[belongs_to("list", 1, sibling_list)]);
fn sibling_list() -> &'static ModelInfo {
    &SIBLING_LIST
}
fn sibling_member() -> &'static ModelInfo {
    &SIBLING_MEMBER
}

#[test]
fn siblings_are_a_path_only_where_the_has_many_says_so() {
    let names = |m| paths(m).all.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(sibling_member()), ["list", "list__members"]);
    let f = parse(sibling_member(), json!({"list__members__user_id": 3, "list__members__role": "owner"}));
    assert_eq!(f.root.relations().count(), 1, "one related row for both keys");
    let (_, message) = refused(member(), json!({"list__members__user_id": 3}), FieldAccess::All);
    assert!(message.starts_with("relation path `list__members` cannot be followed"), "{message}");
}
