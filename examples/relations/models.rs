//! The models of the relations server (`examples/relations_server.rs`),
//! shared with the proof that drives it (`tests/relations_proof.rs`), which
//! reads their relation paths and loads them with plain SQL: lists, their
//! items and their members, as in `tests/relations.rs`.
#![allow(dead_code)]

diesel::table! {
    rel_lists (id) {
        id -> Integer,
        title -> Text,
        owner_id -> BigInt,
    }
}

diesel::table! {
    rel_items (id) {
        id -> Integer,
        list_id -> Integer,
        text -> Text,
        done -> Bool,
    }
}

diesel::table! {
    rel_members (id) {
        id -> Integer,
        list_id -> Integer,
        user_id -> BigInt,
    }
}

#[derive(Debug, Clone, diesel::QueryableByName, wyrmhole::Model)]
#[diesel(table_name = rel_lists)]
#[wyrm(route = "rel-list", has_many(items = Item, via = list_id), has_many(members = Member, via = list_id, siblings))]
pub struct List {
    pub id: i32,
    #[wyrm(update)]
    pub title: String,
    /// Its creator, who cannot be unshared: every list keeps a member.
    #[wyrm(skip)]
    pub owner_id: i64,
}

#[derive(Debug, Clone, diesel::QueryableByName, wyrmhole::Model)]
#[diesel(table_name = rel_items)]
#[wyrm(route = "rel-item")]
pub struct Item {
    pub id: i32,
    #[wyrm(update, belongs_to = List)]
    pub list_id: i32,
    #[wyrm(update)]
    pub text: String,
    #[wyrm(update)]
    pub done: bool,
}

#[derive(Debug, Clone, diesel::QueryableByName, wyrmhole::Model)]
#[diesel(table_name = rel_members)]
#[wyrm(route = "rel-member")]
pub struct Member {
    pub id: i32,
    #[wyrm(belongs_to = List)]
    pub list_id: i32,
    pub user_id: i64,
}

pub const SQLITE: &str = "
    CREATE TABLE IF NOT EXISTS rel_lists (id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT NOT NULL,
        owner_id BIGINT NOT NULL);
    CREATE TABLE IF NOT EXISTS rel_items (id INTEGER PRIMARY KEY AUTOINCREMENT,
        list_id INTEGER NOT NULL REFERENCES rel_lists (id), text TEXT NOT NULL, done BOOLEAN NOT NULL DEFAULT 0);
    CREATE TABLE IF NOT EXISTS rel_members (id INTEGER PRIMARY KEY AUTOINCREMENT,
        list_id INTEGER NOT NULL REFERENCES rel_lists (id), user_id BIGINT NOT NULL, UNIQUE (list_id, user_id));
";

pub const POSTGRES: &str = "
    CREATE TABLE IF NOT EXISTS rel_lists (id SERIAL PRIMARY KEY, title TEXT NOT NULL, owner_id BIGINT NOT NULL);
    CREATE TABLE IF NOT EXISTS rel_items (id SERIAL PRIMARY KEY, list_id INTEGER NOT NULL REFERENCES rel_lists (id),
        text TEXT NOT NULL, done BOOLEAN NOT NULL DEFAULT false);
    CREATE TABLE IF NOT EXISTS rel_members (id SERIAL PRIMARY KEY, list_id INTEGER NOT NULL REFERENCES rel_lists (id),
        user_id BIGINT NOT NULL, UNIQUE (list_id, user_id));
";
