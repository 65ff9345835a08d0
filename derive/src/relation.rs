//! The derive's side of relations (`#[wyrm(belongs_to = ..)]` on a field,
//! `#[wyrm(has_many(..))]` on the struct).
//!
//! What the struct's own tokens can tell (a relation's name, a name used
//! twice, a key on the wrong field) is checked here with spans on the
//! offending token. What needs the related model (is it a `Model`, does its
//! key's type match, has it the `via` field) is left to the compiler: the
//! derive emits `const` items calling `wyrmhole::relation`'s const checks,
//! which is where those rules and their messages live.

use proc_macro2::{Literal, Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Expr, Ident, LitStr, Path};

use crate::{duplicate, path_name, skip_value, Errors, FieldInfo};

const HAS_MANY_EXAMPLE: &str = "has_many(members = ListMember, via = list_id)";
// `siblings` may follow `via`: `has_many(members = ListMember, via = list_id, siblings)`.

/// `belongs_to = TodoList` on a field.
pub(crate) struct BelongsTo {
    /// The `belongs_to` key, where errors about the field's relation point.
    pub(crate) key: Path,
    pub(crate) target: Path,
}

/// `has_many(members = ListMember, via = list_id)` on the struct.
pub(crate) struct HasMany {
    name: Ident,
    target: Path,
    /// The target's field holding this model's key, and where it was written.
    via: (String, Span),
    /// `siblings`: the target's rows may reach each other through it.
    siblings: bool,
}

/// A relation that passed the checks the derive can make.
pub(crate) struct Declared<'a> {
    name: String,
    target: Path,
    kind: Kind<'a>,
}

enum Kind<'a> {
    BelongsTo { index: usize, field: &'a FieldInfo<'a> },
    HasMany { via: &'a (String, Span), siblings: bool },
}

/// Parses a relation's target: the related model's type, as a path.
/// `Self` stands for the deriving struct (a self-relation), which the
/// generated items cannot spell as `Self`, so it is replaced here.
fn parse_target(meta: &ParseNestedMeta, own: &Ident, errors: &mut Errors) -> syn::Result<Option<Path>> {
    let key = path_name(&meta.path);
    let expr: Expr = meta.value()?.parse()?;
    match expr {
        Expr::Path(path) if path.qself.is_none() && path.attrs.is_empty() => {
            if path.path.is_ident("Self") {
                let mut own = own.clone();
                own.set_span(path.path.span());
                return Ok(Some(Path::from(own)));
            }
            Ok(Some(path.path))
        }
        Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(lit), .. }) => {
            errors.push(syn::Error::new_spanned(
                &lit,
                format!("`{key}` takes the related model's type, not a string: `{key} = {}`", lit.value()),
            ));
            Ok(None)
        }
        other => {
            errors.push(syn::Error::new_spanned(
                other,
                format!("`{key}` takes the related model's type, like `{key} = TodoList`"),
            ));
            Ok(None)
        }
    }
}

/// Parses the value of a field's `belongs_to` key.
pub(crate) fn parse_belongs_to(
    meta: &ParseNestedMeta,
    own: &Ident,
    errors: &mut Errors,
) -> syn::Result<Option<BelongsTo>> {
    Ok(parse_target(meta, own, errors)?.map(|target| BelongsTo { key: meta.path.clone(), target }))
}

