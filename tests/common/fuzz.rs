//! What the two fuzzers share (`tests/fuzz_filters.rs`, `tests/fuzz_frames.rs`):
//! a seeded random source, the time budget, arbitrary and malformed JSON,
//! mutations of JSON values and of frame text, and a shrinker that reduces a
//! failing input to a small one.
//!
//! Only stable Rust exists here (no libFuzzer), so these are plain tests
//! driven by a seeded generator: fast enough to run millions of filter cases
//! in the time a test may take, and reproducible from the seed they print.
//!
//! - `WYRM_FUZZ_SECS`: seconds per target (a float; default per target);
//! - `WYRM_FUZZ_SEED`: the seed (default: from the clock);
//! - `WYRM_FUZZ_CASES`: stop after this many cases instead (for replaying a
//!   failure printed as "case N").
#![allow(dead_code)]

use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use wyrmhole::filter::Lookup;
use wyrmhole::{FieldDef, Storage, Value as FieldValue};

/// SplitMix64: tiny, fast, and the same sequence for the same seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 for `n` = 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// How long a target runs, and from which seed.
pub struct Budget {
    pub seed: u64,
    pub secs: f64,
    pub max_cases: Option<u64>,
    deadline: Instant,
}

impl Budget {
    /// From the environment; prints the seed so a failure can be replayed.
    pub fn from_env(target: &str, default_secs: f64) -> Budget {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let secs = env("WYRM_FUZZ_SECS").map_or(default_secs, |s| s.parse().expect("WYRM_FUZZ_SECS: seconds"));
        let seed = env("WYRM_FUZZ_SEED").map_or_else(
            || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64,
            |s| s.parse().expect("WYRM_FUZZ_SEED: a number"),
        );
        let max_cases = env("WYRM_FUZZ_CASES").map(|s| s.parse().expect("WYRM_FUZZ_CASES: a number"));
        eprintln!("{target}: seed {seed} for {secs} s (replay: WYRM_FUZZ_SEED={seed})");
        Budget { seed, secs, max_cases, deadline: Instant::now() + Duration::from_secs_f64(secs) }
    }

    /// Whether case number `case` (from 0) may still run.
    pub fn go_on(&self, case: u64) -> bool {
        match self.max_cases {
            Some(max) => case < max,
            // The clock is read every 64 cases: it costs more than a case.
            None => case % 64 != 0 || Instant::now() < self.deadline,
        }
    }
}

/// Characters that break things: NUL, LIKE and quoting metacharacters,
/// characters whose case folding is special (several characters, none,
/// context-dependent, Unicode-version-dependent), combining marks,
/// direction marks, a BOM, the replacement character, private use, the
/// last code point, an astral emoji, SQL placeholders.
pub const NASTY: &[&str] = &[
    "\0",
    "%",
    "_",
    "\\",
    "'",
    "\"",
    "?",
    "$1",
    "ß",
    "ẞ",
    "ﬃ",
    "σ",
    "ς",
    "Σ",
    "İ",
    "ı",
    "ǅ",
    "ᾳ",
    "ᾼ",
    "ƛ",
    "e\u{301}",
    "\u{200F}",
    "\u{FEFF}",
    "\u{FFFD}",
    "\u{E000}",
    "\u{10FFFF}",
    "😀",
    "a",
    "A",
    "z",
    " ",
    "\n",
    "') OR 1=1 --",
    "é",
];

/// Text made of nasty pieces, sometimes long.
pub fn nasty_text(rng: &mut Rng) -> String {
    let pieces = match rng.below(100) {
        0 => 200 + rng.below(2000),
        1..=5 => 0,
        _ => rng.below(8),
    };
    (0..pieces).map(|_| *rng.pick(NASTY)).collect()
}

