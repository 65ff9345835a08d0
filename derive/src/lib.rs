//! `#[derive(Model)]` for wyrmhole. See `wyrmhole::Model` for the attributes.
//!
//! The derive is deliberately thin: it reads the struct's shape and its
//! `#[wyrm(...)]` / `#[diesel(...)]` attributes, checks them, and fills in the
//! `wyrmhole::Model` trait. All behaviour (publishing, patches, filters) lives
//! in the `wyrmhole` crate as generic code over the generated field table.

use proc_macro::TokenStream;
use proc_macro2::{Literal, Spacing, Span, TokenStream as TokenStream2, TokenTree};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Attribute, Data, DeriveInput, Fields, Ident, LitStr, Path, Token, Type};

mod relation;

/// Derives `wyrmhole::Model`.
///
/// Struct attributes: `#[wyrm(route = "todo-item")]` (default: the table
/// name); the table comes from Diesel's own `#[diesel(table_name = ...)]`
/// (default: Diesel's rule, the snake_case struct name plus `s`).
///
/// Field attributes: `#[wyrm(update)]`, `#[wyrm(skip)]`,
/// `#[wyrm(primary_key)]` (default: the field named `id`) and
/// `#[wyrm(relation = "list")]` (default: `list` for a field named
/// `list_id`); the column comes from `#[diesel(column_name = ...)]`.
///
/// Relations, which filters and scopes may follow (`list__title`):
///
/// - `#[wyrm(belongs_to = TodoList)]` on a foreign key field: the field
///   holds a `TodoList`'s primary key. The relation is named like the field's
///   (`list` for `list_id`, or `relation = "..."`). `belongs_to = Self` is a
///   self-relation (`parent_id`).
/// - `#[wyrm(has_many(members = ListMember, via = list_id))]` on the struct,
///   once per relation: `ListMember`'s field `list_id` holds this model's
///   primary key (`via = "list_id"` is accepted too). A trailing `siblings`
///   (`has_many(members = ListMember, via = list_id, siblings)`) lets paths
///   from `ListMember` come back through it (`list__members__user_id`).
///
/// `Model::info().relations` lists the `belongs_to`s in field order, then the
/// `has_many`s in attribute order; the paths filters may follow are numbered
/// in that order.
///
/// The derive refuses, at the offending token: a `belongs_to` on the primary
/// key or on a field with no relation name; a target that is not a type
/// path; a `has_many` without a name, a model or `via`, or with other keys;
/// a relation name used twice (by fields' relations or `has_many`s), equal
/// to a field's name, or containing `__`. What needs the related model is
/// checked by the compiler through `const` items calling
/// `wyrmhole::relation`'s checks: the target must be a `Model`, the foreign
/// key stored like its primary key, and `via` a field of it stored like this
/// model's primary key. Models may name each other in any order: a relation
/// reaches its target through a function, so cycles need no care.
#[proc_macro_derive(Model, attributes(wyrm))]
pub fn derive_model(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as DeriveInput);
    expand(&input).unwrap_or_else(syn::Error::into_compile_error).into()
}

const FIELD_KEYS: &str = "update, skip, primary_key, relation, belongs_to";
const STRUCT_KEYS: &str = "route, has_many";

/// Collects every error so that one build reports all of them at once.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// One named field, with its attributes resolved.
struct FieldInfo<'a> {
    ident: &'a Ident,
    ty: &'a Type,
    /// The field's name without `r#`.
    name: String,
    column: String,
    attrs: FieldAttrs,
}

/// The `#[wyrm(...)]` keys found on a field; each keeps its path for spans.
#[derive(Default)]
struct FieldAttrs {
    update: Option<Path>,
    skip: Option<Path>,
    primary_key: Option<Path>,
    relation: Option<LitStr>,
    /// `belongs_to = TodoList`: the model the key points at.
    belongs_to: Option<relation::BelongsTo>,
}

