//! CSV tables of numbers: comma-separated values, an optional header line, blank lines and
//! `#` comments ignored; every error names its line and column (1-based, as an editor shows
//! them).

use crate::error::DataError as Error;
use crate::table::Table;
use crate::values::{check_columns, value_problem};

/// Parses CSV text: comma-separated numbers, an optional header line (a first line with a
/// field that is not a number), blank lines and lines starting with `#` ignored. `what` names
/// the source in errors.
pub fn parse_csv(text: &str, what: &str) -> Result<Table, Error> {
    let mut values = Vec::new();
    let mut cols = None;
    let mut rows = 0;
    let mut header = None;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if rows == 0 && header.is_none() && fields.iter().any(|f| looks_like_name(f)) {
            header = Some(fields.len());
            cols = Some(fields.len());
            continue;
        }
        check_columns(fields.len(), what)?;
        let want = *cols.get_or_insert(fields.len());
        if fields.len() != want {
            return Err(Error::data(format!(
                "{what}: line {line_no} has {} column{}, but {} {want} (ragged CSV)",
                fields.len(),
                if fields.len() == 1 { "" } else { "s" },
                if header.is_some() {
                    "the header has"
                } else {
                    "the first row has"
                }
            )));
        }
        for (j, f) in fields.iter().enumerate() {
            let v: f64 = f.parse().map_err(|_| {
                Error::data(format!(
                    "{what}: line {line_no}, column {}: `{f}` is not a number",
                    j + 1
                ))
            })?;
            if let Some(why) = value_problem(v) {
                return Err(Error::data(format!(
                    "{what}: line {line_no}, column {}: value `{f}` {why}",
                    j + 1
                )));
            }
            values.push(v);
        }
        rows += 1;
    }
    if rows == 0 {
        return Err(Error::data(format!(
            "{what}: no data rows (the file is empty)"
        )));
    }
    Ok(Table {
        rows,
        cols: cols.unwrap_or(0),
        values,
    })
}

/// A header field: not parseable as a number and not a spelling of NaN/Inf.
fn looks_like_name(f: &str) -> bool {
    let l = f.to_ascii_lowercase();
    f.parse::<f64>().is_err() && !["nan", "inf", "-inf", "+inf", "infinity"].contains(&l.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_errors_name_line_and_column() {
        let e = parse_csv("a,b\n1,2\n3\n", "f.csv")
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("line 3 has 1 column,") && e.contains("header has 2"),
            "{e}"
        );
        let e = parse_csv("1,2\n3,nan\n", "f.csv")
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("line 2, column 2") && e.contains("not finite"),
            "{e}"
        );
        let e = parse_csv("1,2\n3,x7\n", "f.csv").err().unwrap().to_string();
        assert!(e.contains("line 2, column 2: `x7` is not a number"), "{e}");
        let e = parse_csv("x,y\n", "f.csv").err().unwrap().to_string();
        assert!(e.contains("no data rows"), "{e}");
        let t = parse_csv("x,y\n1,2\n\n3,4\n", "f.csv").unwrap();
        assert_eq!((t.rows, t.cols, t.values), (2, 2, vec![1.0, 2.0, 3.0, 4.0]));
    }
}