/// Parses `has_many(members = ListMember, via = list_id)`; every mistake is
/// reported, and the relation is kept only when it is whole.
pub(crate) fn parse_has_many(meta: &ParseNestedMeta, own: &Ident, errors: &mut Errors) -> syn::Result<Option<HasMany>> {
    if !meta.input.peek(syn::token::Paren) {
        errors.push(syn::Error::new_spanned(&meta.path, format!("`has_many` takes a list: `{HAS_MANY_EXAMPLE}`")));
        skip_value(meta)?;
        return Ok(None);
    }
    let mut relation: Option<(Ident, Option<Path>)> = None;
    let mut via: Option<(String, Span)> = None;
    let mut siblings = false;
    meta.parse_nested_meta(|inner| {
        // `siblings`: paths from the target may come back through this relation.
        if inner.path.is_ident("siblings") && (inner.input.is_empty() || inner.input.peek(syn::Token![,])) {
            siblings = true;
            return Ok(());
        }
        if inner.path.is_ident("via") {
            let value = inner.value()?;
            let (name, span) = if value.peek(LitStr) {
                let lit: LitStr = value.parse()?;
                (lit.value(), lit.span())
            } else {
                let ident = value.call(Ident::parse_any)?;
                (ident.unraw().to_string(), ident.span())
            };
            if via.is_some() {
                errors.push(duplicate(&inner.path));
            } else {
                via = Some((name, span));
            }
            return Ok(());
        }
        let Some(name) = inner.path.get_ident() else {
            errors.push(syn::Error::new_spanned(
                &inner.path,
                format!("expected `name = Model` or `via = field`, like `{HAS_MANY_EXAMPLE}`"),
            ));
            return skip_value(&inner);
        };
        if let Some((first, _)) = &relation {
            errors.push(syn::Error::new_spanned(
                &inner.path,
                format!(
                    "unexpected `{name}`: this `has_many` already declares relation `{first}`, and takes \
                     nothing else but `via = field`; write one `has_many(..)` per relation"
                ),
            ));
            return skip_value(&inner);
        }
        relation = Some((name.clone(), parse_target(&inner, own, errors)?));
        Ok(())
    })?;
    let Some((name, target)) = relation else {
        errors.push(meta.error(format!("`has_many` needs the relation's name and model, like `{HAS_MANY_EXAMPLE}`")));
        return Ok(None);
    };
    let Some(via) = via else {
        let target = target.as_ref().map_or_else(|| "the related model".to_owned(), |t| format!("`{}`", path_name(t)));
        errors.push(meta.error(format!(
            "`has_many({name} = ..)` needs `via`: the field of {target} that holds `{own}`'s primary key, \
             like `{HAS_MANY_EXAMPLE}`"
        )));
        return Ok(None);
    };
    Ok(target.map(|target| HasMany { name, target, via, siblings }))
}

/// Checks the relations' names and keys and lists them, belongs_to first.
///
/// One namespace holds every field's relation name (`list` for `list_id`,
/// declared or not, because filters write `list__id`), every declared
/// relation and, for declared relations, the field names: a filter key
/// starts with one of them and must mean one thing.
pub(crate) fn declared<'a>(
    fields: &'a [FieldInfo<'a>],
    relations: &[Option<String>],
    primary_key: Option<usize>,
    has_many: &'a [HasMany],
    errors: &mut Errors,
) -> Vec<Declared<'a>> {
    let mut out = Vec::new();
    for (index, (field, relation)) in fields.iter().zip(relations).enumerate() {
        if let Some(relation) = relation {
            // `Model::field_index` resolves `<relation>__id` to the first
            // match, so a repeated relation would silently hide the second field.
            if let Some(first) = relations[..index].iter().position(|r| r.as_ref() == Some(relation)) {
                let message = format!(
                    "relation `{relation}` is already used by field `{}`; give `{}` a distinct \
                     `#[wyrm(relation = \"...\")]`",
                    fields[first].name, field.name
                );
                errors.push(match &field.attrs.relation {
                    Some(lit) => syn::Error::new_spanned(lit, message),
                    None => syn::Error::new_spanned(field.ident, message),
                });
                continue;
            }
        }
        let Some(belongs_to) = &field.attrs.belongs_to else { continue };
        if Some(index) == primary_key {
            errors.push(syn::Error::new_spanned(
                &belongs_to.key,
                format!(
                    "the primary key `{}` cannot be `belongs_to`: declare the foreign key on its own field",
                    field.name
                ),
            ));
            continue;
        }
        let Some(name) = relation else {
            errors.push(syn::Error::new_spanned(
                &belongs_to.key,
                format!(
                    "`belongs_to` needs a relation name for field `{0}`: call the field `<relation>_id` \
                     (like `{0}_id`), or add `relation = \"{0}\"`",
                    field.name
                ),
            ));
            continue;
        };
        let at = || match &field.attrs.relation {
            Some(lit) => lit.span(),
            None => field.ident.span(),
        };
        if check_name(name, fields, Some(index), at, errors) {
            out.push(Declared {
                name: name.clone(),
                target: belongs_to.target.clone(),
                kind: Kind::BelongsTo { index, field },
            });
        }
    }
    for (i, many) in has_many.iter().enumerate() {
        let name = many.name.unraw().to_string();
        let at = || many.name.span();
        if let Some(first) = relations.iter().position(|r| r.as_ref() == Some(&name)) {
            errors.push(syn::Error::new(
                at(),
                format!(
                    "relation `{name}` is already the relation of field `{}`; give this `has_many` another name",
                    fields[first].name
                ),
            ));
        } else if has_many[..i].iter().any(|other| other.name.unraw() == name) {
            errors.push(syn::Error::new(at(), format!("relation `{name}` is declared by two `has_many`")));
        } else if check_name(&name, fields, None, at, errors) {
            out.push(Declared {
                name,
                target: many.target.clone(),
                kind: Kind::HasMany { via: &many.via, siblings: many.siblings },
            });
        }
    }
    out
}

