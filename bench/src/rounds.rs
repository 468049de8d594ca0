//! `--rounds N`: the selection run N times in rotation, and each row's
//! figure taken from the rounds in which the cores stayed where they were.
//!
//! The host may move the two vCPUs between placements (a cache-line round
//! trip of about 100, 200 or 800 ns here) from one minute to the next, often
//! within a row, so in a single pass a ratio between two rows may compare two
//! placements. With rounds, every ratio is computed within one round, as in
//! a single pass. A round *settles* a row when every floor probe its ratios
//! rest on agrees within 1.5×: the probes before and after the row itself
//! and before and after each row it is compared with for its floor and its
//! goal. The row reported is the one of the settled round with the median
//! *key ratio* (the goal's ratio to another row where the goal names one,
//! the ratio to the floor otherwise, the headline figure where there is
//! neither); its note and its `rounds` list give every round's key ratio and
//! probe, so a reader sees both placements when the host offered both.

use crate::measure::{Goal, Record, RoundFig, Spec, Status, SETTLED};
use crate::report::rate;

/// One record per spec: for each, the median settled round's record with
/// every round's figures attached. `rounds[r][i]` is spec `i` in round `r`,
/// each round already compared (`compare` in `main.rs`).
pub(crate) fn combine(specs: &[&Spec], rounds: &[Vec<Record>]) -> Vec<Record> {
    (0..specs.len())
        .map(|i| combine_row(specs[i], i, rounds))
        .collect()
}

