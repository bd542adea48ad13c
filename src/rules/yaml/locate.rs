//! Finding a node, or a mapping key, by its path in a document: serde_yaml is made to fail at
//! the node on purpose, so its error carries the position.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::Location;

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

/// Where the value at `path` is written: at its alias when it is one (`name: *n`), since
/// serde_yaml places an aliased node where its anchor defines it, which may be lines above
/// where it was used. For errors about the value as a whole; a position inside a scalar is
/// in the anchor's text.
pub fn locate_written(src: &str, path: &[Seg<'_>]) -> Location {
    alias_at(src, path).unwrap_or_else(|| locate(src, path))
}

/// Where a shape error whose message begins with serde's path (`cases[1].expect: …`) was met
/// through an alias: the outermost alias on that path (`expect: *accepted`), since serde_yaml
/// places the error in the anchor's text, which every use of the anchor shares. `None` when no
/// step of the path is an alias written as a key's value.
pub fn alias_on_path(src: &str, message: &str) -> Option<Location> {
    let (written, _) = message.split_once(": ")?;
    let mut path = Vec::new();
    for step in written.split('.') {
        let (key, indices) = step.split_once('[').unwrap_or((step, ""));
        path.push(Seg::Key(key));
        for index in indices.split('[') {
            if let Some(i) = index.strip_suffix(']') {
                path.push(Seg::Index(i.parse().ok()?));
            }
        }
    }
    outermost_alias(src, &path)
}

/// The outermost alias on `path` written as a key's value (`window: *w` for
/// `rules[1].window.from`): where what is at `path` was used, its anchor's text being every
/// use's. `None` when no step of the path is one.
pub fn outermost_alias(src: &str, path: &[Seg<'_>]) -> Option<Location> {
    (1..=path.len()).find_map(|len| alias_at(src, &path[..len]))
}

/// The alias written as the value of the key `path` ends with, if it is one.
pub(super) fn alias_at(src: &str, path: &[Seg<'_>]) -> Option<Location> {
    let Some(Seg::Key(key)) = path.last() else {
        return None;
    };
    let at = locate_key(src, path)?;
    let line = src.lines().nth(at.line.checked_sub(1)?)?;
    let (start, _) = line.char_indices().nth(at.column.checked_sub(1)?)?;
    let rest = line[start..].strip_prefix(key)?.trim_start();
    let value = rest.strip_prefix(':')?.trim_start();
    value.starts_with('*').then(|| Location {
        line: at.line,
        column: line[..line.len() - value.len()].chars().count() + 1,
    })
}

const FOUND: &str = "\u{0}found";
const MISSING: &str = "\u{0}missing";

/// Walks to the node at `path` and fails there on purpose: serde_yaml marks every error with the
/// position of the node being read, which is exactly the location we want.
pub(super) struct Find<'p, 'a> {
    pub(super) path: &'p [Seg<'a>],
    /// Fail at the key of the last step instead of at its value.
    pub(super) key: bool,
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

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        // A tagged node (`!tag value`): found at its tag, looked into as its value.
        if self.path.is_empty() {
            return Err(self.end());
        }
        let (IgnoredAny, variant) = data.variant::<IgnoredAny>()?;
        de::VariantAccess::newtype_variant_seed(variant, self)
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
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        Err(self.end())
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
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
        // A tagged key (`!tag name:`, or a slip that makes one: `!Authorization: "x"` is the key
        // "x" tagged `!Authorization:`) is its name, as the checks that find it read it.
        let (IgnoredAny, variant) = data.variant::<IgnoredAny>()?;
        de::VariantAccess::newtype_variant_seed(variant, self)
    }
}