/// Numbers at the edges: of every integer width, of `f64`, of exactly
/// representable integers, beyond `i64` and `u64`.
pub fn nasty_number(rng: &mut Rng) -> Value {
    match rng.below(22) {
        0 => json!(0),
        1 => json!(-0.0),
        2 => json!(1),
        3 => json!(-1),
        4 => json!(i16::MAX as i64 + rng.below(2) as i64),
        5 => json!(i16::MIN as i64 - rng.below(2) as i64),
        6 => json!(i32::MAX as i64 + rng.below(2) as i64),
        7 => json!(i32::MIN as i64 - rng.below(2) as i64),
        8 => json!(i64::MAX),
        9 => json!(i64::MIN),
        10 => json!(u64::MAX),
        11 => json!((1u64 << 53) + 1),
        12 => json!(9007199254740993.0f64),
        13 => json!(1e308),
        14 => json!(-1e308),
        15 => json!(5e-324),
        16 => json!(0.5),
        17 => json!(1e19),
        18 => json!(-2.5),
        19 => json!(f64::from_bits(rng.next()).clamp(-1e300, 1e300)),
        _ => json!(rng.below(10) as i64 - 3),
    }
}

/// Any JSON value, of any shape, at most `depth` levels deep.
pub fn arbitrary(rng: &mut Rng, depth: usize) -> Value {
    let kinds = if depth == 0 { 4 } else { 7 };
    match rng.below(kinds) {
        0 => Value::Null,
        1 => json!(rng.chance(50)),
        2 => nasty_number(rng),
        3 => json!(nasty_text(rng)),
        4 => {
            let len = if rng.chance(1) { 1001 } else { rng.below(5) };
            // Long lists hold scalars only, so a value stays small.
            let depth = if len > 8 { 0 } else { depth.min(2) - 1 };
            Value::Array((0..len).map(|_| arbitrary(rng, depth)).collect())
        }
        5 => {
            let len = rng.below(4);
            Value::Object((0..len).map(|_| (nasty_text(rng), arbitrary(rng, depth - 1))).collect())
        }
        _ => {
            // Deep nesting, within what a parser accepts.
            let mut v = arbitrary(rng, 0);
            for _ in 0..rng.below(60) {
                v = if rng.chance(50) { json!([v]) } else { json!({ "k": v }) };
            }
            v
        }
    }
}

/// One random change somewhere inside `value`; `fresh` makes replacement
/// values (the caller's idea of a plausible value, or [`arbitrary`]).
pub fn mutate(rng: &mut Rng, value: &mut Value, fresh: &mut dyn FnMut(&mut Rng) -> Value) {
    let count = count_nodes(value);
    let target = rng.below(count);
    let mut seen = 0;
    mutate_at(rng, value, target, &mut seen, fresh);
}

fn count_nodes(value: &Value) -> usize {
    1 + match value {
        Value::Array(items) => items.iter().map(count_nodes).sum(),
        Value::Object(map) => map.values().map(count_nodes).sum(),
        _ => 0,
    }
}

fn mutate_at(
    rng: &mut Rng,
    value: &mut Value,
    target: usize,
    seen: &mut usize,
    fresh: &mut dyn FnMut(&mut Rng) -> Value,
) {
    if *seen == target {
        mutate_here(rng, value, fresh);
        *seen = usize::MAX / 2;
        return;
    }
    *seen += 1;
    match value {
        Value::Array(items) => {
            for item in items {
                mutate_at(rng, item, target, seen, fresh);
            }
        }
        Value::Object(map) => {
            for item in map.values_mut() {
                mutate_at(rng, item, target, seen, fresh);
            }
        }
        _ => {}
    }
}

