//! The parity tables with relations (`tests/filter_parity.rs`,
//! `tests/fuzz_filters.rs`): `items` (the queried model) belongs to a
//! `parent` through a nullable key and to an `owner` through a non-null one
//! (both `parents`), a parent belongs to a `grand` (`grands`, nullable key),
//! and an item has many `children` (`children.item_id`, nullable). Every table has
//! the columns of `parity::FIELDS` first (a field of every type), then its
//! foreign keys, so the filter generators work on any of them; `g` is
//! unpublished in the related tables.
//!
//! The contexts `Filter::matches` reads are built here with plain loops
//! over the generated rows, independently of the store's reads.
#![allow(dead_code)]

use std::sync::LazyLock;

use proptest::prelude::*;
use proptest::sample::Index;
use wyrmhole::sql::Dialect;
use wyrmhole::{FieldDef, FieldType, ModelInfo, Relation, RelationKind, Value};

use super::filter_gen::Target;
use super::parity::{field, insert, row, Db, FIELDS, SCHEMA_POSTGRES, SCHEMA_SQLITE};

/// Where the foreign keys sit in their tables' rows.
pub const PARENT_ID: usize = FIELDS.len();
pub const OWNER_ID: usize = FIELDS.len() + 1;
pub const BOSS_ID: usize = FIELDS.len() + 2;
pub const GRAND_ID: usize = FIELDS.len();
pub const ITEM_ID: usize = FIELDS.len();

/// The parity fields then `extra`, with `g` unpublished: a client's
/// filter may not read it through a relation either.
fn with(extra: &[FieldDef]) -> Vec<FieldDef> {
    let hide = |f: &FieldDef| FieldDef { published: f.name != "g", ..*f };
    FIELDS.iter().map(hide).chain(extra.iter().copied()).collect()
}

pub static ITEM_FIELDS: LazyLock<Vec<FieldDef>> = LazyLock::new(|| {
    with(&[
        FieldDef { relation: Some("parent"), ..field("parent_id", "parent_id", FieldType::I32, true) },
        FieldDef { relation: Some("owner"), ..field("owner_id", "owner_id", FieldType::I32, false) },
        FieldDef { relation: Some("boss"), ..field("boss_id", "boss_id", FieldType::I32, true) },
    ])
});
pub static PARENT_FIELDS: LazyLock<Vec<FieldDef>> = LazyLock::new(|| {
    with(&[FieldDef { relation: Some("grand"), ..field("grand_id", "grand_id", FieldType::I32, true) }])
});
pub static GRAND_FIELDS: LazyLock<Vec<FieldDef>> = LazyLock::new(|| with(&[]));
pub static CHILD_FIELDS: LazyLock<Vec<FieldDef>> =
    LazyLock::new(|| with(&[field("item_id", "item_id", FieldType::I32, true)]));

static ITEM_RELATIONS: &[Relation] = &[
    Relation { name: "parent", kind: RelationKind::BelongsTo { field: PARENT_ID }, target: parents },
    Relation { name: "owner", kind: RelationKind::BelongsTo { field: OWNER_ID }, target: parents },
    Relation { name: "children", kind: RelationKind::HasMany { via: "item_id", siblings: false }, target: children },
    // A self-relation: one hop back to `items` each way, never further.
    Relation { name: "boss", kind: RelationKind::BelongsTo { field: BOSS_ID }, target: items },
    Relation { name: "reports", kind: RelationKind::HasMany { via: "boss_id", siblings: false }, target: items },
];
static PARENT_RELATIONS: &[Relation] =
    &[Relation { name: "grand", kind: RelationKind::BelongsTo { field: GRAND_ID }, target: grands }];
// Relations the paths from `items` may not take: back to parents (a model
// twice), and from a child (past a has_many).
static GRAND_RELATIONS: &[Relation] =
    &[Relation { name: "parents", kind: RelationKind::HasMany { via: "grand_id", siblings: false }, target: parents }];
