//! Checks of a script's source text, for what Rhai's parser reports at a misleading place (an
//! unclosed `{`, a variable of the script read inside one of its `fn`s) or not at all (an
//! unclosed `/*`).

/// The characters of `src` outside string and character literals and comments, each with its
/// line and column (1-based, in characters; a line break is at column 0 of the line it starts).
/// A literal or comment is one space, at its first character, so that it still parts words.
fn code_chars(src: &str) -> impl Iterator<Item = (char, usize, usize)> + '_ {
    fn step((line, column): &mut (usize, usize), c: char) {
        if c == '\n' {
            (*line, *column) = (*line + 1, 0);
        } else {
            *column += 1;
        }
    }
    let mut chars = src.chars().peekable();
    let mut pos = (1, 0);
    std::iter::from_fn(move || {
        let c = chars.next()?;
        step(&mut pos, c);
        let at = pos;
        match c {
            '"' | '\'' | '`' => {
                while let Some(inner) = chars.next() {
                    step(&mut pos, inner);
                    if inner == c {
                        break;
                    }
                    // An escape in a "…" or '…' literal; a backtick string has none. A
                    // backslash before a line break continues the string on the next line.
                    if inner == '\\' && c != '`' {
                        if let Some(escaped) = chars.next() {
                            step(&mut pos, escaped);
                        }
                    }
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                while let Some(inner) = chars.next_if(|&c| c != '\n') {
                    step(&mut pos, inner);
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                let mut last = ' ';
                for inner in chars.by_ref() {
                    step(&mut pos, inner);
                    if last == '*' && inner == '/' {
                        break;
                    }
                    last = inner;
                }
            }
            c => return Some((c, at.0, at.1)),
        }
        Some((' ', at.0, at.1))
    })
}

/// Where (in bytes) the first `//` comment of `src` starts, outside string and character
/// literals and block comments (which nest in Rhai).
pub(in crate::script) fn line_comment_start(src: &str) -> Option<usize> {
    let mut chars = src.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                while let Some((_, inner)) = chars.next() {
                    if inner == c {
                        break;
                    }
                    if inner == '\\' && c != '`' {
                        chars.next();
                    }
                }
            }
            '/' if chars.peek().is_some_and(|(_, c)| *c == '/') => return Some(at),
            '/' if chars.peek().is_some_and(|(_, c)| *c == '*') => {
                chars.next();
                let mut depth = 1;
                while depth > 0 {
                    match chars.next() {
                        Some((_, '*')) if chars.next_if(|(_, c)| *c == '/').is_some() => depth -= 1,
                        Some((_, '/')) if chars.next_if(|(_, c)| *c == '*').is_some() => depth += 1,
                        Some(_) => {}
                        None => return None,
                    }
                }
            }
            _ => {}
        }
    }
    None
}

/// The line and column (1-based, in characters) of the outermost `/*` of `src` that is never
/// closed, outside string and character literals and line comments. Rhai takes the rest of the
/// script as the comment without a word, so a forgotten `*/` would quietly leave out every rule
/// after it. Block comments nest in Rhai: each `/*` needs its own `*/`.
pub(in crate::script) fn unclosed_comment(src: &str) -> Option<(usize, usize)> {
    let mut chars = src.chars().peekable();
    let (mut line, mut column) = (1, 0);
    let mut quote = None;
    // For each `${` open in a backtick string, inner to outer: how many `{` of its code are
    // open. Its code is code again, with strings of its own (`${ `/*` + x }`).
    let mut interpolations: Vec<usize> = Vec::new();
    let mut line_comment = false;
    let mut open: Vec<(usize, usize)> = Vec::new();
    while let Some(c) = chars.next() {
        if c == '\n' {
            (line, column) = (line + 1, 0);
            line_comment = false;
            continue;
        }
        column += 1;
        if line_comment {
            continue;
        }
        if let Some(q) = quote {
            if c == q {
                quote = None;
            } else if q == '`' && c == '$' && chars.peek() == Some(&'{') {
                chars.next();
                column += 1;
                quote = None;
                interpolations.push(0);
            } else if c == '\\' && q != '`' && chars.peek().is_some_and(|&n| n != '\n') {
                chars.next();
                column += 1;
            }
            continue;
        }
        match (c, chars.peek()) {
            ('/', Some('*')) => {
                open.push((line, column));
                chars.next();
                column += 1;
            }
            ('*', Some('/')) if !open.is_empty() => {
                open.pop();
                chars.next();
                column += 1;
            }
            _ if !open.is_empty() => {}
            ('/', Some('/')) => line_comment = true,
            ('"' | '\'' | '`', _) => quote = Some(c),
            ('{', _) => {
                if let Some(depth) = interpolations.last_mut() {
                    *depth += 1;
                }
            }
            ('}', _) => match interpolations.last_mut() {
                Some(0) => {
                    interpolations.pop();
                    quote = Some('`');
                }
                Some(depth) => *depth -= 1,
                None => {}
            },
            _ => {}
        }
    }
    open.first().copied()
}

/// The line and column (1-based, in characters) of the innermost `{` of `src` that is never
/// closed, outside strings, characters and comments.
pub(in crate::script) fn unclosed_brace(src: &str) -> Option<(usize, usize)> {
    let mut open = Vec::new();
    for (c, line, column) in code_chars(src) {
        match c {
            '{' => open.push((line, column)),
            '}' => {
                open.pop();
            }
            _ => {}
        }
    }
    open.pop()
}

/// The `fn` whose body holds `line`:`column` in `src`, when `name` is declared (`let name`,
/// `const name`) outside every `fn` body: a read of the script's own variable inside one of
/// its functions, which Rhai refuses as an undefined variable. `None` when unsure (the place is
/// in no function, or no such declaration is seen). Strings and comments are skipped.
pub(in crate::script) fn outer_variable_in_fn(
    src: &str,
    name: &str,
    line: usize,
    column: usize,
) -> Option<String> {
    let mut depth = 0usize;
    // The function whose body is being read, with the depth of its `{`.
    let mut body: Option<(String, usize)> = None;
    // After `fn`: its name, then its `{`.
    let mut pending: Option<Option<String>> = None;
    let mut word = String::new();
    let mut previous_word = String::new();
    let mut declared_outside = false;
    let mut holder = None;
    let finish_word = |word: &mut String,
                       previous: &mut String,
                       pending: &mut Option<Option<String>>,
                       body: &Option<(String, usize)>| {
        if word.is_empty() {
            return false;
        }
        let mut outside = false;
        if (previous == "let" || previous == "const") && word == name && body.is_none() {
            outside = true;
        }
        match pending {
            Some(None) => *pending = Some(Some(word.clone())),
            _ if word == "fn" => *pending = Some(None),
            _ => {}
        }
        *previous = std::mem::take(word);
        outside
    };
    for (c, at_line, at_column) in code_chars(src) {
        if (at_line, at_column) == (line, column) {
            holder = Some(body.as_ref().map(|(f, _)| f.clone()));
        }
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        declared_outside |= finish_word(&mut word, &mut previous_word, &mut pending, &body);
        match c {
            '{' => {
                depth += 1;
                if let Some(Some(function)) = pending.take() {
                    if body.is_none() {
                        body = Some((function, depth));
                    }
                }
            }
            '}' => {
                if body.as_ref().is_some_and(|(_, d)| *d == depth) {
                    body = None;
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
    }
    declared_outside |= finish_word(&mut word, &mut previous_word, &mut pending, &body);
    match holder {
        Some(Some(function)) if declared_outside => Some(function),
        _ => None,
    }
}
