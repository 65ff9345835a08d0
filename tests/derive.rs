//! `#[derive(Model)]` beside Diesel's own derive: every generated const and
//! the field accessor, including the defaults the derive infers.

use wyrmhole::{FieldDef, FieldType, Model, ValueRef};

mod schema {
    diesel::table! {
        todo_items (id) {
            id -> Integer,
            list_id -> Integer,
            text -> Text,
            done -> Bool,
            priority -> Nullable<SmallInt>,
            owner -> BigInt,
            score -> Double,
            created_by -> Integer,
            kind -> Text,
        }
    }

    diesel::table! {
        todo_lists (slug) {
            slug -> Text,
            title -> Text,
            id -> Integer,
            parent_ref -> Nullable<Text>,
        }
    }
}

#[derive(Debug, diesel::QueryableByName, wyrmhole::Model)]
#[diesel(table_name = schema::todo_items, check_for_backend(diesel::sqlite::Sqlite))]
#[wyrm(route = "todo-item")]
struct TodoItem {
    id: i32,
    #[wyrm(update)]
    list_id: i32,
    #[wyrm(update)]
    text: String,
    #[wyrm(update)]
    done: bool,
    #[wyrm(update)]
    priority: Option<i16>,
    #[wyrm(relation = "user")]
    owner: i64,
    score: f64,
    #[wyrm(skip)]
    created_by: i32,
    #[diesel(column_name = kind)]
    r#type: String,
}

/// No `route`, a non-`id` primary key, and a field named `id` that is
/// therefore an ordinary (non-key, relation-less) field.
#[derive(Debug, diesel::QueryableByName, wyrmhole::Model)]
#[diesel(table_name = crate::schema::todo_lists)]
struct TodoList {
    #[wyrm(primary_key)]
    slug: String,
    #[wyrm(update)]
    title: String,
    id: i32,
    #[wyrm(update, relation = "parent")]
    parent_ref: Option<String>,
}

/// Without `#[diesel(table_name)]` the table follows Diesel's default rule.
#[derive(wyrmhole::Model)]
struct AuditLogEntry {
    id: i64,
}

const fn def(name: &'static str, ty: FieldType) -> FieldDef {
    FieldDef {
        name,
        column: name,
        ty,
        nullable: false,
        published: true,
        updatable: false,
        primary_key: false,
        relation: None,
    }
}

#[test]
fn todo_item_description() {
    assert_eq!(TodoItem::ROUTE, "todo-item");
    assert_eq!(TodoItem::TABLE, "todo_items");
    assert_eq!(TodoItem::PRIMARY_KEY, 0);
    let expected = [
        FieldDef { primary_key: true, ..def("id", FieldType::I32) },
        FieldDef { updatable: true, relation: Some("list"), ..def("list_id", FieldType::I32) },
        FieldDef { updatable: true, ..def("text", FieldType::Text) },
        FieldDef { updatable: true, ..def("done", FieldType::Bool) },
        FieldDef { updatable: true, nullable: true, ..def("priority", FieldType::I16) },
        FieldDef { relation: Some("user"), ..def("owner", FieldType::I64) },
        def("score", FieldType::F64),
        FieldDef { published: false, ..def("created_by", FieldType::I32) },
        FieldDef { column: "kind", ..def("type", FieldType::Text) },
    ];
    assert_eq!(TodoItem::FIELDS, expected);
}

#[test]
fn todo_list_description() {
    assert_eq!(TodoList::ROUTE, "todo_lists");
    assert_eq!(TodoList::TABLE, "todo_lists");
    assert_eq!(TodoList::PRIMARY_KEY, 0);
    let expected = [
        FieldDef { primary_key: true, ..def("slug", FieldType::Text) },
        FieldDef { updatable: true, ..def("title", FieldType::Text) },
        def("id", FieldType::I32),
        FieldDef { updatable: true, nullable: true, relation: Some("parent"), ..def("parent_ref", FieldType::Text) },
    ];
    assert_eq!(TodoList::FIELDS, expected);
}

#[test]
fn default_table_name() {
    assert_eq!(AuditLogEntry::TABLE, "audit_log_entrys");
    assert_eq!(AuditLogEntry::ROUTE, "audit_log_entrys");
    assert_eq!(AuditLogEntry::PRIMARY_KEY, 0);
    assert_eq!(AuditLogEntry { id: 7 }.field(0), ValueRef::Int(7));
}

fn item() -> TodoItem {
    TodoItem {
        id: 1,
        list_id: 2,
        text: "milk".into(),
        done: true,
        priority: None,
        owner: 1 << 40,
        score: 0.5,
        created_by: 9,
        r#type: "chore".into(),
    }
}

#[test]
fn field_values() {
    let item = item();
    let values: Vec<ValueRef<'_>> = (0..TodoItem::FIELDS.len()).map(|i| item.field(i)).collect();
    assert_eq!(
        values,
        [
            ValueRef::Int(1),
            ValueRef::Int(2),
            ValueRef::Text("milk"),
            ValueRef::Bool(true),
            ValueRef::Null,
            ValueRef::Int(1 << 40),
            ValueRef::Float(0.5),
            ValueRef::Int(9),
            ValueRef::Text("chore"),
        ]
    );
    let with_priority = TodoItem { priority: Some(-3), ..item };
    assert_eq!(with_priority.field(4), ValueRef::Int(-3));

    let list = TodoList { slug: "groceries".into(), title: "Groceries".into(), id: 5, parent_ref: Some("home".into()) };
    assert_eq!(list.field(TodoList::PRIMARY_KEY), ValueRef::Text("groceries"));
    assert_eq!(list.field(3), ValueRef::Text("home"));
}

#[test]
#[should_panic(expected = "field index 9 out of range for model `TodoItem` (9 fields)")]
fn field_index_out_of_range_panics() {
    item().field(9);
}

#[test]
fn field_index_by_name_and_relation() {
    assert_eq!(TodoItem::field_index("list_id"), Some(1));
    assert_eq!(TodoItem::field_index("list__id"), Some(1));
    assert_eq!(TodoItem::field_index("list"), Some(1));
    assert_eq!(TodoItem::field_index("user__id"), Some(5));
    assert_eq!(TodoItem::field_index("type"), Some(8));
    assert_eq!(TodoItem::field_index("nope"), None);
    assert_eq!(TodoList::field_index("parent__id"), Some(3));
}
