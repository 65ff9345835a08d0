//! Reading `#[wyrm(...)]` on the struct and its fields: every key checked,
//! every mistake an error at its token.

use proc_macro2::TokenTree;
use quote::quote;
use syn::meta::ParseNestedMeta;
use syn::{Attribute, Ident, LitStr, Path, Token};

use crate::relation;
use crate::{Errors, FieldAttrs, FieldInfo, FIELD_KEYS, STRUCT_KEYS};

/// Reads the struct-level `#[wyrm(...)]` keys; returns the route if given.
pub(crate) fn parse_struct_attrs(
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
pub(crate) fn parse_field_attrs(ident: &Ident, attrs: &[Attribute], errors: &mut Errors) -> FieldAttrs {
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
pub(crate) fn string_value(
    meta: &ParseNestedMeta,
    key: &str,
    example: &str,
    errors: &mut Errors,
) -> syn::Result<Option<LitStr>> {
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
pub(crate) fn find_primary_key(ident: &Ident, fields: &[FieldInfo], errors: &mut Errors) -> Option<usize> {
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

pub(crate) fn unknown_key(path: &Path, expected: &str, other_level: &str) -> syn::Error {
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

pub(crate) fn duplicate(path: &Path) -> syn::Error {
    syn::Error::new_spanned(path, format!("duplicate wyrm attribute `{}`", path_name(path)))
}

pub(crate) fn path_name(path: &Path) -> String {
    quote!(#path).to_string().replace(' ', "")
}

/// Consumes an unknown key's value (`= ...` or `(...)`) up to the next comma,
/// so the remaining keys are still checked.
pub(crate) fn skip_value(meta: &ParseNestedMeta) -> syn::Result<()> {
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
