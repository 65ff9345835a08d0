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

/// Declared relations: models that name each other (`Board` has many
/// `Card`s, each `Card` belongs to its `Board`), a chain longer than a path
/// may be, a membership table and a self-relation. That they compile at all
/// is half the test: the relations are resolved through functions, so no
/// declaration order or cycle between models matters.
mod relations {
    use wyrmhole::relation::{paths, Path, MAX_HOPS};
    use wyrmhole::{Model, ModelInfo, RelationKind};

    #[derive(wyrmhole::Model)]
    struct Country {
        id: i32,
    }

    #[derive(wyrmhole::Model)]
    struct Org {
        id: i32,
        #[wyrm(belongs_to = Country)]
        country_id: i32,
    }

    #[derive(wyrmhole::Model)]
    #[wyrm(has_many(boards = Board, via = team_id))]
    struct Team {
        id: i64,
        #[wyrm(belongs_to = Org, relation = "org")]
        organisation: i32,
    }

    #[derive(wyrmhole::Model)]
    #[wyrm(has_many(cards = Card, via = board_id))]
    #[wyrm(has_many(members = Membership, via = "board_id"))]
    struct Board {
        id: i32,
        title: String,
        #[wyrm(belongs_to = Team)]
        team_id: i64,
    }

    #[derive(wyrmhole::Model)]
    struct Membership {
        id: i32,
        #[wyrm(belongs_to = Board)]
        board_id: i32,
        #[wyrm(belongs_to = User)]
        user_id: i64,
    }

    #[derive(wyrmhole::Model)]
    struct User {
        id: i64,
    }

    #[derive(wyrmhole::Model)]
    #[wyrm(has_many(children = Self, via = parent_id))]
    struct Card {
        id: i32,
        #[wyrm(belongs_to = Board)]
        board_id: i32,
        #[wyrm(belongs_to = Self)]
        parent_id: Option<i32>,
    }

    /// A model's relations as (name, kind, target table).
    fn relations(info: &ModelInfo) -> Vec<(&'static str, RelationKind, &'static str)> {
        info.relations.iter().map(|r| (r.name, r.kind, (r.target)().table)).collect()
    }

    /// A path as its name and the tables it passes through.
    fn described(path: &Path) -> (String, Vec<&'static str>) {
        let mut tables = vec![path.hops[0].from.table];
        tables.extend(path.hops.iter().map(|hop| hop.to.table));
        (path.name.clone(), tables)
    }

    fn path_names(info: &'static ModelInfo) -> Vec<String> {
        paths(info).all.iter().map(|p| p.name.clone()).collect()
    }

    #[test]
    fn info_describes_the_model() {
        let info = Board::info();
        assert_eq!((info.route, info.table, info.primary_key), ("boards", "boards", 0));
        assert_eq!(info.fields, Board::FIELDS);
        assert!(std::ptr::eq(info, Board::info()), "one static description per model");
        assert_eq!(relations(User::info()), []);
    }

    #[test]
    fn belongs_to_first_then_has_many_in_declaration_order() {
        use RelationKind::{BelongsTo, HasMany};
        assert_eq!(
            relations(Board::info()),
            [
                ("team", BelongsTo { field: 2 }, "teams"),
                ("cards", HasMany { via: "board_id", siblings: false }, "cards"),
                ("members", HasMany { via: "board_id", siblings: false }, "memberships"),
            ]
        );
        assert_eq!(
            relations(Membership::info()),
            [("board", BelongsTo { field: 1 }, "boards"), ("user", BelongsTo { field: 2 }, "users")]
        );
        // `relation = "org"` names a key that is not called `org_id`.
        assert_eq!(
            relations(Team::info()),
            [
                ("org", BelongsTo { field: 1 }, "orgs"),
                ("boards", HasMany { via: "team_id", siblings: false }, "boards")
            ]
        );
        assert_eq!(Team::FIELDS[1].relation, Some("org"));
        assert_eq!(Team::field_index("org__id"), Some(1));
    }

    #[test]
    fn self_relations_point_at_the_model_itself() {
        use RelationKind::{BelongsTo, HasMany};
        assert_eq!(
            relations(Card::info()),
            [
                ("board", BelongsTo { field: 1 }, "boards"),
                ("parent", BelongsTo { field: 2 }, "cards"),
                ("children", HasMany { via: "parent_id", siblings: false }, "cards"),
            ]
        );
        assert!(std::ptr::eq((Card::info().relations[1].target)(), Card::info()));
    }

    #[test]
    fn paths_follow_the_rules() {
        // Depth first in declaration order; at most MAX_HOPS relations; a
        // has_many only last (`board__members` stops there); no model twice,
        // except back to the card itself as the last relation: its own
        // `parent` and `children`, but not `board__cards` (the board's
        // has_many is not declared `siblings`).
        assert_eq!(MAX_HOPS, 3);
        let card = paths(Card::info());
        assert!(std::ptr::eq(card.root, Card::info()));
        let all: Vec<_> = card.all.iter().map(|p| described(p)).collect();
        assert_eq!(
            all,
            [
                ("board".to_owned(), vec!["cards", "boards"]),
                ("board__team".to_owned(), vec!["cards", "boards", "teams"]),
                ("board__team__org".to_owned(), vec!["cards", "boards", "teams", "orgs"]),
                ("board__members".to_owned(), vec!["cards", "boards", "memberships"]),
                ("parent".to_owned(), vec!["cards", "cards"]),
                ("children".to_owned(), vec!["cards", "cards"]),
            ]
        );
        for (slot, path) in card.all.iter().enumerate() {
            assert_eq!(path.slot, slot, "{}", path.name);
            assert_eq!(path.many(), ["board__members", "children"].contains(&path.name.as_str()), "{}", path.name);
        }
        let members = card.get("board__members").expect("a path to the board's members");
        assert_eq!(members.target().table, "memberships");
        assert_eq!(members.hops[0].key_field(), Some(1), "card.board_id");
        assert_eq!(members.hops[1].via(), Some(1), "membership.board_id");
        assert!(card.get("board__team__org__country").is_none(), "longer than MAX_HOPS");
        assert!(card.get("board__cards").is_none(), "siblings only where declared");
        assert!(card.get("parent__board").is_none(), "nothing after coming back");

        // From the other end of the same relations.
        assert_eq!(path_names(Board::info()), ["team", "team__org", "team__org__country", "cards", "members"]);
        assert_eq!(
            path_names(Membership::info()),
            ["board", "board__team", "board__team__org", "board__cards", "user"]
        );
        assert_eq!(path_names(Team::info()), ["org", "org__country", "boards"]);
        assert!(paths(User::info()).all.is_empty());
        // Computed once per model.
        assert!(std::ptr::eq(paths(Card::info()), card));
    }
}
