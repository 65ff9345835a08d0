//! `#[derive(Model)]` for wyrmhole. See `wyrmhole::Model` for the attributes.
use proc_macro::TokenStream;

/// Derives `wyrmhole::Model`.
#[proc_macro_derive(Model, attributes(wyrm))]
pub fn derive_model(_input: TokenStream) -> TokenStream {
    TokenStream::new()
}
