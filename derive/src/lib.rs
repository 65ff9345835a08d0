//! `#[derive(Model)]` for wyrmhole. See `wyrmhole::Model` for the attributes.
//!
//! The derive is deliberately thin: it reads the struct's shape and its
//! `#[wyrm(...)]` / `#[diesel(...)]` attributes, checks them, and fills in the
//! `wyrmhole::Model` trait. All behaviour (publishing, patches, filters) lives
//! in the `wyrmhole` crate as generic code over the generated field table.

use proc_macro::TokenStream;
use proc_macro2::{Literal, Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Ident, LitStr, Path, Type};

mod attrs;
mod diesel;
mod relation;

use attrs::*;
use diesel::*;

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
