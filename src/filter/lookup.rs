//! [`Lookup`]: the names a filter key may end with, and which storage
//! families each applies to.

use crate::model::Storage;

/// A lookup, the part after the last `__` of a filter key (`exact` when absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lookup {
    /// `field` or `field__exact`: equal, or `IS NULL` for `null`.
    Exact,
    /// Equal after case folding (text).
    IExact,
    /// Contains the text, case-sensitively.
    Contains,
    /// Contains the text after case folding.
    IContains,
    /// Equal to one of a list of values.
    In,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
    /// Starts with the text, case-sensitively.
    StartsWith,
    /// Starts with the text after case folding.
    IStartsWith,
    /// Ends with the text, case-sensitively.
    EndsWith,
    /// Ends with the text after case folding.
    IEndsWith,
    /// Between `[low, high]`, both inclusive.
    Range,
    /// `IS NULL` for `true`, `IS NOT NULL` for `false`; on a JSON key path,
    /// whether the key is missing.
    IsNull,
    /// A JSON object has the key.
    HasKey,
}

impl Lookup {
    /// Every lookup, in the order error messages list them.
    pub const ALL: [Lookup; 16] = [
        Lookup::Exact,
        Lookup::IExact,
        Lookup::Contains,
        Lookup::IContains,
        Lookup::In,
        Lookup::Gt,
        Lookup::Gte,
        Lookup::Lt,
        Lookup::Lte,
        Lookup::StartsWith,
        Lookup::IStartsWith,
        Lookup::EndsWith,
        Lookup::IEndsWith,
        Lookup::Range,
        Lookup::IsNull,
        Lookup::HasKey,
    ];

    /// The name clients write after `__`.
    pub fn name(self) -> &'static str {
        match self {
            Lookup::Exact => "exact",
            Lookup::IExact => "iexact",
            Lookup::Contains => "contains",
            Lookup::IContains => "icontains",
            Lookup::In => "in",
            Lookup::Gt => "gt",
            Lookup::Gte => "gte",
            Lookup::Lt => "lt",
            Lookup::Lte => "lte",
            Lookup::StartsWith => "startswith",
            Lookup::IStartsWith => "istartswith",
            Lookup::EndsWith => "endswith",
            Lookup::IEndsWith => "iendswith",
            Lookup::Range => "range",
            Lookup::IsNull => "isnull",
            Lookup::HasKey => "has_key",
        }
    }

    /// The lookup with this name.
    pub fn from_name(name: &str) -> Option<Lookup> {
        Lookup::ALL.into_iter().find(|l| l.name() == name)
    }

    /// Whether the lookup applies to values stored as `storage`: text
    /// lookups to text and UUIDs (their hyphenated lowercase text, as
    /// Django on PostgreSQL reads them), ordering to all but booleans and
    /// JSON, `has_key` to JSON, `exact`, `in` and `isnull` to all.
    pub fn applies_to(self, storage: Storage) -> bool {
        match self {
            Lookup::Exact | Lookup::IsNull | Lookup::In => true,
            Lookup::HasKey => storage == Storage::Json,
            Lookup::Gt | Lookup::Gte | Lookup::Lt | Lookup::Lte | Lookup::Range => {
                !matches!(storage, Storage::Bool | Storage::Json)
            }
            Lookup::IExact
            | Lookup::Contains
            | Lookup::IContains
            | Lookup::StartsWith
            | Lookup::IStartsWith
            | Lookup::EndsWith
            | Lookup::IEndsWith => matches!(storage, Storage::Text | Storage::Uuid),
        }
    }
}
