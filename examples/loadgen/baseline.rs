//! `loadgen --baseline`: every fan-out figure as a ratio against a bare
//! tokio-tungstenite broadcast (`examples/bare_server.rs`) measured in the
//! same run, because absolute figures move with the machine and its
//! neighbours while the ratio is what a rerun reproduces.
//!
//! For each of `--runs N` (default 1) and each S, wyrmhole's row (its
//! `--processes`, as without `--baseline`) and the bare server's row (always
//! one process: it has no broker) run back to back with the same clients,
//! the same closed and open phases and the same checks; the order
//! alternates between runs (wyrmhole first in runs 1, 3, ...; bare first in
//! 2, 4, ...) so a neighbour's load that grows or fades during a run does
//! not always favour the same side. The table gives wyrmhole ÷ bare per run
//! and the median over runs of each figure and of each per-run ratio.

use std::path::PathBuf;

use super::{fanout_run, report, row, BoxError, Options, Outcome};

/// One run's pair for one S.
pub struct Pair {
    pub wyrmhole: Outcome,
    pub bare: Outcome,
}

/// The options that point the same fan-out run at the bare server.
fn bare_options(o: &Options) -> Options {
    Options { server_bin: o.bare_bin.clone(), default_server_bin: false, processes: 1, db: None, ..o.clone() }
}

/// Runs every pair; returns them by S (outer) and run (inner), with the servers' command lines.
pub async fn run_pairs(o: &Options) -> Result<(Vec<Vec<Pair>>, String, String), BoxError> {
    let bare_o = bare_options(o);
    let mut by_s: Vec<Vec<Pair>> = o.subs.iter().map(|_| Vec::new()).collect();
    let (mut wyrmhole_cmd, mut bare_cmd) = (String::new(), String::new());
    for run in 0..o.runs {
        for (i, &s) in o.subs.iter().enumerate() {
            eprintln!(
                "run {} of {}, S={s}: wyrmhole and bare, {} first",
                run + 1,
                o.runs,
                if run % 2 == 0 { "wyrmhole" } else { "bare" }
            );
            let (w, b) = if run % 2 == 0 {
                let w = fanout_run(o, s).await?;
                (w, fanout_run(&bare_o, s).await?)
            } else {
                let b = fanout_run(&bare_o, s).await?;
                (fanout_run(o, s).await?, b)
            };
            wyrmhole_cmd = w.1;
            bare_cmd = b.1;
            by_s[i].push(Pair { wyrmhole: w.0, bare: b.0 });
        }
    }
    Ok((by_s, wyrmhole_cmd, bare_cmd))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The figures the ratio table compares, in its column order.
fn figures(r: &Outcome) -> [f64; 4] {
    [
        r.open.rate(),
        r.open.server_us_per_delivery(),
        r.closed.latency.all_p50 as f64 / 1e3,
        r.closed.latency.all_p99 as f64 / 1e3,
    ]
}

const NAMES: [&str; 4] =
    ["open-loop deliveries/s", "open-loop server µs CPU/delivery", "closed to-all p50 ms", "closed to-all p99 ms"];

fn fmt(v: f64, column: usize) -> String {
    if column == 0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Prints both sides' full tables, then the ratio table; false if a run lost anything.
pub fn report_pairs(o: &Options, by_s: &[Vec<Pair>], wyrmhole_cmd: &str, bare_cmd: &str) -> bool {
    let flat = |side: fn(&Pair) -> &Outcome, cmd: &str| -> Vec<(Outcome, String)> {
        by_s.iter().flatten().map(|p| (side(p).clone(), cmd.to_string())).collect()
    };
    let mut ok = report(o, &flat(|p| &p.wyrmhole, wyrmhole_cmd), &None, None);
    ok &= report(
        &bare_options(o),
        &flat(|p| &p.bare, bare_cmd),
        &None,
        Some("bare tokio-tungstenite broadcast (the same-run reference; one process, no database)"),
    );
    let args: Vec<String> = std::env::args().skip(1).collect();
    let wyrmhole = if o.processes > 1 {
        format!("{} wyrmhole processes through Redis", o.processes)
    } else {
        "one wyrmhole process".to_string()
    };
    println!("\n## wyrmhole ÷ bare broadcast, same run ({wyrmhole}; the bare server is one process)\n");
    println!("Command: `loadgen {}`", args.join(" "));
    println!("Wyrmhole: `{wyrmhole_cmd}`; bare: `{bare_cmd}`");
    println!(
        "Each cell: wyrmhole / bare = ratio. Throughput: higher is better (target ≥ 0.7×); CPU and latency: lower is better (closed p50 target ≤ 1.2×).\n"
    );
    let mut head = vec!["S".to_string(), "run".into(), "load avg at start (wyrmhole; bare)".into()];
    head.extend(NAMES.iter().map(|n| n.to_string()));
    println!("{}", row(&head));
    println!("{}", row(&vec!["---".to_string(); head.len()]));
    for (i, pairs) in by_s.iter().enumerate() {
        let s = o.subs[i];
        let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); NAMES.len()];
        let mut sides: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); NAMES.len()];
        for (run, p) in pairs.iter().enumerate() {
            let (w, b) = (figures(&p.wyrmhole), figures(&p.bare));
            let mut cells = vec![s.to_string(), (run + 1).to_string(), format!("{}; {}", p.wyrmhole.load, p.bare.load)];
            if !clean(&p.wyrmhole) || !clean(&p.bare) {
                // A run that lost events or stalled measured something else: no ratio, not in the medians.
                cells.extend(NAMES.iter().map(|_| "incomplete or lost events".to_string()));
                println!("{}", row(&cells));
                continue;
            }
            for c in 0..NAMES.len() {
                let ratio = w[c] / b[c];
                cells.push(format!("{} / {} = **{ratio:.2}×**", fmt(w[c], c), fmt(b[c], c)));
                ratios[c].push(ratio);
                sides[c].0.push(w[c]);
                sides[c].1.push(b[c]);
            }
            println!("{}", row(&cells));
        }
        let counted = ratios[0].len();
        if counted > 1 {
            let mut cells = vec![s.to_string(), format!("median of {counted}"), String::new()];
            for c in 0..NAMES.len() {
                cells.push(format!(
                    "{} / {} = **{:.2}×**",
                    fmt(median(sides[c].0.clone()), c),
                    fmt(median(sides[c].1.clone()), c),
                    median(ratios[c].clone())
                ));
            }
            println!("{}", row(&cells));
        }
    }
    println!(
        "\nThe median row's ratio is the median of the per-run ratios (each run's pair shares its neighbours), not the ratio of the medians."
    );
    ok
}

/// Every update reached every subscriber, in order, and no connection ended.
fn clean(r: &Outcome) -> bool {
    r.closed.complete && r.open.complete && r.lost == 0 && r.ended == 0 && r.out_of_order == 0 && r.unexpected == 0
}

/// The bare server's default path: next to this binary.
pub fn default_bare_bin(exe: &std::path::Path) -> PathBuf {
    exe.with_file_name("bare_server")
}
