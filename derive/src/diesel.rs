//! What the derive reads of Diesel's own attributes (`table_name`,
//! `column_name`), and Diesel's rule for a table's default name.

use proc_macro2::{Spacing, TokenStream as TokenStream2, TokenTree};
use syn::ext::IdentExt;
use syn::{Attribute, Ident, LitStr};

/// Finds every `key = value` entry inside `#[diesel(...)]` attributes.
///
/// The entries are split at top-level commas rather than parsed with
/// `parse_nested_meta`, so Diesel's other keys (`check_for_backend(...)`,
/// `sql_type = ...`, `select_expression = ...`) are skipped without this
/// derive having to understand their syntax; Diesel itself validates them.
pub(crate) fn diesel_values(attrs: &[Attribute], key: &str) -> Vec<(Ident, TokenStream2)> {
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
pub(crate) fn split_top_level_commas(tokens: TokenStream2) -> Vec<Vec<TokenTree>> {
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
pub(crate) fn parse_sql_identifier(tokens: &TokenStream2) -> Option<String> {
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
pub(crate) fn infer_table_name(name: &str) -> String {
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