fn mutate_here(rng: &mut Rng, value: &mut Value, fresh: &mut dyn FnMut(&mut Rng) -> Value) {
    match (rng.below(8), &mut *value) {
        (0, _) => *value = arbitrary(rng, 2),
        (1, _) => *value = fresh(rng),
        (2, _) => *value = json!([value.take()]),
        (3, Value::Object(map)) if !map.is_empty() => {
            // Rename a key: another lookup, a case change, a typo, a chain.
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = rng.pick(&keys).clone();
            let v = map.remove(&key).unwrap_or_default();
            let renamed = match rng.below(6) {
                0 => format!("{key}__{}", rng.pick(LOOKUP_NAMES)),
                1 => key.to_uppercase(),
                2 => key.rsplit_once("__").map_or_else(String::new, |(k, _)| k.to_owned()),
                3 => format!("{key}{}", rng.pick(NASTY)),
                4 => format!("{key}__"),
                _ => nasty_text(rng),
            };
            map.insert(renamed, v);
        }
        (4, Value::Object(map)) => {
            if map.is_empty() || rng.chance(50) {
                map.insert(nasty_text(rng), fresh(rng));
            } else {
                let keys: Vec<String> = map.keys().cloned().collect();
                map.remove(rng.pick(&keys));
            }
        }
        (5, Value::Array(items)) => match rng.below(3) {
            0 if !items.is_empty() => {
                items.remove(rng.below(items.len()));
            }
            1 => items.push(fresh(rng)),
            _ => items.clear(),
        },
        (6, Value::String(s)) => {
            let mut chars: Vec<char> = s.chars().collect();
            match rng.below(4) {
                0 => chars.truncate(rng.below(chars.len() + 1)),
                1 => {
                    let at = rng.below(chars.len() + 1);
                    chars.splice(at..at, rng.pick(NASTY).chars());
                }
                2 => chars = s.to_uppercase().chars().collect(),
                _ => chars = s.to_lowercase().chars().collect(),
            }
            *s = chars.into_iter().collect();
        }
        (7, Value::Number(n)) => {
            *value = match n.as_i64() {
                Some(i) => json!(i.saturating_add(rng.below(3) as i64 - 1)),
                None => nasty_number(rng),
            }
        }
        _ => *value = fresh(rng),
    }
}

/// Every lookup name, a few that are not, and case variants.
pub const LOOKUP_NAMES: &[&str] = &[
    "exact",
    "iexact",
    "contains",
    "icontains",
    "in",
    "gt",
    "gte",
    "lt",
    "lte",
    "startswith",
    "istartswith",
    "endswith",
    "iendswith",
    "range",
    "isnull",
    "like",
    "regex",
    "IN",
    "Exact",
    "id",
    "pk",
    "",
    "in__gt",
    "exact__exact",
];

/// Where filter operands come from: a value of the field at this index
/// from the data under test, if there is any.
pub type Sample<'a> = &'a mut dyn FnMut(&mut Rng, usize) -> Option<FieldValue>;

/// A key naming a field: by name, through its relation, or not at all.
pub fn field_key(rng: &mut Rng, fields: &[FieldDef]) -> (Option<usize>, String) {
    let related: Vec<usize> = (0..fields.len()).filter(|&i| fields[i].relation.is_some()).collect();
    match rng.below(20) {
        0 => (None, nasty_text(rng)),
        1 => (None, (*rng.pick(&["nope", "", "__", "pk", "ID", "id__", "u\"q", "x__id"])).into()),
        2 if !related.is_empty() => {
            let i = *rng.pick(&related);
            let relation = fields[i].relation.unwrap_or_default();
            (Some(i), format!("{relation}{}", rng.pick(&["", "__id", "__pk", "__x"])))
        }
        _ => {
            let i = rng.below(fields.len());
            (Some(i), fields[i].name.into())
        }
    }
}

/// An operand of the field's type: a sampled value (cut and case-changed
/// when text, so substring lookups match sometimes), or a made-up one.
pub fn typed_operand(rng: &mut Rng, fields: &[FieldDef], field: usize, sample: Sample) -> Value {
    if rng.chance(60) {
        match sample(rng, field) {
            Some(FieldValue::Float(f)) if f.is_infinite() => return json!(f64::MAX.copysign(f)),
            Some(FieldValue::Text(t)) => {
                let chars: Vec<char> = t.chars().collect();
                let start = rng.below(chars.len() + 1);
                let end = start + rng.below(chars.len() - start + 1);
                let piece: String = chars[start..end].iter().collect();
                return json!(match rng.below(3) {
                    0 => piece.to_uppercase(),
                    1 => piece.to_lowercase(),
                    _ => piece,
                });
            }
            Some(v) => return v.to_json(),
            None => {}
        }
    }
    match fields[field].ty.storage() {
        Storage::Bool => json!(rng.chance(50)),
        Storage::Text => json!(nasty_text(rng)),
        Storage::Date | Storage::DateTime | Storage::DateTimeUtc => {
            json!(rng.pick(&["2024-02-29", "2024-2-9", "2024-02-29T10:00:00Z", "2024-02-29 10:00", "2024-13-01", "x"]))
        }
        Storage::Uuid => {
            json!(rng.pick(&["00000000-0000-0000-0000-000000000001", "A0000000000000000000000000000000", "x"]))
        }
        Storage::Json => json!(rng.pick(&[json!("dark"), json!(1), json!(1.0), json!(null), json!(true)])),
        _ if rng.chance(50) => json!(rng.below(7) as i64 - 3),
        _ => nasty_number(rng),
    }
}