fn expand(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let ident = &input.ident;
    let mut errors = Errors::default();

    let named = match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(named) => Some(named),
            Fields::Unnamed(fields) => {
                errors.push(syn::Error::new_spanned(
                    fields,
                    "`#[derive(Model)]` needs named fields (a field's name is its name on the wire); \
                     tuple structs are not supported",
                ));
                None
            }
            Fields::Unit => {
                errors.push(syn::Error::new_spanned(
                    ident,
                    "`#[derive(Model)]` needs a struct with named fields; unit structs are not supported",
                ));
                None
            }
        },
        Data::Enum(data) => {
            let enum_token = &data.enum_token;
            errors.push(syn::Error::new_spanned(
                quote!(#enum_token #ident),
                "`#[derive(Model)]` only supports structs with named fields, not enums",
            ));
            None
        }
        Data::Union(data) => {
            let union_token = &data.union_token;
            errors.push(syn::Error::new_spanned(
                quote!(#union_token #ident),
                "`#[derive(Model)]` only supports structs with named fields, not unions",
            ));
            None
        }
    };

    // `Model: 'static` and its consts describe one concrete table, so there
    // is nothing a type or lifetime parameter could vary.
    if !input.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &input.generics,
            "`#[derive(Model)]` does not support generic parameters: a model describes one concrete table",
        ));
    } else if let Some(where_clause) = &input.generics.where_clause {
        errors.push(syn::Error::new_spanned(where_clause, "`#[derive(Model)]` does not support where clauses"));
    }

    let (route, has_many) = parse_struct_attrs(ident, &input.attrs, &mut errors);
    let table = match diesel_values(&input.attrs, "table_name").as_slice() {
        [] => infer_table_name(&ident.unraw().to_string()),
        [(_, value), rest @ ..] => {
            for (key, _) in rest {
                errors.push(syn::Error::new_spanned(
                    key,
                    "`#[derive(Model)]` needs a single `table_name`: a model publishes one table",
                ));
            }
            match syn::parse2::<Path>(value.clone()) {
                // `crate::schema::todo_items` names the table `todo_items`.
                Ok(path) => match path.segments.last() {
                    Some(last) => last.ident.unraw().to_string(),
                    None => String::new(),
                },
                Err(_) => {
                    errors
                        .push(syn::Error::new_spanned(value, "expected a table path, like `table_name = todo_items`"));
                    String::new()
                }
            }
        }
    };
    let route = route.unwrap_or_else(|| table.clone());

    let Some(named) = named else {
        return Err(errors
            .finish()
            .err()
            .unwrap_or_else(|| syn::Error::new(Span::call_site(), "`#[derive(Model)]`: unsupported input")));
    };

    let mut fields: Vec<FieldInfo> = Vec::with_capacity(named.named.len());
    for field in &named.named {
        // Named fields always have an ident; skip defensively rather than panic.
        let Some(field_ident) = &field.ident else {
            continue;
        };
        let name = field_ident.unraw().to_string();
        let column = match diesel_values(&field.attrs, "column_name").first() {
            None => name.clone(),
            Some((_, value)) => match parse_sql_identifier(value) {
                Some(column) => column,
                None => {
                    errors.push(syn::Error::new_spanned(value, "expected a column name, like `column_name = list_id`"));
                    name.clone()
                }
            },
        };
        let attrs = parse_field_attrs(ident, &field.attrs, &mut errors);
        fields.push(FieldInfo { ident: field_ident, ty: &field.ty, name, column, attrs });
    }

    let primary_key = find_primary_key(ident, &fields, &mut errors);

    for (index, field) in fields.iter().enumerate() {
        if let (Some(_), Some(update)) = (&field.attrs.skip, &field.attrs.update) {
            errors.push(syn::Error::new_spanned(
                update,
                format!(
                    "field `{}` cannot be both `skip` and `update`: a skipped field is never \
                     published, so clients cannot write it",
                    field.name
                ),
            ));
        }
        if Some(index) == primary_key {
            if let Some(update) = &field.attrs.update {
                errors.push(syn::Error::new_spanned(
                    update,
                    format!("the primary key `{}` cannot be `update`: clients may not change a row's key", field.name),
                ));
            }
        }
    }

    let relations: Vec<Option<String>> = fields
        .iter()
        .enumerate()
        .map(|(index, field)| match &field.attrs.relation {
            Some(lit) => Some(lit.value()),
            None if Some(index) == primary_key => None,
            None => field.name.strip_suffix("_id").filter(|prefix| !prefix.is_empty()).map(str::to_owned),
        })
        .collect();
    let declared = relation::declared(&fields, &relations, primary_key, &has_many, &mut errors);

    errors.finish()?;
    let Some(primary_key) = primary_key else {
        // `find_primary_key` has reported this already.
        return Err(syn::Error::new_spanned(ident, "no primary key"));
    };

    let defs = fields.iter().zip(&relations).enumerate().map(|(index, (field, relation))| {
        let ty = field.ty;
        let span = ty.span();
        let name = &field.name;
        let column = &field.column;
        let published = field.attrs.skip.is_none();
        let updatable = field.attrs.update.is_some();
        let is_primary_key = index == primary_key;
        let relation = match relation {
            Some(relation) => quote!(::core::option::Option::Some(#relation)),
            None => quote!(::core::option::Option::None),
        };
        // Spanned at the field's type so an unsupported type is reported there.
        let field_type = quote_spanned!(span=> <#ty as ::wyrmhole::FieldValue>::TYPE);
        let nullable = quote_spanned!(span=> <#ty as ::wyrmhole::FieldValue>::NULLABLE);
        quote! {
            ::wyrmhole::FieldDef {
                name: #name,
                column: #column,
                ty: #field_type,
                nullable: #nullable,
                published: #published,
                updatable: #updatable,
                primary_key: #is_primary_key,
                relation: #relation,
            }
        }
    });
    let arms = fields.iter().enumerate().map(|(index, field)| {
        let index = Literal::usize_unsuffixed(index);
        let ty = field.ty;
        let member = field.ident;
        let value = quote_spanned!(ty.span()=>
            <#ty as ::wyrmhole::FieldValue>::value_ref(&self.#member)
        );
        quote!(#index => #value,)
    });
    let primary_key = Literal::usize_unsuffixed(primary_key);
    let struct_name = ident.unraw().to_string();
    let (relation_defs, checks) = relation::expand(ident, &declared);
    let field_count = fields.len();

    Ok(quote! {
        #[automatically_derived]
        impl ::wyrmhole::Model for #ident {
            const ROUTE: &'static str = #route;
            const TABLE: &'static str = #table;
            const FIELDS: &'static [::wyrmhole::FieldDef] = &[#(#defs),*];
            const PRIMARY_KEY: usize = #primary_key;

            fn info() -> &'static ::wyrmhole::ModelInfo {
                const INFO: &::wyrmhole::ModelInfo = &::wyrmhole::ModelInfo {
                    route: <#ident as ::wyrmhole::Model>::ROUTE,
                    table: <#ident as ::wyrmhole::Model>::TABLE,
                    fields: <#ident as ::wyrmhole::Model>::FIELDS,
                    primary_key: <#ident as ::wyrmhole::Model>::PRIMARY_KEY,
                    relations: &[#(#relation_defs),*],
                };
                INFO
            }

            fn field(&self, index: usize) -> ::wyrmhole::ValueRef<'_> {
                match index {
                    #(#arms)*
                    _ => ::core::panic!(
                        "field index {} out of range for model `{}` ({} fields)",
                        index,
                        #struct_name,
                        #field_count,
                    ),
                }
            }
        }
        #(#checks)*
    })
}

/// Reads the struct-level `#[wyrm(...)]` keys; returns the route if given.
fn parse_struct_attrs(
    ident: &Ident,
    attrs: &[Attribute],
    errors: &mut Errors,
) -> (Option<String>, Vec<relation::HasMany>) {
    let mut route: Option<LitStr> = None;
    let mut has_many = Vec::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident("wyrm")) {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("route") {
                let Some(lit) = string_value(&meta, "route", "todo-item", errors)? else {
                    return Ok(());
                };
                if route.is_some() {
                    errors.push(duplicate(&meta.path));
                } else {
                    route = Some(lit);
                }
            } else if meta.path.is_ident("has_many") {
                has_many.extend(relation::parse_has_many(&meta, ident, errors)?);
            } else {
                errors.push(unknown_key(&meta.path, STRUCT_KEYS, FIELD_KEYS));
                skip_value(&meta)?;
            }
            Ok(())
        });
        if let Err(error) = result {
            errors.push(error);
        }
    }
    (route.map(|lit| lit.value()), has_many)
}