static CHILD_RELATIONS: &[Relation] =
    &[Relation { name: "item", kind: RelationKind::BelongsTo { field: ITEM_ID }, target: items }];

fn info(table: &'static str, fields: &'static [FieldDef], relations: &'static [Relation]) -> ModelInfo {
    ModelInfo { route: table, table, fields, primary_key: 0, relations }
}

static ITEMS: LazyLock<ModelInfo> = LazyLock::new(|| info("items", &ITEM_FIELDS, ITEM_RELATIONS));
static PARENTS: LazyLock<ModelInfo> = LazyLock::new(|| info("parents", &PARENT_FIELDS, PARENT_RELATIONS));
static GRANDS: LazyLock<ModelInfo> = LazyLock::new(|| info("grands", &GRAND_FIELDS, GRAND_RELATIONS));
static CHILDREN: LazyLock<ModelInfo> = LazyLock::new(|| info("children", &CHILD_FIELDS, CHILD_RELATIONS));

pub fn items() -> &'static ModelInfo {
    &ITEMS
}
pub fn parents() -> &'static ModelInfo {
    &PARENTS
}
pub fn grands() -> &'static ModelInfo {
    &GRANDS
}
pub fn children() -> &'static ModelInfo {
    &CHILDREN
}

/// The paths from `items`, in the order contexts hold them (checked
/// against `wyrmhole::relation::paths` by `contexts`).
pub const PATHS: &[&str] = &["parent", "parent__grand", "owner", "owner__grand", "children", "boss", "reports"];

/// Rows of the four tables, ids numbered from 1, keys pointing at rows
/// that exist (or NULL where nullable).
#[derive(Debug, Clone)]
pub struct Tables {
    pub grands: Vec<Vec<Value>>,
    pub parents: Vec<Vec<Value>>,
    pub items: Vec<Vec<Value>>,
    pub children: Vec<Vec<Value>>,
}

fn numbered(rows: Vec<Vec<Value>>) -> Vec<Vec<Value>> {
    rows.into_iter()
        .enumerate()
        .map(|(i, mut row)| {
            row[0] = Value::Int(i as i64 + 1);
            row
        })
        .collect()
}

/// The id of one of `n` rows, or NULL when there is none or `key` is `None`.
fn key(key: Option<Index>, n: usize) -> Value {
    match key {
        Some(i) if n > 0 => Value::Int(i.index(n) as i64 + 1),
        _ => Value::Null,
    }
}

/// Tables with parents no item references, items with a NULL parent,
/// items with no, one or several children, children of no item, and
/// items whose boss is none, another item or themselves. At least one
/// parent, since every item has an owner.
pub fn tables() -> impl Strategy<Value = Tables> {
    let some_key = || proptest::option::weighted(0.75, any::<Index>());
    (
        proptest::collection::vec(row(true), 0..4),
        proptest::collection::vec((row(true), some_key()), 1..5),
        proptest::collection::vec((row(true), some_key(), any::<Index>(), some_key()), 1..10),
        proptest::collection::vec((row(true), proptest::option::weighted(0.9, any::<Index>())), 0..12),
    )
        .prop_map(|(grands, parents, items, children)| {
            let grands = numbered(grands);
            let n = (grands.len(), parents.len(), items.len());
            let parents = numbered(
                parents
                    .into_iter()
                    .map(|(mut r, g)| {
                        r.push(key(g, n.0));
                        r
                    })
                    .collect(),
            );
            let items = numbered(
                items
                    .into_iter()
                    .map(|(mut r, p, o, b)| {
                        r.push(key(p, n.1));
                        r.push(key(Some(o), n.1));
                        r.push(key(b, n.2));
                        r
                    })
                    .collect(),
            );
            let children = if n.2 == 0 {
                Vec::new()
            } else {
                numbered(
                    children
                        .into_iter()
                        .map(|(mut r, i)| {
                            r.push(key(i, n.2));
                            r
                        })
                        .collect(),
                )
            };
            Tables { grands, parents, items, children }
        })
}

