//! `wyrmhole::typescript`: the TypeScript declarations generated from a
//! model, for each field type, lookup and transform (the JS side checks
//! that they compile and refuse typos: js-client/test/types.test.js).

diesel::table! {
    events (id) {
        id -> Integer,
        owner_id -> Integer,
        starts -> Timestamp,
        ends -> Nullable<Timestamp>,
        meta -> wyrmhole::sql::types::Json,
        secret -> Text,
    }
}

#[derive(diesel::QueryableByName, wyrmhole::Model)]
#[diesel(table_name = events)]
#[wyrm(route = "event")]
#[allow(dead_code)]
struct Event {
    id: i32,
    owner_id: i32,
    #[wyrm(update)]
    starts: chrono::NaiveDateTime,
    #[wyrm(update)]
    ends: Option<chrono::NaiveDateTime>,
    #[wyrm(update)]
    meta: serde_json::Value,
    #[wyrm(skip)]
    secret: String,
}

#[test]
fn field_types_lookups_and_transforms() {
    let ts = wyrmhole::typescript::<Event>();
    let has = |line: &str| assert!(ts.lines().any(|l| l == line), "no {line:?} in\n{ts}");
    has("export type Event = {");
    has("  starts: string;");
    has("  ends: string | null;");
    has("  meta: unknown;");
    // Create: the writable fields; nullable ones optional. Not the key or owner.
    has("  ends?: string | null;");
    has("  owner__id?: number;");
    has("  starts__year__gte?: number;");
    has("  starts__date__range?: readonly [string, string];");
    has("  ends__isnull?: boolean;");
    has("  meta__has_key?: string;");
    has("  [keyPath: `meta__${string}`]: unknown;");
    has("    event: { row: Event; create: EventCreate; update: EventUpdate; filter: EventFilter };");
    assert!(!ts.contains("secret"), "skipped fields stay hidden");
    assert!(!ts.contains("starts__icontains"), "text lookups only on text");
    assert!(!ts.contains("meta__gt"), "no ordering on JSON");
    let create = &ts[ts.find("EventCreate = {").unwrap()..ts.find("EventUpdate =").unwrap()];
    assert!(!create.contains("id:") && !create.contains("owner_id"), "{create}");
}