/// Reads a field's `#[wyrm(...)]` keys.
fn parse_field_attrs(ident: &Ident, attrs: &[Attribute], errors: &mut Errors) -> FieldAttrs {
    let mut out = FieldAttrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("wyrm")) {
        let result = attr.parse_nested_meta(|meta| {
            let flag = if meta.path.is_ident("update") {
                Some(&mut out.update)
            } else if meta.path.is_ident("skip") {
                Some(&mut out.skip)
            } else if meta.path.is_ident("primary_key") {
                Some(&mut out.primary_key)
            } else {
                None
            };
            if let Some(slot) = flag {
                if !(meta.input.is_empty() || meta.input.peek(Token![,])) {
                    errors.push(syn::Error::new_spanned(
                        &meta.path,
                        format!("`{}` takes no value", path_name(&meta.path)),
                    ));
                    return skip_value(&meta);
                }
                if slot.is_some() {
                    errors.push(duplicate(&meta.path));
                } else {
                    *slot = Some(meta.path.clone());
                }
            } else if meta.path.is_ident("belongs_to") {
                if out.belongs_to.is_some() {
                    errors.push(duplicate(&meta.path));
                    return skip_value(&meta);
                }
                out.belongs_to = relation::parse_belongs_to(&meta, ident, errors)?;
            } else if meta.path.is_ident("relation") {
                let Some(lit) = string_value(&meta, "relation", "list", errors)? else {
                    return Ok(());
                };
                if out.relation.is_some() {
                    errors.push(duplicate(&meta.path));
                } else {
                    out.relation = Some(lit);
                }
            } else {
                errors.push(unknown_key(&meta.path, FIELD_KEYS, STRUCT_KEYS));
                skip_value(&meta)?;
            }
            Ok(())
        });
        if let Err(error) = result {
            errors.push(error);
        }
    }
    out
}

