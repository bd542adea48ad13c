//! The one place YAML is parsed (serde_yaml is frozen upstream; a maintained fork replaces it
//! here). Also finds the line and column of any node by path, for errors found after parsing.

use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor,
};

/// A 1-based position in a YAML source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// A parse error with where it happened.
#[derive(Debug)]
pub struct ParseError {
    pub location: Option<Location>,
    pub message: String,
}

/// Parses a whole document into `T`, strictly (the types deny unknown fields).
pub fn from_str<T: DeserializeOwned>(src: &str) -> Result<T, ParseError> {
    serde_yaml::from_str(src).map_err(|e| ParseError {
        location: e.location().map(|l| Location {
            line: l.line(),
            column: l.column(),
        }),
        message: clean_message(&e.to_string()),
    })
}

/// serde_yaml appends " at line L column C" to messages; we print the location ourselves.
fn clean_message(msg: &str) -> String {
    let msg = match msg.find(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    };
    // serde_yaml prefixes nested errors with the path ("rules[0]: ..."), which helps; keep it.
    msg.replace('`', "\"")
}

/// One step of a path into a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// The location of the node at `path`, or of its deepest existing ancestor.
pub fn locate(src: &str, path: &[Seg<'_>]) -> Location {
    let mut best = Location { line: 1, column: 1 };
    // Walk up the path until a node exists; a missing optional key is reported at its parent.
    for len in (0..=path.len()).rev() {
        let seed = Find {
            path: &path[..len],
            key: false,
        };
        match seed.deserialize(serde_yaml::Deserializer::from_str(src)) {
            Err(e) if e.to_string().contains(FOUND) => {
                if let Some(l) = e.location() {
                    best = Location {
                        line: l.line(),
                        column: l.column(),
                    };
                }
                return best;
            }
            _ => continue,
        }
    }
    best
}

/// The location of the key of the mapping entry at `path` (`rules:` rather than what follows
/// it), or `None` when there is no such entry. For errors about a key whose value is empty.
pub fn locate_key(src: &str, path: &[Seg<'_>]) -> Option<Location> {
    let seed = Find { path, key: true };
    match seed.deserialize(serde_yaml::Deserializer::from_str(src)) {
        Err(e) if e.to_string().contains(FOUND) => e.location().map(|l| Location {
            line: l.line(),
            column: l.column(),
        }),
        _ => None,
    }
}

const FOUND: &str = "\u{0}found";
const MISSING: &str = "\u{0}missing";

/// Walks to the node at `path` and fails there on purpose: serde_yaml marks every error with the
/// position of the node being read, which is exactly the location we want.
struct Find<'p, 'a> {
    path: &'p [Seg<'a>],
    /// Fail at the key of the last step instead of at its value.
    key: bool,
}

impl<'de> DeserializeSeed<'de> for Find<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Find<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any node")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Seg::Key(want), rest)) = self.path.split_first() else {
            return Err(self.end());
        };
        let at_key = self.key && rest.is_empty();
        while let Some(key) = map.next_key_seed(Key { want, at_key })? {
            if key {
                return map.next_value_seed(Find {
                    path: rest,
                    key: self.key,
                });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Err(de::Error::custom(MISSING))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Seg::Index(want), rest)) = self.path.split_first() else {
            return Err(self.end());
        };
        for _ in 0..*want {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Err(de::Error::custom(MISSING));
            }
        }
        seq.next_element_seed(Find {
            path: rest,
            key: self.key,
        })?
        .ok_or_else(|| de::Error::custom(MISSING))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(self.end())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(self.end())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(self.end())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(self.end())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(self.end())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.end())
    }
}

impl Find<'_, '_> {
    fn end<E: de::Error>(&self) -> E {
        E::custom(if self.path.is_empty() { FOUND } else { MISSING })
    }
}

/// Reads a mapping key: whether it is the wanted one, or (with `at_key`) fails right there when
/// it is, so the error carries the key's position.
struct Key<'a> {
    want: &'a str,
    at_key: bool,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = bool;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        // The error must be raised while the key is read, for serde_yaml to mark it there.
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        let found = key == self.want;
        if found && self.at_key {
            return Err(E::custom(FOUND));
        }
        Ok(found)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<bool, A::Error> {
        // A tagged key (`!tag name:`) is never the wanted one.
        let (IgnoredAny, variant) = data.variant::<IgnoredAny>()?;
        de::VariantAccess::newtype_variant::<IgnoredAny>(variant)?;
        Ok(false)
    }
}

