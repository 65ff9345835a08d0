//! Compile-time checks of declared relations, called by the derive in
//! `const` items: a foreign key stored unlike the key it holds, a `has_many`
//! whose `via` field is missing or of another type, reported at the user's
//! attribute with a message naming the models and fields.

use crate::model::FieldDef;

/// Why a declared relation cannot work, found at compile time. A `const fn`
/// cannot allocate, so the message is written into a fixed buffer; the
/// derive's `const` item panics with it, and the compiler reports that panic
/// at the user's attribute (not in this file).
#[doc(hidden)]
pub struct Problem {
    bytes: [u8; PROBLEM_LEN],
    len: usize,
    /// Whether a piece did not fit: the message ends there.
    cut: bool,
}

const PROBLEM_LEN: usize = 600;

impl Problem {
    const fn new() -> Problem {
        Problem { bytes: [0; PROBLEM_LEN], len: 0, cut: false }
    }

    /// Appends whole pieces only (so the text stays UTF-8); a piece that no
    /// longer fits ends the message with `...`.
    const fn push(mut self, piece: &str) -> Problem {
        const ELLIPSIS: &[u8] = b"...";
        let piece = piece.as_bytes();
        if self.cut {
            return self;
        }
        if self.len + piece.len() + ELLIPSIS.len() > PROBLEM_LEN {
            self.cut = true;
            return self.append(ELLIPSIS);
        }
        self.append(piece)
    }

    const fn append(mut self, piece: &[u8]) -> Problem {
        let mut i = 0;
        while i < piece.len() && self.len < PROBLEM_LEN {
            self.bytes[self.len] = piece[i];
            self.len += 1;
            i += 1;
        }
        self
    }

    /// The message.
    pub const fn as_str(&self) -> &str {
        match std::str::from_utf8(self.bytes.split_at(self.len).0) {
            Ok(text) => text,
            Err(_) => "invalid relation",
        }
    }
}

impl std::fmt::Debug for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a type is stored, as Rust spells the built-in type of that family
/// (an application's own type is stored as one of them).
const fn stored_as(ty: crate::FieldType) -> &'static str {
    use crate::model::Storage;
    match ty.storage() {
        Storage::Bool => "bool",
        Storage::I16 => "i16",
        Storage::I32 => "i32",
        Storage::I64 => "i64",
        Storage::F32 => "f32",
        Storage::F64 => "f64",
        Storage::Text => "String",
        Storage::Date => "chrono::NaiveDate",
        Storage::DateTime => "chrono::NaiveDateTime",
        Storage::DateTimeUtc => "chrono::DateTime<Utc>",
        Storage::Uuid => "uuid::Uuid",
        Storage::Json => "serde_json::Value",
    }
}

const fn same_storage(a: crate::FieldType, b: crate::FieldType) -> bool {
    a.storage() as u8 == b.storage() as u8
}

/// Compile-time check of `#[wyrm(belongs_to = Target)]` on `model`'s field
/// `field` (called by the derive in a `const`): the key must be stored like
/// the target's primary key, or no row could ever match.
#[doc(hidden)]
pub const fn check_belongs_to(
    model: &str,
    field: &str,
    key: crate::FieldType,
    target: &str,
    target_fields: &[FieldDef],
    target_pk: usize,
) -> Option<Problem> {
    let pk = &target_fields[target_pk];
    if same_storage(key, pk.ty) {
        return None;
    }
    Some(
        Problem::new()
            .push("`belongs_to = ")
            .push(target)
            .push("` on `")
            .push(model)
            .push("::")
            .push(field)
            .push("`: the foreign key is stored as ")
            .push(stored_as(key))
            .push(" but `")
            .push(target)
            .push("`'s primary key `")
            .push(pk.name)
            .push("` is stored as ")
            .push(stored_as(pk.ty))
            .push("; declare `")
            .push(field)
            .push("` with the type of the key it holds"),
    )
}

/// Compile-time check of `#[wyrm(has_many(relation = Target, via = field))]`
/// on `model`: `Target` has the field `via`, stored like `model`'s primary key.
#[doc(hidden)]
pub const fn check_has_many(
    model: &str,
    relation: &str,
    target: &str,
    target_fields: &[FieldDef],
    via: &str,
    fields: &[FieldDef],
    pk: usize,
) -> Option<Problem> {
    let head = Problem::new()
        .push("`has_many(")
        .push(relation)
        .push(" = ")
        .push(target)
        .push(", via = ")
        .push(via)
        .push(")` on `")
        .push(model)
        .push("`: ");
    let mut i = 0;
    while i < target_fields.len() {
        let found = &target_fields[i];
        if same_str(found.name, via) {
            if same_storage(found.ty, fields[pk].ty) {
                return None;
            }
            return Some(
                head.push("`")
                    .push(target)
                    .push("::")
                    .push(via)
                    .push("` is stored as ")
                    .push(stored_as(found.ty))
                    .push(" but `")
                    .push(model)
                    .push("`'s primary key `")
                    .push(fields[pk].name)
                    .push("` is stored as ")
                    .push(stored_as(fields[pk].ty))
                    .push("; `via` must hold this model's primary key"),
            );
        }
        i += 1;
    }
    let mut problem = head
        .push("`")
        .push(target)
        .push("` has no field `")
        .push(via)
        .push("`; `via` names the field of `")
        .push(target)
        .push("` that holds `")
        .push(model)
        .push("`'s primary key (its fields: ");
    let mut i = 0;
    while i < target_fields.len() {
        if i > 0 {
            problem = problem.push(", ");
        }
        problem = problem.push(target_fields[i].name);
        i += 1;
    }
    Some(problem.push(")"))
}

const fn same_str(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FieldType;

    const fn field(name: &'static str, ty: FieldType) -> FieldDef {
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

    static ITEMS: &[FieldDef] =
        &[field("id", FieldType::I32), field("list_id", FieldType::I32), field("text", FieldType::Text)];

    #[test]
    fn checks_pass_when_the_types_agree() {
        // Items: `id` and `list_id`, both i32.
        assert!(check_belongs_to("Item", "list_id", FieldType::I32, "Item", ITEMS, 0).is_none());
        assert!(check_has_many("Item", "items", "Item", ITEMS, "list_id", ITEMS, 0).is_none());
        assert!(check_belongs_to("Item", "list_id", FieldType::Text, "Item", ITEMS, 0).is_some());
        assert!(check_has_many("Item", "items", "Item", ITEMS, "text", ITEMS, 0).is_some());
    }

    #[test]
    fn a_long_message_is_cut_whole_and_marked() {
        let many: Vec<FieldDef> = (0..100)
            .map(|i| FieldDef { name: Box::leak(format!("field_number_{i}").into_boxed_str()), ..ITEMS[0] })
            .collect();
        let problem = check_has_many("List", "items", "Item", &many, "list_id", ITEMS, 0).expect("no `list_id`");
        let text = problem.as_str();
        assert!(text.starts_with("`has_many(items = Item, via = list_id)` on `List`: `Item` has no field `list_id`"));
        assert!(text.ends_with(", ...") && !text.ends_with(", ..., ..."), "{text}");
        assert!(text.len() <= PROBLEM_LEN);
    }
}
