//! How the commands that list things print them: a table padded to its widest cells, or JSON
//! with `--json`; and the flags of a `list` subcommand, shared by every command family that
//! has one.

use serde::Serialize;

/// Flags of a `list` subcommand: where to list (`C`: a server, or a server or a data
/// directory) and `--json`.
#[derive(clap::Args)]
pub struct ListArgs<C: clap::Args> {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connection: C,
}

impl<C: clap::Args> ListArgs<C> {
    /// Prints `items` as one pretty JSON array with `--json`, as a table under `header`
    /// otherwise (one `row` per item).
    pub fn print<T: Serialize>(
        &self,
        items: &[T],
        header: &[&str],
        row: impl Fn(&T) -> Vec<String>,
    ) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(items)?);
        } else {
            print_table(header, items.iter().map(row));
        }
        Ok(())
    }
}

/// Prints rows under a header, columns padded to their widest cell.
pub fn print_table(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) {
    let rows: Vec<Vec<String>> = rows.into_iter().collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, cell) in cells.into_iter().enumerate() {
            if i == last {
                out.push_str(&cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                out.push_str(&cell);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        line(row);
    }
}
