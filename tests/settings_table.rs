//! The README's table of environment variables matches the code's (`cxrelay_core::config::env_vars`):
//! the same (variable, setting) pairs, none missing on either side.
//!
//! Pure: reads README.md only; no Redis, no simulator.

use std::collections::BTreeSet;

const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");

/// The text between backticks in `cell`, in order.
fn code_spans(cell: &str) -> Vec<String> {
    cell.split('`').skip(1).step_by(2).map(|s| s.trim().to_owned()).collect()
}

/// The (variable, setting) pairs of the README table whose header is `| variable | setting | …`.
///
/// A row may list several variables with as many settings, in the same order
/// (`` `CXRELAY_CLIENT_ID`, `CXRELAY_CLIENT_SECRET` | `target.client_id`, `target.client_secret` ``).
/// A row whose setting is in parentheses, like `` (`--log-format`) ``, is a command-line option's
/// variable, not a setting, and is left out.
fn readme_pairs(readme: &str) -> BTreeSet<(String, String)> {
    let mut lines = readme.lines().skip_while(|l| {
        let cells: Vec<&str> = l.split('|').map(str::trim).collect();
        !(cells.len() > 3 && cells[1] == "variable" && cells[2] == "setting")
    });
    assert!(lines.next().is_some(), "README.md has no table with a `| variable | setting |` header");
    let separator = lines.next().unwrap_or_default();
    assert!(separator.trim_start().starts_with("|---") || separator.trim_start().starts_with("| ---"), "{separator:?}");

    let mut pairs = BTreeSet::new();
    for row in lines.take_while(|l| l.trim_start().starts_with('|')) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert!(cells.len() >= 4, "README table row without a variable and a setting: {row}");
        let (vars, setting) = (cells[1], cells[2]);
        if setting.starts_with('(') {
            continue;
        }
        let (vars, keys) = (code_spans(vars), code_spans(setting));
        assert!(!vars.is_empty() && vars.len() == keys.len(), "README table row pairs {vars:?} with {keys:?}: {row}");
        pairs.extend(vars.into_iter().zip(keys));
    }
    pairs
}

#[test]
fn readme_lists_every_environment_variable_and_no_other() {
    let text = std::fs::read_to_string(README).unwrap_or_else(|e| panic!("reading {README}: {e}"));
    let readme = readme_pairs(&text);
    let code: BTreeSet<(String, String)> = cxrelay_core::config::env_vars().iter().map(|v| (v.name.to_owned(), v.key.to_owned())).collect();
    let show = |set: BTreeSet<&(String, String)>| {
        if set.is_empty() {
            " none".to_owned()
        } else {
            set.iter().map(|(v, k)| format!("\n  `{v}` -> `{k}`")).collect()
        }
    };
    let only_code: BTreeSet<_> = code.difference(&readme).collect();
    let only_readme: BTreeSet<_> = readme.difference(&code).collect();
    assert!(
        only_code.is_empty() && only_readme.is_empty(),
        "README.md's environment-variable table and cxrelay_core::config::env_vars() differ.\n\
         In the code, missing from README:{}\nIn README, not in the code:{}",
        show(only_code),
        show(only_readme),
    );
}

#[test]
fn parses_rows_with_several_variables_and_skips_options() {
    let text = "intro\n\n| variable | setting | default | meaning |\n|---|---|---|---|\n\
                | `A`, `B` | `x.a`, `x.b` | 1 | m |\n| `C` | (`--c`) | 2 | m |\n| `D` | `d` | 3 | m |\n\nafter | `E` | `e` |\n";
    let got: Vec<(String, String)> = readme_pairs(text).into_iter().collect();
    let want = [("A", "x.a"), ("B", "x.b"), ("D", "d")].map(|(v, k)| (v.to_owned(), k.to_owned()));
    assert_eq!(got, want);
}
