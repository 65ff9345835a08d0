//! The [`Model`] trait: what `#[derive(Model)]` fills in for a Diesel model.
//!
//! A model describes itself as a static table of [`FieldDef`]s plus typed
//! access to each field's value. Everything else wyrmhole does with a model
//! (publishing JSON, accepting patches, evaluating filters in memory and in
//! SQL, fanning out changes) is generic code over that description, the way
//! serde's derive only fills in `Serialize` and leaves the formats to serde.

pub(crate) use crate::field::json_kind;
pub use crate::field::{FieldType, FieldValue, Storage};
pub use crate::value::{Row, Value, ValueRef};

/// One field of a model, as the derive describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDef {
    /// The field's name, as clients see it in JSON and filters.
    pub name: &'static str,
    /// The SQL column name (the same as `name` unless `#[diesel(column_name)]`).
    pub column: &'static str,
    /// The column's type family.
    pub ty: FieldType,
    /// Whether the field is an `Option<_>` (a nullable column).
    pub nullable: bool,
    /// Whether clients receive it (`false` for `#[wyrm(skip)]`).
    pub published: bool,
    /// Whether clients may write it in `create` and `update` (`#[wyrm(update)]`).
    pub updatable: bool,
    /// Whether it is the primary key (`#[wyrm(primary_key)]`, or the field named `id`).
    pub primary_key: bool,
    /// For a foreign-key field such as `list_id`, the relation name (`list`)
    /// under which filters may write `list__id`.
    pub relation: Option<&'static str>,
}

/// A self-publishing model. Derive it with `#[derive(wyrmhole::Model)]`
/// beside Diesel's `QueryableByName`:
///
/// ```
/// # mod schema { diesel::table! { todo_items (id) { id -> Integer, list_id -> Integer, text -> Text, done -> Bool, created_by -> Integer } } }
/// # use schema::todo_items;
/// #[derive(Debug, diesel::QueryableByName, wyrmhole::Model)]
/// #[diesel(table_name = todo_items)]
/// #[wyrm(route = "todo-item")]
/// struct TodoItem {
///     id: i32,
///     #[wyrm(update)]
///     list_id: i32,
///     #[wyrm(update)]
///     text: String,
///     #[wyrm(update)]
///     done: bool,
///     #[wyrm(skip)]
///     created_by: i32,
/// }
///
/// use wyrmhole::Model;
/// assert_eq!(TodoItem::ROUTE, "todo-item");
/// assert_eq!(TodoItem::TABLE, "todo_items");
/// let list_id = TodoItem::field_index("list__id").unwrap();
/// assert_eq!(TodoItem::FIELDS[list_id].name, "list_id");
/// ```
///
/// Field attributes: `#[wyrm(update)]` lets clients write the field,
/// `#[wyrm(skip)]` keeps it from clients (and from client filters),
/// `#[wyrm(primary_key)]` names the key when it is not `id`, and
/// `#[wyrm(relation = "list")]` names a foreign key's relation when the field
/// is not called `<relation>_id`.
///
/// Relations that filters and scopes may follow (`list__title`,
/// `list__members__user_id`; see [`crate::relation`] for the paths they
/// make): `#[wyrm(belongs_to = TodoList)]` on a foreign key field (its
/// relation name as above; `belongs_to = Self` for a self-relation), and on
/// the struct, once per relation,
/// `#[wyrm(has_many(members = ListMember, via = list_id))]`: `ListMember`'s
/// field `list_id` holds this model's primary key; add `siblings`
/// (`has_many(members = ListMember, via = list_id, siblings)`) to let a
/// membership's filters reach the other memberships of its list
/// (`list__members__user_id`). Two models may name each
/// other. The compiler refuses a target that is not a `Model`, a foreign key
/// whose type differs from the target's primary key, and a `via` field the
/// target lacks or stores differently:
///
/// ```
/// use wyrmhole::{Model, RelationKind};
///
/// #[derive(wyrmhole::Model)]
/// #[wyrm(has_many(items = TodoItem, via = list_id))]
/// struct TodoList {
///     id: i32,
///     title: String,
/// }
///
/// #[derive(wyrmhole::Model)]
/// struct TodoItem {
///     id: i32,
///     #[wyrm(belongs_to = TodoList)]
///     list_id: i32,
///     #[wyrm(belongs_to = Self, relation = "parent")]
///     parent_item: Option<i32>,
/// }
///
/// let list = &TodoItem::info().relations[0];
/// assert_eq!((list.name, list.kind), ("list", RelationKind::BelongsTo { field: 1 }));
/// assert_eq!((list.target)().table, "todo_lists");
/// let items = &TodoList::info().relations[0];
/// assert_eq!((items.name, items.kind), ("items", RelationKind::HasMany { via: "list_id", siblings: false }));
///
/// // The paths a filter on an item may follow: `list` and its own `parent`,
/// // not `list__items` (the list's `has_many` does not say `siblings`).
/// let paths = wyrmhole::relation::paths(TodoItem::info());
/// let names: Vec<&str> = paths.all.iter().map(|p| p.name.as_str()).collect();
/// assert_eq!(names, ["list", "parent"]);
/// ```
///
/// A mismatch fails the build at the attribute, naming both types:
///
/// ```compile_fail,E0080
/// #[derive(wyrmhole::Model)]
/// struct TodoList {
///     id: i32,
/// }
///
/// #[derive(wyrmhole::Model)]
/// struct TodoItem {
///     id: i32,
///     // error[E0080]: `belongs_to = TodoList` on `TodoItem::list_id`: the foreign
///     // key is stored as i64 but `TodoList`'s primary key `id` is stored as i32
///     #[wyrm(belongs_to = TodoList)]
///     list_id: i64,
/// }
/// ```
pub trait Model: Sized + Send + Sync + 'static {
    /// The route name clients address (`#[wyrm(route = "...")]`, default: the table name).
    const ROUTE: &'static str;
    /// The SQL table.
    const TABLE: &'static str;
    /// Every field, in declaration order.
    const FIELDS: &'static [FieldDef];
    /// The index of the primary key in [`Model::FIELDS`].
    const PRIMARY_KEY: usize;

    /// The value of the field at `index` in [`Model::FIELDS`].
    fn field(&self, index: usize) -> ValueRef<'_>;

    /// The model as relations see it: its fields and the relations it
    /// declares (`#[wyrm(belongs_to = ..)]`, `#[wyrm(has_many(..))]`).
    fn info() -> &'static ModelInfo;

    /// Finds a field by the name a filter uses: its own name, `pk` for the
    /// primary key, or `<relation>__id` / `<relation>` for a foreign key.
    fn field_index(name: &str) -> Option<usize> {
        field_index(Self::FIELDS, name)
    }

    /// The whole row as owned values, in field order.
    fn to_row(&self) -> Row {
        (0..Self::FIELDS.len()).map(|i| self.field(i).to_owned()).collect()
    }
}