/// Parses `key = "non-empty string"`. A bad value is reported and yields
/// `None`; only malformed syntax is returned as an error.
fn string_value(meta: &ParseNestedMeta, key: &str, example: &str, errors: &mut Errors) -> syn::Result<Option<LitStr>> {
    let expr: syn::Expr = meta.value()?.parse()?;
    match &expr {
        syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(lit), .. }) => {
            if lit.value().is_empty() {
                errors.push(syn::Error::new_spanned(
                    lit,
                    format!("`{key}` may not be empty, e.g. `{key} = \"{example}\"`"),
                ));
                Ok(None)
            } else {
                Ok(Some(lit.clone()))
            }
        }
        _ => {
            errors.push(syn::Error::new_spanned(
                &expr,
                format!("`{key}` must be a string literal, e.g. `{key} = \"{example}\"`"),
            ));
            Ok(None)
        }
    }
}

/// Picks the primary key: the one `#[wyrm(primary_key)]` field, else `id`.
fn find_primary_key(ident: &Ident, fields: &[FieldInfo], errors: &mut Errors) -> Option<usize> {
    let mut marked = fields
        .iter()
        .enumerate()
        .filter_map(|(index, field)| field.attrs.primary_key.as_ref().map(|path| (index, path)));
    if let Some((first, _)) = marked.next() {
        for (_, path) in marked {
            errors.push(syn::Error::new_spanned(
                path,
                format!(
                    "more than one primary key: field `{}` is already `#[wyrm(primary_key)]`; \
                     a model has a single-column primary key",
                    fields[first].name
                ),
            ));
        }
        return Some(first);
    }
    let id = fields.iter().position(|field| field.name == "id");
    if id.is_none() {
        errors.push(syn::Error::new_spanned(
            ident,
            format!(
                "`{ident}` has no primary key: add a field named `id` or mark the key field \
                 with `#[wyrm(primary_key)]`"
            ),
        ));
    }
    id
}

fn unknown_key(path: &Path, expected: &str, other_level: &str) -> syn::Error {
    let name = path_name(path);
    let mut message = format!("unknown wyrm attribute `{name}`; expected one of: {expected}");
    if other_level.split(", ").any(|key| key == name) {
        let (here, there) = if expected == FIELD_KEYS { ("field", "struct") } else { ("struct", "field") };
        message = format!("`{name}` is a {there} attribute, not a {here} attribute; expected one of: {expected}");
    }
    if name == "table" && expected == STRUCT_KEYS {
        message.push_str(" (the table comes from Diesel's `#[diesel(table_name = ...)]`)");
    }
    syn::Error::new_spanned(path, message)
}

fn duplicate(path: &Path) -> syn::Error {
    syn::Error::new_spanned(path, format!("duplicate wyrm attribute `{}`", path_name(path)))
}

