//! The nearest known name to a misspelled one, for messages that say "did
//! you mean ...?" (a connection parameter, an `sslmode`, a variable).

/// Edit distance (insertions, deletions, substitutions) between `a` and
/// `b`, by characters, ignoring ASCII case.
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitute.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

/// The candidate nearest to `word`, if it is at most `max` edits away
/// (and not `word` itself); the first one on a tie.
pub fn nearest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    max: usize,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (distance(word, c), c))
        .filter(|(d, c)| *d <= max && *c != word)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_edits_and_finds_the_nearest() {
        assert_eq!(
            distance("MONITOR_CHECK_INTERVALL", "MONITOR_CHECK_INTERVAL"),
            1
        );
        assert_eq!(distance("SUPABASE_DBURL", "SUPABASE_DB_URL"), 1);
        assert_eq!(distance("verify_full", "verify-full"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(
            nearest("sslmod", ["sslmode", "sslrootcert"], 2),
            Some("sslmode")
        );
        assert_eq!(nearest("colour", ["sslmode", "host"], 2), None);
        assert_eq!(nearest("host", ["host"], 2), None);
    }
}
