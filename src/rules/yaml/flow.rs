//! Where a `{` or `[` left open was opened. libyaml names the start of an unclosed flow
//! collection in most of its errors, but not when the collection is left open at the end of
//! its line (`amount: {` and nothing after it): it then says only "while parsing a flow node",
//! on the line after. This reads the source as far as the error, just well enough to tell a
//! `{` or `[` that opens a collection from one inside a quoted, plain or block scalar or a
//! comment.

use super::Location;

/// The innermost `{` or `[` still open just before `end`, where it is and which it is.
pub fn open_flow(src: &str, end: Location) -> Option<(Location, char)> {
    let mut scan = Scan::default();
    for (i, line) in src.lines().enumerate() {
        let number = i + 1;
        if number > end.line {
            break;
        }
        let chars: Vec<char> = line.chars().collect();
        let upto = if number == end.line {
            end.column.saturating_sub(1).min(chars.len())
        } else {
            chars.len()
        };
        scan.line(number, &chars[..upto]);
    }
    scan.open.last().copied()
}

#[derive(Default)]
struct Scan {
    /// The flow collections open, outermost first.
    open: Vec<(Location, char)>,
    /// Inside a quoted scalar, which may span lines: its quote.
    quote: Option<char>,
    /// Inside a block scalar (`|` or `>`): the indentation of the line that started it; its
    /// content is every line indented more, and blank lines.
    block_scalar: Option<usize>,
}

impl Scan {
    fn line(&mut self, number: usize, chars: &[char]) {
        let indent = chars.iter().take_while(|c| **c == ' ').count();
        if let Some(parent) = self.block_scalar {
            if indent >= chars.len() || indent > parent {
                return;
            }
            self.block_scalar = None;
        }
        // Whether the next character starts a node (a value), not the middle of a plain one.
        let mut node_start = self.quote.is_none();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            let spaced = next.is_none_or(|n| n == ' ' || n == '\t');
            let after_space = i == 0 || matches!(chars[i - 1], ' ' | '\t');
            if let Some(q) = self.quote {
                match (q, c) {
                    ('"', '\\') => i += 1,
                    ('\'', '\'') if next == Some('\'') => i += 1,
                    _ if c == q => {
                        self.quote = None;
                        node_start = false;
                    }
                    _ => {}
                }
                i += 1;
                continue;
            }
            let in_flow = !self.open.is_empty();
            match c {
                ' ' | '\t' => {}
                '#' if after_space => return,
                '{' | '[' if in_flow || node_start => {
                    self.open.push((
                        Location {
                            line: number,
                            column: i + 1,
                        },
                        c,
                    ));
                    node_start = true;
                }
                '}' | ']' if in_flow => {
                    self.open.pop();
                    node_start = false;
                }
                ',' if in_flow => node_start = true,
                ':' if in_flow || spaced => node_start = true,
                '-' | '?' if node_start && spaced => {}
                '"' | '\'' if node_start => self.quote = Some(c),
                '|' | '>' if node_start && !in_flow => {
                    self.block_scalar = Some(indent);
                    return;
                }
                '&' | '!' if node_start => {
                    // An anchor or a tag: the node comes after it.
                    while i + 1 < chars.len() && !matches!(chars[i + 1], ' ' | '\t') {
                        i += 1;
                    }
                }
                _ => node_start = false,
            }
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(src: &str) -> Option<(usize, usize, char)> {
        let lines = src.lines().count();
        let end = Location {
            line: lines + 1,
            column: 1,
        };
        open_flow(src, end).map(|(l, c)| (l.line, l.column, c))
    }

    #[test]
    fn finds_the_collection_left_open_at_the_end_of_its_line() {
        assert_eq!(
            open("rules:\n  - name: r\n    amount: {\n"),
            Some((3, 13, '{'))
        );
        assert_eq!(open("rules: [\n"), Some((1, 8, '[')));
        assert_eq!(
            open("rules:\n  - name: r\n    when: [1, {a: 2},\n"),
            Some((3, 11, '['))
        );
        assert_eq!(open("a:\n  - [\n"), Some((2, 5, '[')));
        assert_eq!(open("a: &x {\n"), Some((1, 7, '{')));
        assert_eq!(open("\"quoted key\": {b: [\n"), Some((1, 19, '[')));
    }

    #[test]
    fn brackets_inside_scalars_and_comments_open_nothing() {
        assert_eq!(open("reason: a{b [c\n"), None);
        assert_eq!(open("reason: \"{order_id} [\"\n"), None);
        assert_eq!(open("reason: '{it''s [}'\n"), None);
        assert_eq!(open("a: 1 # {\n"), None);
        assert_eq!(open("reason: |\n  {order_id}\n  [x\nnext: 1\n"), None);
        assert_eq!(open("reason: \"two\n  {lines\"\n"), None);
        assert_eq!(open("amount: { min: 1, max: 2 }\nwhen: [a, b]\n"), None);
        assert_eq!(open("a: [x#{y}]\n"), None);
    }

    #[test]
    fn stops_at_the_error() {
        let src = "a: {\nb: 1\n";
        assert_eq!(
            open_flow(src, Location { line: 1, column: 4 }),
            None,
            "the {{ at 1:4 is the error's own position, not before it"
        );
        assert_eq!(
            open_flow(src, Location { line: 2, column: 1 }).map(|(l, c)| (l.line, l.column, c)),
            Some((1, 4, '{'))
        );
    }
}
