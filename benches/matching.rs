//! Matching cost per change against 1k, 100k and 1M subscriptions whose
//! filters are `list_id = <one of 10k values>`, through the registry's
//! equality index; the same with OR filters pinned on one field; and, for
//! contrast, a linear scan over every filter.
//!
//! Run: `cargo bench --bench matching`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use wyrmhole::bench::Matcher;
use wyrmhole::change::Change;
use wyrmhole::filter::{FieldAccess, Filter};
use wyrmhole::{FieldDef, Value};

/// The benchmark's model; only its field table is used.
#[allow(dead_code)]
#[derive(wyrmhole::Model)]
#[wyrm(route = "item")]
struct Item {
    id: i32,
    list_id: i32,
    text: String,
    done: bool,
}
const FIELDS: &[FieldDef] = <Item as wyrmhole::Model>::FIELDS;
const DISTINCT_LISTS: i64 = 10_000;

fn filter(list: i64) -> Filter {
    Filter::parse(FIELDS, &serde_json::json!({ "list_id": list }), FieldAccess::Published).unwrap()
}

fn registry(subscriptions: usize) -> Matcher {
    let mut registry = Matcher::new::<Item>();
    for i in 0..subscriptions {
        registry.subscribe(filter(i as i64 % DISTINCT_LISTS));
    }
    registry
}

/// An update of a row in `list` (its text changes, it stays in the list).
fn change(list: i64) -> Change {
    let row = |text: &str| -> Box<[Value]> {
        vec![Value::Int(1), Value::Int(list), Value::Text(text.into()), Value::Bool(false)].into()
    };
    Change::new("item", FIELDS, 0, Some(row("old")), Some(row("new")))
}

fn matching(c: &mut Criterion) {
    let mut group = c.benchmark_group("match_per_change");
    group.measurement_time(Duration::from_secs(5)).sample_size(50);
    for subscriptions in [1_000usize, 100_000, 1_000_000] {
        let registry = registry(subscriptions);
        let mut list = 0;
        // Groups whose filter matched: 0 or 1 at 1k subscriptions (1k of 10k lists
        // are watched), exactly 1 at 100k and 1M.
        group.bench_with_input(BenchmarkId::new("indexed", subscriptions), &registry, |b, registry| {
            b.iter(|| {
                list = (list + 7) % DISTINCT_LISTS;
                let change = change(list);
                black_box(registry.matching_groups(black_box(&change)))
            })
        });
        // The same, also walking every matched subscription (what delivery
        // must touch: 0.1, 10 and 100 subscriptions per change).
        group.bench_with_input(BenchmarkId::new("indexed+members", subscriptions), &registry, |b, registry| {
            b.iter(|| {
                list = (list + 7) % DISTINCT_LISTS;
                let change = change(list);
                black_box(registry.matching_members(black_box(&change)))
            })
        });
    }
    // OR filters pinned on one field (`{"or": [{"list_id": v}, {"list_id":
    // v + 1, "done": true}]}`): the index files each group under both values.
    for subscriptions in [1_000usize, 100_000, 1_000_000] {
        let mut registry = Matcher::new::<Item>();
        for i in 0..subscriptions {
            let v = i as i64 % DISTINCT_LISTS;
            let json = serde_json::json!({"or": [{"list_id": v}, {"list_id": (v + 1) % DISTINCT_LISTS, "done": true}]});
            registry.subscribe(Filter::parse(FIELDS, &json, FieldAccess::Published).unwrap());
        }
        let mut list = 0;
        group.bench_with_input(BenchmarkId::new("indexed_or", subscriptions), &registry, |b, registry| {
            b.iter(|| {
                list = (list + 7) % DISTINCT_LISTS;
                let change = change(list);
                black_box(registry.matching_groups(black_box(&change)))
            })
        });
    }
    // Without an index every filter is evaluated for every change.
    for subscriptions in [1_000usize, 100_000] {
        let filters: Vec<Filter> = (0..subscriptions).map(|i| filter(i as i64 % DISTINCT_LISTS)).collect();
        let mut list = 0;
        group.bench_with_input(BenchmarkId::new("linear_scan", subscriptions), &filters, |b, filters| {
            b.iter(|| {
                list = (list + 7) % DISTINCT_LISTS;
                let change = change(list);
                let row = change.new.as_deref().unwrap();
                black_box(filters.iter().filter(|f| f.matches(row)).count())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, matching);
criterion_main!(benches);
