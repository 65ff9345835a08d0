//! The [`Model`] trait: what `#[derive(Model)]` fills in for a Diesel model.
//!
//! A model describes itself as a static table of [`FieldDef`]s plus typed
//! access to each field's value. Everything else wyrmhole does with a model
//! (publishing JSON, accepting patches, evaluating filters in memory and in
//! SQL, fanning out changes) is generic code over that description, the way
//! serde's derive only fills in `Serialize` and leaves the formats to serde.

use std::fmt;

/// The family of a column's SQL type. It decides how JSON values are checked
/// and converted, which filter lookups apply, and how values are bound in SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// `bool` (`Bool` in Diesel).
    Bool,
    /// `i16` (`SmallInt`).
    I16,
    /// `i32` (`Integer`).
    I32,
    /// `i64` (`BigInt`).
    I64,
    /// `f64` (`Double`).
    F64,
    /// `String` (`Text`).
    Text,
}

impl FieldType {
    /// The name used for this type in error messages and the protocol docs.
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Bool => "boolean",
            FieldType::I16 => "16-bit integer",
            FieldType::I32 => "32-bit integer",
            FieldType::I64 => "64-bit integer",
            FieldType::F64 => "number",
            FieldType::Text => "string",
        }
    }

    /// Whether values of this type are integers.
    pub fn is_integer(self) -> bool {
        matches!(self, FieldType::I16 | FieldType::I32 | FieldType::I64)
    }

    /// Converts a JSON value to a value of this type.
    ///
    /// Numbers must be numbers (never strings), integers must be whole and fit
    /// the column's range (a value out of range is an error, never a wrap),
    /// and `null` is accepted only where `nullable` says so.
    pub fn value_from_json(self, json: &serde_json::Value, nullable: bool) -> Result<Value, String> {
        use serde_json::Value as J;
        match (self, json) {
            (_, J::Null) if nullable => Ok(Value::Null),
            (_, J::Null) => Err("may not be null".into()),
            (FieldType::Bool, J::Bool(b)) => Ok(Value::Bool(*b)),
            (FieldType::Text, J::String(s)) => Ok(Value::Text(s.clone())),
            (FieldType::F64, J::Number(n)) => {
                n.as_f64().filter(|f| f.is_finite()).map(Value::Float).ok_or_else(|| "must be a finite number".into())
            }
            (ty, J::Number(n)) if ty.is_integer() => {
                let (min, max) = ty.integer_range();
                match n.as_i64() {
                    Some(i) if (min..=max).contains(&i) => Ok(Value::Int(i)),
                    Some(_) => Err(format!("is out of range for a {} ({min} to {max})", ty.name())),
                    None if n.as_u64().is_some() => {
                        Err(format!("is out of range for a {} ({min} to {max})", ty.name()))
                    }
                    None => Err(format!("must be a whole number ({})", ty.name())),
                }
            }
            (ty, other) => Err(format!("must be a {}, not {}", ty.name(), json_kind(other))),
        }
    }

    /// The inclusive range of an integer type.
    fn integer_range(self) -> (i64, i64) {
        match self {
            FieldType::I16 => (i16::MIN.into(), i16::MAX.into()),
            FieldType::I32 => (i32::MIN.into(), i32::MAX.into()),
            _ => (i64::MIN, i64::MAX),
        }
    }
}

/// The JSON kind of a value, for error messages.
pub(crate) fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

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

/// A field value owned by a row or a filter.
///
/// Integers of every width are held as `i64`; the field's [`FieldType`]
/// knows the real width.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL `NULL` / `None`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A finite float.
    Float(f64),
    /// Text.
    Text(String),
}