/// Checks a declared relation's name against the field names (its own
/// foreign key, `own`, may share it) and the `__` that joins path segments.
fn check_name(
    name: &str,
    fields: &[FieldInfo],
    own: Option<usize>,
    at: impl Fn() -> Span,
    errors: &mut Errors,
) -> bool {
    if name.contains("__") {
        errors.push(syn::Error::new(
            at(),
            format!("relation name `{name}` cannot contain `__`: filters join relations and fields with `__`"),
        ));
        return false;
    }
    let clash = fields.iter().enumerate().find(|(i, f)| f.name == name && Some(*i) != own);
    if let Some((_, field)) = clash {
        errors.push(syn::Error::new(
            at(),
            format!(
                "relation `{name}` has the name of field `{}`: a filter on `{name}__...` could not tell them \
                 apart; name the relation differently",
                field.name
            ),
        ));
        return false;
    }
    true
}

/// The `Relation` entries of `info()`, and the `const` checks to emit
/// beside the impl (spanned at the user's attribute, where the compiler
/// then reports a failed check).
pub(crate) fn expand(own: &Ident, declared: &[Declared]) -> (Vec<TokenStream2>, Vec<TokenStream2>) {
    let model = own.unraw().to_string();
    let mut defs = Vec::new();
    let mut checks = Vec::new();
    for relation in declared {
        let Declared { name, target, kind } = relation;
        let target_name = path_name(target);
        let span = target.span();
        let (kind, check) = match kind {
            Kind::BelongsTo { index, field } => {
                let ty = field.ty;
                let field_name = &field.name;
                let check = quote_spanned! {span=>
                    ::wyrmhole::relation::check_belongs_to(
                        #model,
                        #field_name,
                        <#ty as ::wyrmhole::FieldValue>::TYPE,
                        #target_name,
                        <#target as ::wyrmhole::Model>::FIELDS,
                        <#target as ::wyrmhole::Model>::PRIMARY_KEY,
                    )
                };
                let index = Literal::usize_unsuffixed(*index);
                (quote!(BelongsTo { field: #index }), (span, check))
            }
            Kind::HasMany { via: (via, via_span), siblings } => {
                let check = quote_spanned! {span=>
                    ::wyrmhole::relation::check_has_many(
                        #model,
                        #name,
                        #target_name,
                        <#target as ::wyrmhole::Model>::FIELDS,
                        #via,
                        <#own as ::wyrmhole::Model>::FIELDS,
                        <#own as ::wyrmhole::Model>::PRIMARY_KEY,
                    )
                };
                (quote!(HasMany { via: #via, siblings: #siblings }), (*via_span, check))
            }
        };
        defs.push(quote_spanned! {span=>
            ::wyrmhole::Relation {
                name: #name,
                kind: ::wyrmhole::RelationKind::#kind,
                target: <#target as ::wyrmhole::Model>::info,
            }
        });
        let (at, check) = check;
        checks.push(quote_spanned! {at=>
            const _: () = if let ::core::option::Option::Some(problem) = #check {
                ::core::panic!("{}", problem.as_str())
            };
        });
    }
    (defs, checks)
}