/// Looks a filter's field name up in a field table; see [`Model::field_index`].
/// `pk` names the primary key, as in Django, unless a field is called `pk`.
pub fn field_index(fields: &[FieldDef], name: &str) -> Option<usize> {
    if let Some(i) = fields.iter().position(|f| f.name == name) {
        return Some(i);
    }
    if name == "pk" {
        return fields.iter().position(|f| f.primary_key);
    }
    let relation = name.strip_suffix("__id").or_else(|| name.strip_suffix("__pk")).unwrap_or(name);
    fields.iter().position(|f| f.relation == Some(relation))
}

/// A model as relations see it: what [`crate::Model`] says of itself,
/// reachable at run time from another model's [`Relation`].
#[derive(Debug)]
pub struct ModelInfo {
    /// The route clients address.
    pub route: &'static str,
    /// The SQL table.
    pub table: &'static str,
    /// Every field, in declaration order.
    pub fields: &'static [FieldDef],
    /// The index of the primary key in `fields`.
    pub primary_key: usize,
    /// The relations it declares.
    pub relations: &'static [Relation],
}

/// One declared relation.
#[derive(Debug)]
pub struct Relation {
    /// The name filters use (`list` in `list__title`).
    pub name: &'static str,
    /// Which side holds the key.
    pub kind: RelationKind,
    /// The related model (a function, so that two models may name each other).
    pub target: fn() -> &'static ModelInfo,
}

/// Which side of a relation holds the foreign key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelationKind {
    /// This model's field (an index into its fields) holds the target's
    /// primary key: one related row, or none when the key is NULL.
    BelongsTo {
        /// The foreign key field.
        field: usize,
    },
    /// The target's field named `via` holds this model's primary key: any
    /// number of related rows.
    HasMany {
        /// The target's foreign key field.
        via: &'static str,
        /// Whether a path from the target may come back through this
        /// relation to the target's own model (`list__members` from a
        /// membership: the other members of the same list). Declared with
        /// `has_many(.., siblings)`, because every write of such a row
        /// changes the context of each of its siblings.
        siblings: bool,
    },
}

impl ModelInfo {
    /// The relation called `name`.
    pub fn relation(&self, name: &str) -> Option<&'static Relation> {
        self.relations.iter().find(|r| r.name == name)
    }

    /// Whether two infos describe the same model (one table each).
    pub fn same(&self, other: &ModelInfo) -> bool {
        self.table == other.table
    }
}