/// An operand of the right shape for the lookup, mostly.
pub fn filter_operand(
    rng: &mut Rng,
    fields: &[FieldDef],
    field: Option<usize>,
    lookup: Option<Lookup>,
    sample: Sample,
) -> Value {
    let Some(field) = field.filter(|_| rng.chance(90)) else { return arbitrary(rng, 2) };
    match lookup.unwrap_or(Lookup::Exact) {
        Lookup::Exact | Lookup::IExact if rng.chance(10) => Value::Null,
        Lookup::In => {
            let len = if rng.chance(1) { 1000 + rng.below(2) } else { rng.below(5) };
            Value::Array((0..len).map(|_| typed_operand(rng, fields, field, sample)).collect())
        }
        Lookup::Range => {
            json!([typed_operand(rng, fields, field, sample), typed_operand(rng, fields, field, sample)])
        }
        Lookup::IsNull => json!(rng.chance(50)),
        _ => typed_operand(rng, fields, field, sample),
    }
}

/// A filter built key by key, mostly well-formed: known fields (and
/// unknown ones), known lookups (and unknown, chained, miscased ones),
/// operands of the right type (and of any other).
pub fn filter(rng: &mut Rng, fields: &[FieldDef], sample: Sample) -> Value {
    nested_filter(rng, fields, sample, 3)
}

/// A filter that may nest `or`, `and` and `not` (mostly well-formed:
/// non-empty lists of non-empty objects, else any shape) `depth` deep.
fn nested_filter(rng: &mut Rng, fields: &[FieldDef], sample: Sample, depth: usize) -> Value {
    let mut filter = Map::new();
    if depth > 0 && rng.chance(30) {
        let mut nested = |rng: &mut Rng| match rng.below(12) {
            0 => arbitrary(rng, 2),
            1 => json!({}),
            _ => nested_filter(rng, fields, &mut *sample, depth - 1),
        };
        let (key, operand) = match rng.below(3) {
            0 => ("not", nested(rng)),
            n => {
                let len = if rng.chance(5) { 0 } else { 1 + rng.below(3) };
                (if n == 1 { "or" } else { "and" }, Value::Array((0..len).map(|_| nested(rng)).collect()))
            }
        };
        filter.insert(key.into(), operand);
    }
    for _ in 0..rng.below(5) {
        let (field, name) = field_key(rng, fields);
        let (lookup, key) = match rng.below(10) {
            0..=2 => (None, name),
            3 => (None, format!("{name}__{}", rng.pick(LOOKUP_NAMES))),
            _ => {
                let lookup = *rng.pick(&Lookup::ALL);
                (Some(lookup), format!("{name}__{}", lookup.name()))
            }
        };
        let value = filter_operand(rng, fields, field, lookup, sample);
        filter.insert(key, value);
    }
    Value::Object(filter)
}

/// Pieces that, spliced into frame text, make it malformed in the ways
/// parsers and the code behind them trip on.
const TEXT_PIECES: &[&str] = &[
    "\\u0000",
    "\\ud800",
    "\\udc00",
    "\\ud83d\\ude00",
    "\\uDFFF\\uD800",
    "\u{0}",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    "1e999",
    "-",
    "99999999999999999999999",
    "null",
    "true",
    "NaN",
    "Infinity",
    "\u{FEFF}",
    "\u{FFFD}",
    "\"id\":",
    "\"args\":{}",
    "{\"id\":1}",
    "0.0e0",
    "-0",
    "\u{7f}",
    "\t",
    "\r\n",
];