/// `CREATE TABLE <table>` with the parity columns (and their collations)
/// and `extra` ones.
fn create(base: &str, table: &str, extra: &str) -> String {
    let open = "CREATE TABLE items (";
    let start = base.find(open).unwrap() + open.len();
    let body = base[start..base.rfind(')').unwrap()].trim_end();
    let extra = if extra.is_empty() { String::new() } else { format!(",\n    {extra}") };
    format!("CREATE TABLE {table} ({body}{extra});\n")
}

/// Fresh tables holding `tables` (SQLite: a fresh database).
pub fn setup(db: &mut Db, tables: &Tables) {
    let base = match db.dialect() {
        Dialect::Sqlite => {
            *db = Db::open();
            SCHEMA_SQLITE
        }
        Dialect::Postgres => {
            db.batch("DROP TABLE IF EXISTS children, items, parents, grands");
            SCHEMA_POSTGRES
        }
    };
    let schema = [
        create(base, "grands", ""),
        create(base, "parents", "grand_id INTEGER REFERENCES grands (id)"),
        create(
            base,
            "items",
            // `boss_id` may name a later row: no constraint.
            "parent_id INTEGER REFERENCES parents (id), owner_id INTEGER NOT NULL REFERENCES parents (id), \
             boss_id INTEGER",
        ),
        create(base, "children", "item_id INTEGER REFERENCES items (id)"),
    ];
    db.batch(&schema.concat());
    insert(db, "grands", &GRAND_FIELDS, &tables.grands);
    insert(db, "parents", &PARENT_FIELDS, &tables.parents);
    insert(db, "items", &ITEM_FIELDS, &tables.items);
    insert(db, "children", &CHILD_FIELDS, &tables.children);
}

/// The row of `rows` whose id is `id` (none for NULL).
fn by_id<'a>(rows: &'a [Vec<Value>], id: &Value) -> Option<&'a Vec<Value>> {
    rows.iter().find(|r| !matches!(id, Value::Null) && r[0] == *id)
}

fn related<'a>(rows: impl IntoIterator<Item = &'a Vec<Value>>) -> Value {
    Value::Related(rows.into_iter().map(|r| r.clone().into_boxed_slice()).collect())
}

impl Tables {
    /// Each item followed by its context: the rows of each of [`PATHS`].
    pub fn contexts(&self) -> Vec<Vec<Value>> {
        let names: Vec<&str> = wyrmhole::relation::paths(items()).all.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, PATHS, "the paths from items");
        self.items
            .iter()
            .map(|item| {
                let parent = by_id(&self.parents, &item[PARENT_ID]);
                let owner = by_id(&self.parents, &item[OWNER_ID]);
                let grand = |p: Option<&Vec<Value>>| p.and_then(|p| by_id(&self.grands, &p[GRAND_ID]));
                let children = self.children.iter().filter(|c| c[ITEM_ID] == item[0]);
                let boss = by_id(&self.items, &item[BOSS_ID]);
                let reports = self.items.iter().filter(|r| r[BOSS_ID] == item[0]);
                let mut row = item.clone();
                row.extend([
                    related(parent),
                    related(grand(parent)),
                    related(owner),
                    related(grand(owner)),
                    related(children),
                    related(boss),
                    related(reports),
                ]);
                row
            })
            .collect()
    }

    /// Where generated keys go: own fields, and each path (own fields and
    /// the children most often).
    pub fn targets(&self) -> Vec<Target<'_>> {
        let t = |prefix, rows| Target { prefix, rows };
        vec![
            t("", &self.items),
            t("", &self.items),
            t("", &self.items),
            t("parent__", &self.parents),
            t("parent__", &self.parents),
            t("owner__", &self.parents),
            t("parent__grand__", &self.grands),
            t("owner__grand__", &self.grands),
            t("children__", &self.children),
            t("children__", &self.children),
            t("children__", &self.children),
            t("boss__", &self.items),
            t("reports__", &self.items),
        ]
    }
}