fn path_name(path: &Path) -> String {
    quote!(#path).to_string().replace(' ', "")
}

/// Consumes an unknown key's value (`= ...` or `(...)`) up to the next comma,
/// so the remaining keys are still checked.
fn skip_value(meta: &ParseNestedMeta) -> syn::Result<()> {
    meta.input.step(|cursor| {
        let mut rest = *cursor;
        while let Some((tt, next)) = rest.token_tree() {
            if matches!(&tt, TokenTree::Punct(p) if p.as_char() == ',') {
                break;
            }
            rest = next;
        }
        Ok(((), rest))
    })
}

/// Finds every `key = value` entry inside `#[diesel(...)]` attributes.
///
/// The entries are split at top-level commas rather than parsed with
/// `parse_nested_meta`, so Diesel's other keys (`check_for_backend(...)`,
/// `sql_type = ...`, `select_expression = ...`) are skipped without this
/// derive having to understand their syntax; Diesel itself validates them.
fn diesel_values(attrs: &[Attribute], key: &str) -> Vec<(Ident, TokenStream2)> {
    let mut found = Vec::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident("diesel")) {
        let syn::Meta::List(list) = &attr.meta else {
            continue;
        };
        for entry in split_top_level_commas(list.tokens.clone()) {
            if let [TokenTree::Ident(name), TokenTree::Punct(eq), value @ ..] = entry.as_slice() {
                if name == key && eq.as_char() == '=' && eq.spacing() == Spacing::Alone {
                    found.push((name.clone(), value.iter().cloned().collect()));
                }
            }
        }
    }
    found
}

/// Splits tokens at commas outside groups and outside `<...>` generics.
fn split_top_level_commas(tokens: TokenStream2) -> Vec<Vec<TokenTree>> {
    let mut entries = vec![Vec::new()];
    let mut angle_depth = 0usize;
    let mut previous_joint: Option<char> = None;
    for tt in tokens {
        if let TokenTree::Punct(p) = &tt {
            match p.as_char() {
                ',' if angle_depth == 0 => {
                    entries.push(Vec::new());
                    previous_joint = None;
                    continue;
                }
                '<' => angle_depth += 1,
                // `->` and `=>` are not closing brackets.
                '>' if !matches!(previous_joint, Some('-' | '=')) => angle_depth = angle_depth.saturating_sub(1),
                _ => {}
            }
            previous_joint = (p.spacing() == Spacing::Joint).then_some(p.as_char());
        } else {
            previous_joint = None;
        }
        if let Some(entry) = entries.last_mut() {
            entry.push(tt);
        }
    }
    entries
}

/// Parses a Diesel column name: an identifier (`r#` stripped) or a string.
fn parse_sql_identifier(tokens: &TokenStream2) -> Option<String> {
    if let Ok(ident) = syn::parse2::<Ident>(tokens.clone()) {
        return Some(ident.unraw().to_string());
    }
    let lit = syn::parse2::<LitStr>(tokens.clone()).ok()?;
    let value = lit.value();
    Some(value.strip_prefix("r#").unwrap_or(&value).to_owned())
}

/// Diesel's default table name: the struct name in snake_case plus `s`
/// (mirrors `diesel_derives::model::infer_table_name`, so `TABLE` agrees
/// with what Diesel's own derives assume).
fn infer_table_name(name: &str) -> String {
    let mut result = String::with_capacity(name.len() + 1);
    let mut chars = name.chars();
    if let Some(first) = chars.next() {
        result.extend(first.to_lowercase());
    }
    for c in chars {
        if c.is_uppercase() {
            result.push('_');
            result.extend(c.to_lowercase());
        } else {
            result.push(c);
        }
    }
    result.push('s');
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_name_matches_diesel() {
        assert_eq!(infer_table_name("Foo"), "foos");
        assert_eq!(infer_table_name("FooBarBaz"), "foo_bar_bazs");
        assert_eq!(infer_table_name("TodoItem"), "todo_items");
    }

    #[test]
    fn diesel_keys_are_found_among_others() {
        let attr: Attribute = syn::parse_quote!(
            #[diesel(check_for_backend(diesel::sqlite::Sqlite), select_expression_type = Foo<A, B>,
                     table_name = crate::schema::todo_items, treat_none_as_null = true)]
        );
        let found = diesel_values(&[attr], "table_name");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].1.to_string().replace(' ', ""), "crate::schema::todo_items");
    }
}