/// Frame text with random edits: bytes flipped, malformed pieces spliced
/// in, ranges deleted or repeated, the end cut off. Invalid UTF-8 becomes
/// U+FFFD, as a text frame must be UTF-8.
pub fn mutate_text(rng: &mut Rng, text: &str) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for _ in 0..1 + rng.below(3) {
        let len = bytes.len();
        let at = rng.below(len + 1);
        match rng.below(6) {
            0 if len > 0 => bytes[at.min(len - 1)] ^= 1 << rng.below(8),
            1 => {
                bytes.splice(at..at, rng.pick(TEXT_PIECES).bytes());
            }
            2 => {
                let end = (at + rng.below(8)).min(len);
                bytes.drain(at..end);
            }
            3 => {
                let end = (at + rng.below(16)).min(len);
                let chunk = bytes[at..end].to_vec();
                bytes.splice(at..at, chunk);
            }
            4 => bytes.truncate(at),
            _ => {
                let n = rng.below(256) as u8;
                bytes.insert(at, n);
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A smaller value that still `fails`, found by greedy reduction: drop
/// object keys and list items, replace values by their children or by
/// simple ones, shorten strings. Gives up after `budget` tries.
pub fn shrink(mut value: Value, mut fails: impl FnMut(&Value) -> bool, budget: usize) -> Value {
    let mut tries = 0;
    'outer: loop {
        for candidate in smaller(&value) {
            tries += 1;
            if tries > budget {
                return value;
            }
            if fails(&candidate) {
                value = candidate;
                continue 'outer;
            }
        }
        return value;
    }
}

/// Every one-step reduction of `value`, biggest steps first.
fn smaller(value: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    match value {
        Value::Object(map) => {
            for key in map.keys() {
                let mut m = map.clone();
                m.remove(key);
                out.push(Value::Object(m));
            }
            for (key, v) in map {
                for s in smaller(v) {
                    let mut m = map.clone();
                    m.insert(key.clone(), s);
                    out.push(Value::Object(m));
                }
                // A shorter key (a typo'd or chained lookup is often the point).
                if key.chars().count() > 1 {
                    let mut m: Map<String, Value> = map.clone();
                    let v = m.remove(key).unwrap_or_default();
                    let shorter: String = key.chars().take(key.chars().count() - 1).collect();
                    if !m.contains_key(&shorter) {
                        m.insert(shorter, v);
                        out.push(Value::Object(m));
                    }
                }
            }
        }
        Value::Array(items) => {
            if items.len() > 2 {
                out.push(Value::Array(items[..items.len() / 2].to_vec()));
                out.push(Value::Array(items[items.len() / 2..].to_vec()));
            }
            for i in 0..items.len() {
                let mut v = items.clone();
                v.remove(i);
                out.push(Value::Array(v));
            }
            for (i, item) in items.iter().enumerate() {
                for s in smaller(item) {
                    let mut v = items.clone();
                    v[i] = s;
                    out.push(Value::Array(v));
                }
            }
        }
        Value::String(s) if !s.is_empty() => {
            let chars: Vec<char> = s.chars().collect();
            out.push(json!(chars[..chars.len() / 2].iter().collect::<String>()));
            out.push(json!(chars[chars.len() / 2..].iter().collect::<String>()));
            if chars.len() <= 16 {
                for i in 0..chars.len() {
                    let mut c = chars.clone();
                    c.remove(i);
                    out.push(json!(c.into_iter().collect::<String>()));
                }
            }
        }
        Value::Number(n) if n.as_i64() != Some(0) => out.push(json!(0)),
        _ => {}
    }
    if !value.is_null() {
        out.push(Value::Null);
    }
    out
}

/// A panic's message, for reports.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
