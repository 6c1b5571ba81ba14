//! The README's configuration table matches the command's definitions.

use std::collections::BTreeMap;

use clap::CommandFactory;
use northstar::cli::Cli;

/// `variable -> (flag, default)` from every subcommand's arguments.
fn from_cli() -> BTreeMap<String, (String, String)> {
    let mut found = BTreeMap::new();
    let command = Cli::command();
    let mut commands = vec![&command];
    commands.extend(command.get_subcommands());
    for command in commands {
        for arg in command.get_arguments() {
            let Some(env) = arg.get_env() else { continue };
            let flag = format!("--{}", arg.get_long().expect("long flag"));
            let default = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(",");
            found.insert(env.to_string_lossy().into_owned(), (flag, default));
        }
    }
    found
}

/// The same, from README.md's `| Variable | Flag | Default | Meaning |` table.
fn from_readme() -> BTreeMap<String, (String, String)> {
    let readme = include_str!("../../../../README.md");
    let mut rows = BTreeMap::new();
    let mut in_table = false;
    for line in readme.lines() {
        if line.starts_with("| Variable | Flag | Default |") {
            in_table = true;
            continue;
        }
        if !in_table || line.starts_with("|--") || line.starts_with("| --") {
            continue;
        }
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let unquote = |cell: &str| cell.trim_matches('`').to_owned();
        let default = match cells[3] {
            "" | "—" | "-" | "(unset)" | "(none)" => String::new(),
            other => unquote(other),
        };
        rows.insert(unquote(cells[1]), (unquote(cells[2]), default));
    }
    rows
}

#[test]
fn every_variable_is_documented_with_its_flag_and_default() {
    let cli = from_cli();
    let readme = from_readme();
    assert!(cli.len() >= 10, "{cli:?}");
    assert_eq!(
        readme, cli,
        "README.md's configuration table differs from the CLI definitions"
    );
}