fn combine_row(spec: &Spec, i: usize, rounds: &[Vec<Record>]) -> Record {
    let refs = references(spec);
    let figs: Vec<RoundFig> = rounds
        .iter()
        .enumerate()
        .map(|(r, round)| {
            let rec = &round[i];
            let ok = rec.status == Status::Ok;
            let mut probes = own_probes(rec);
            for name in &refs {
                if let Some(other) = round.iter().find(|x| x.name == *name) {
                    probes.extend(own_probes(other));
                }
            }
            RoundFig {
                round: r + 1,
                headline: rec.headline(),
                key: ok.then(|| key(spec, rec, round)).flatten(),
                probe_ns: rec.floor_before_ns,
                settled: ok && agree(&probes),
            }
        })
        .collect();
    let settled: Vec<&RoundFig> = figs
        .iter()
        .filter(|f| f.settled && f.key.is_some())
        .collect();
    let pool: Vec<&RoundFig> = if settled.is_empty() {
        figs.iter().filter(|f| f.key.is_some()).collect()
    } else {
        settled.clone()
    };
    let chosen = median(&pool).map_or(0, |f| f.round - 1);
    let mut out = rounds[chosen][i].clone();
    if rounds.len() > 1 && out.status == Status::Ok {
        let list = |settled: bool| {
            figs.iter()
                .filter(|f| f.settled == settled && f.key.is_some())
                .map(|f| format!("{} ({})", fmt_key(f.key), probe_text(f.probe_ns)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let head = if settled.is_empty() {
            format!(
                "no round of {} settled (probes disagree); median round {} of all",
                figs.len(),
                chosen + 1
            )
        } else {
            format!(
                "round {} of {}: the median of {} settled by {}",
                chosen + 1,
                figs.len(),
                settled.len(),
                key_name(spec)
            )
        };
        let mut text = format!("{head}: {}", list(true));
        let moved = list(false);
        if !moved.is_empty() {
            text += &format!("; not settled: {moved}");
        }
        out.note = if out.note.is_empty() {
            text
        } else {
            format!("{text}; {}", out.note)
        };
    }
    out.rounds = figs;
    out
}

/// The rows a row's floor and goal ratios are taken against.
fn references(spec: &Spec) -> Vec<String> {
    let mut v: Vec<String> = spec
        .floor
        .iter()
        .filter(|f| *f != "probe")
        .cloned()
        .collect();
    if let Some(g) = &spec.goal {
        goal_refs(g, &mut v);
    }
    v
}

fn goal_refs(g: &Goal, out: &mut Vec<String>) {
    match g {
        Goal::MaxVsFloor(_) | Goal::MinRate(_, None) => {}
        Goal::MinRate(_, Some((name, _))) | Goal::MinVs(name, _) | Goal::MaxVs(name, _) => {
            out.push((*name).to_owned())
        }
        Goal::All(goals) => goals.iter().for_each(|g| goal_refs(g, out)),
    }
}

/// The row another row's goal compares it with, if the goal names one
/// (a rate goal's named row is a second condition: its key is the floor).
fn goal_row(spec: &Spec) -> Option<&'static str> {
    fn first(g: &Goal) -> Option<&'static str> {
        match g {
            Goal::MinVs(name, _) | Goal::MaxVs(name, _) => Some(name),
            Goal::All(goals) => goals.iter().find_map(first),
            Goal::MaxVsFloor(_) | Goal::MinRate(..) => None,
        }
    }
    spec.goal.as_ref().and_then(first)
}

fn key(spec: &Spec, rec: &Record, round: &[Record]) -> Option<f64> {
    let mine = rec.headline()?;
    match goal_row(spec) {
        Some(name) => {
            let other = round
                .iter()
                .find(|x| x.name == name && x.status == Status::Ok)?;
            Some(mine / other.headline()?)
        }
        None => rec.vs_floor.or(Some(mine)),
    }
}

fn key_name(spec: &Spec) -> String {
    match (goal_row(spec), &spec.floor) {
        (Some(name), _) => format!("× {name}"),
        (None, Some(_)) => "× floor".to_owned(),
        (None, None) => "headline figure".to_owned(),
    }
}

fn own_probes(rec: &Record) -> Vec<u64> {
    rec.floor_before_ns
        .into_iter()
        .chain(rec.floor_after_ns)
        .collect()
}

/// Whether the probes agree within [`SETTLED`] (no probe: nothing moved
/// that we could see).
fn agree(probes: &[u64]) -> bool {
    let (Some(lo), Some(hi)) = (probes.iter().min(), probes.iter().max()) else {
        return true;
    };
    (*hi).max(1) as f64 / (*lo).max(1) as f64 <= SETTLED
}

/// The median by key (the upper one of an even count, as the rate median
/// of a row's runs is).
fn median<'a>(pool: &[&'a RoundFig]) -> Option<&'a RoundFig> {
    let mut v = pool.to_vec();
    v.sort_by(|a, b| a.key.unwrap_or(0.0).total_cmp(&b.key.unwrap_or(0.0)));
    v.get(v.len() / 2).copied()
}

fn fmt_key(k: Option<f64>) -> String {
    match k {
        Some(k) if k >= 1e4 => rate(k),
        Some(k) if k >= 100.0 => format!("{k:.0}"),
        Some(k) => format!("{k:.2}"),
        None => "–".into(),
    }
}

fn probe_text(p: Option<u64>) -> String {
    p.map_or("no probe".into(), |p| format!("probe {p} ns"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_agree_within_the_factor_only() {
        assert!(agree(&[]));
        assert!(agree(&[200, 290, 210]));
        assert!(!agree(&[200, 310]));
        assert!(!agree(&[750, 200]));
        assert!(agree(&[0, 1]));
    }

    #[test]
    fn median_takes_the_upper_middle() {
        let f = |round, key| RoundFig {
            round,
            headline: Some(key),
            key: Some(key),
            probe_ns: None,
            settled: true,
        };
        let (a, b, c) = (f(1, 0.5), f(2, 0.2), f(3, 0.9));
        assert_eq!(median(&[&a, &b, &c]).unwrap().round, 1);
        assert_eq!(median(&[&a, &b]).unwrap().round, 1);
        assert!(median(&[]).is_none());
    }
}
