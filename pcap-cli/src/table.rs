//! Aligned plain-text tables for humans, and byte counts written the way people read them.

/// How a column's cells line up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    /// For numbers, so that digits of the same weight stack.
    Right,
}

/// A table with a header row; columns are as wide as their widest cell.
#[derive(Debug, Clone)]
pub struct Table {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

/// Space between two columns.
const GAP: &str = "  ";

impl Table {
    /// A table with these column titles and alignments.
    pub fn new(columns: &[(&'static str, Align)]) -> Self {
        Table {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; missing cells are blank, extra cells are ignored.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The header and every row, each line ending in a newline and without trailing blanks.
    pub fn render(&self) -> String {
        let widths: Vec<usize> = (0..self.columns.len())
            .map(|i| {
                let head = self.columns[i].0.chars().count();
                self.rows
                    .iter()
                    .map(|r| cell(r, i).chars().count())
                    .fold(head, usize::max)
            })
            .collect();
        let mut out = String::new();
        let header: Vec<&str> = self.columns.iter().map(|(title, _)| *title).collect();
        self.render_line(&mut out, &header, &widths);
        for row in &self.rows {
            let cells: Vec<&str> = (0..self.columns.len()).map(|i| cell(row, i)).collect();
            self.render_line(&mut out, &cells, &widths);
        }
        out
    }

    fn render_line(&self, out: &mut String, cells: &[&str], widths: &[usize]) {
        let mut line = String::new();
        for (i, text) in cells.iter().enumerate() {
            if i > 0 {
                line.push_str(GAP);
            }
            let pad = widths[i].saturating_sub(text.chars().count());
            match self.columns[i].1 {
                Align::Left => {
                    line.push_str(text);
                    line.extend(std::iter::repeat_n(' ', pad));
                }
                Align::Right => {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(text);
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

fn cell(row: &[String], i: usize) -> &str {
    row.get(i).map(String::as_str).unwrap_or("")
}

/// An empty cell shown as a dash, so that columns never look shifted.
pub fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".to_owned()
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_lines_have_no_trailing_blanks() {
        let mut t = Table::new(&[
            ("ID", Align::Left),
            ("NAME", Align::Left),
            ("BYTES", Align::Right),
        ]);
        t.row(vec!["3".into(), "web".into(), "1.2 MiB".into()]);
        t.row(vec!["12".into(), "dns-resolver".into(), "0 B".into()]);
        assert_eq!(
            t.render(),
            "ID  NAME            BYTES\n\
             3   web           1.2 MiB\n\
             12  dns-resolver      0 B\n"
        );
    }

    #[test]
    fn last_left_column_is_not_padded_and_missing_cells_are_blank() {
        let mut t = Table::new(&[("A", Align::Left), ("B", Align::Left)]);
        t.row(vec!["long value".into()]);
        t.row(vec!["x".into(), "y".into()]);
        assert_eq!(t.render(), "A           B\nlong value\nx           y\n");
    }

    #[test]
    fn empty_cells_become_dashes() {
        assert_eq!(or_dash(""), "-");
        assert_eq!(or_dash("lo"), "lo");
    }
}