impl Value {
    /// Borrows the value.
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Null => ValueRef::Null,
            Value::Bool(b) => ValueRef::Bool(*b),
            Value::Int(i) => ValueRef::Int(*i),
            Value::Float(f) => ValueRef::Float(*f),
            Value::Text(s) => ValueRef::Text(s),
        }
    }

    /// The value as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        self.as_ref().to_json()
    }

    /// Whether the two would be sent to clients alike: `==`, except that
    /// `0.0` and `-0.0` differ (JSON keeps the sign).
    pub fn same(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
            (a, b) => a == b,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

/// A field value borrowed from a model instance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    /// SQL `NULL` / `None`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// Text.
    Text(&'a str),
}

impl ValueRef<'_> {
    /// Copies the value out.
    pub fn to_owned(self) -> Value {
        match self {
            ValueRef::Null => Value::Null,
            ValueRef::Bool(b) => Value::Bool(b),
            ValueRef::Int(i) => Value::Int(i),
            ValueRef::Float(f) => Value::Float(f),
            ValueRef::Text(s) => Value::Text(s.to_owned()),
        }
    }

    /// The value as JSON.
    pub fn to_json(self) -> serde_json::Value {
        match self {
            ValueRef::Null => serde_json::Value::Null,
            ValueRef::Bool(b) => b.into(),
            ValueRef::Int(i) => i.into(),
            ValueRef::Float(f) => {
                serde_json::Number::from_f64(f).map(serde_json::Value::Number).unwrap_or(serde_json::Value::Null)
            }
            ValueRef::Text(s) => s.into(),
        }
    }
}

/// A Rust type that can be a model field. Implemented for `bool`, `i16`,
/// `i32`, `i64`, `f64`, `String` and `Option` of each; the derive names this
/// trait on each field so an unsupported type is reported at that field.
pub trait FieldValue {
    /// The column's type family.
    const TYPE: FieldType;
    /// Whether the type admits `NULL`.
    const NULLABLE: bool = false;
    /// Borrows the value.
    fn value_ref(&self) -> ValueRef<'_>;
}

macro_rules! field_value {
    ($t:ty, $ft:expr, |$v:ident| $e:expr) => {
        impl FieldValue for $t {
            const TYPE: FieldType = $ft;
            fn value_ref(&self) -> ValueRef<'_> {
                let $v = self;
                $e
            }
        }
    };
}

field_value!(bool, FieldType::Bool, |v| ValueRef::Bool(*v));
field_value!(i16, FieldType::I16, |v| ValueRef::Int(i64::from(*v)));
field_value!(i32, FieldType::I32, |v| ValueRef::Int(i64::from(*v)));
field_value!(i64, FieldType::I64, |v| ValueRef::Int(*v));
field_value!(f64, FieldType::F64, |v| ValueRef::Float(*v));
field_value!(String, FieldType::Text, |v| ValueRef::Text(v));

impl<T: FieldValue> FieldValue for Option<T> {
    const TYPE: FieldType = T::TYPE;
    const NULLABLE: bool = true;
    fn value_ref(&self) -> ValueRef<'_> {
        match self {
            Some(v) => v.value_ref(),
            None => ValueRef::Null,
        }
    }
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

    /// Finds a field by the name a filter uses: its own name, or
    /// `<relation>__id` / `<relation>` for a foreign key.
    fn field_index(name: &str) -> Option<usize> {
        field_index(Self::FIELDS, name)
    }

    /// The whole row as owned values, in field order.
    fn to_row(&self) -> Row {
        (0..Self::FIELDS.len()).map(|i| self.field(i).to_owned()).collect()
    }
}

/// A row as owned values, in the order of its model's fields. Changes travel
/// through the fan-out (and, later, between processes) in this form.
pub type Row = Box<[Value]>;

/// Looks a filter's field name up in a field table; see [`Model::field_index`].
pub fn field_index(fields: &[FieldDef], name: &str) -> Option<usize> {
    if let Some(i) = fields.iter().position(|f| f.name == name) {
        return Some(i);
    }
    let relation = name.strip_suffix("__id").or_else(|| name.strip_suffix("__pk")).unwrap_or(name);
    fields.iter().position(|f| f.relation == Some(relation))
}

macro_rules! value_from {
    ($($t:ty => |$v:ident| $e:expr),* $(,)?) => {
        $(impl From<$t> for Value {
            fn from($v: $t) -> Value {
                $e
            }
        })*
    };
}

value_from! {
    bool => |v| Value::Bool(v),
    i16 => |v| Value::Int(v.into()),
    i32 => |v| Value::Int(v.into()),
    i64 => |v| Value::Int(v),
    f64 => |v| Value::Float(v),
    String => |v| Value::Text(v),
    &str => |v| Value::Text(v.to_owned()),
}