/// Where text inside a scalar starts: after the opening quote of a quoted scalar, or on the next
/// line for a block scalar (`|`, `>`). `line`/`column` inside the text are 1-based.
pub fn position_in_scalar(src: &str, scalar: Location, line: usize, column: usize) -> Location {
    let Some(first) = src.lines().nth(scalar.line.saturating_sub(1)) else {
        return scalar;
    };
    let opener = first.chars().nth(scalar.column.saturating_sub(1));
    match opener {
        Some('|') | Some('>') => {
            let target = scalar.line + line;
            // The block's indentation is that of its first non-blank line; deeper indentation of
            // a later line is part of the text, so already in `column`.
            let indent = src
                .lines()
                .skip(scalar.line)
                .find(|l| !l.trim().is_empty())
                .map(|l| l.len() - l.trim_start().len())
                .unwrap_or(0);
            Location {
                line: target,
                column: indent + column,
            }
        }
        Some('"') | Some('\'') if line == 1 => Location {
            line: scalar.line,
            column: scalar.column + column,
        },
        _ if line == 1 => Location {
            line: scalar.line,
            column: scalar.column + column - 1,
        },
        _ => Location {
            line: scalar.line + line - 1,
            column,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "settings:\n  deadline: 4s\nrules:\n  - name: a\n    require: 'x > 1'\n  - name: b\n    amount: { min: 1 }\n";

    #[test]
    fn locates_nodes_by_path() {
        use Seg::*;
        assert_eq!(
            locate(SRC, &[Key("settings"), Key("deadline")]),
            Location {
                line: 2,
                column: 13
            }
        );
        assert_eq!(
            locate(SRC, &[Key("rules"), Index(1), Key("amount"), Key("min")]),
            Location {
                line: 7,
                column: 20
            }
        );
        assert_eq!(
            locate(SRC, &[Key("rules"), Index(1)]),
            Location { line: 6, column: 5 }
        );
        // A missing node is reported at its nearest ancestor.
        assert_eq!(
            locate(SRC, &[Key("rules"), Index(1), Key("reason")]),
            Location { line: 6, column: 5 }
        );
    }

    #[test]
    fn locates_keys_by_path() {
        use Seg::*;
        assert_eq!(
            locate_key(SRC, &[Key("rules")]),
            Some(Location { line: 3, column: 1 })
        );
        assert_eq!(
            locate_key(SRC, &[Key("settings"), Key("deadline")]),
            Some(Location { line: 2, column: 3 })
        );
        assert_eq!(
            locate_key(SRC, &[Key("rules"), Index(1), Key("amount")]),
            Some(Location { line: 7, column: 5 })
        );
        // An empty value is still a key; a missing key is none.
        let empty = "# header\nsettings: {}\n? 1\n: x\n!tag other: y\nrules:\n";
        assert_eq!(
            locate_key(empty, &[Key("rules")]),
            Some(Location { line: 6, column: 1 })
        );
        assert_eq!(
            locate_key("{ settings: {}, rules: [] }", &[Key("rules")]),
            Some(Location {
                line: 1,
                column: 17
            })
        );
        assert_eq!(locate_key(SRC, &[Key("upstreams")]), None);
        assert_eq!(
            locate_key(SRC, &[Key("rules"), Index(5), Key("name")]),
            None
        );
        assert_eq!(locate_key("", &[Key("rules")]), None);
        // Found before the rest of the document is read.
        assert_eq!(
            locate_key("rules: [", &[Key("rules")]),
            Some(Location { line: 1, column: 1 })
        );
        // `locate` still finds values after keys of every kind.
        assert_eq!(
            locate(empty, &[Key("settings")]),
            Location {
                line: 2,
                column: 11
            }
        );
    }

    #[test]
    fn positions_inside_scalars() {
        let at = locate(
            SRC,
            &[Seg::Key("rules"), Seg::Index(0), Seg::Key("require")],
        );
        assert_eq!(
            at,
            Location {
                line: 5,
                column: 14
            }
        );
        // Column 3 of the expression `x > 1` is the `>`, one past the quote.
        assert_eq!(
            position_in_scalar(SRC, at, 1, 3),
            Location {
                line: 5,
                column: 17
            }
        );
        let block = "a:\n  b: |\n    x +\n    y\n";
        let at = locate(block, &[Seg::Key("a"), Seg::Key("b")]);
        assert_eq!(
            position_in_scalar(block, at, 2, 1),
            Location { line: 4, column: 5 }
        );
    }

    #[test]
    fn parse_errors_carry_locations() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct T {
            a: u32,
        }
        let err = from_str::<T>("a: 1\nb: 2\n").unwrap_err();
        assert_eq!(err.location, Some(Location { line: 2, column: 1 }));
        assert_eq!(err.message, "unknown field \"b\", expected \"a\"");
    }
}
