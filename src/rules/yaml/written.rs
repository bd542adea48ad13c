//! The text of every fractional number of a value, read in one pass over the document.
//!
//! serde_yaml hands a number with a fraction or an exponent over as an `f64`, its text lost.
//! Finding one number's text by its path reads the document up to it, so doing that for each
//! number took time growing with their count squared (a test file of 2,000 cases written as
//! one flow sequence, one `amount: 50000.5` each, took 53 s). Here the document is read once,
//! guided by the value already read from it: each mapping, list and fractional number of the
//! value is met at its node, and a number's node is asked for as text, which serde_yaml gives
//! as written.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use super::Seg;

/// The text of each fractional number of a value, by its path below the node read.
#[derive(Debug, Default)]
pub struct Texts(HashMap<Vec<Step>, String>);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Key(String),
    Index(usize),
}

impl Texts {
    /// The text of the fractional number at `path` (below the node read), when that text is a
    /// JSON number (YAML's `.5` is not).
    pub fn get(&self, path: &[Seg<'_>]) -> Option<&str> {
        let key: Vec<Step> = path
            .iter()
            .map(|seg| match seg {
                Seg::Key(k) => Step::Key((*k).to_owned()),
                Seg::Index(i) => Step::Index(*i),
            })
            .collect();
        self.0
            .get(&key)
            .map(String::as_str)
            .filter(|t| serde_json::from_str::<serde_json::Number>(t).is_ok())
    }
}

/// The text of each fractional number of `guide` that is in the node at `path` of `src`:
/// `guide` is (part of) what was read from that node, so its shape says which nodes hold such
/// numbers; entries the document has and `guide` does not are skipped. `None` when the document
/// has no node at `path` or its shape differs from `guide`'s (the caller then finds each
/// number by its path).
pub fn numbers_as_written(src: &str, path: &[Seg<'_>], guide: &Value) -> Option<Texts> {
    let mut walk = Walk::default();
    Descend {
        path,
        guide,
        walk: &mut walk,
    }
    .deserialize(serde_yaml::Deserializer::from_str(src))
    .ok()?;
    Some(walk.texts)
}

#[derive(Default)]
struct Walk {
    /// Where the node being read is, below the node at the path.
    at: Vec<Step>,
    texts: Texts,
}

/// Walks down `path`, then reads the node there as [`Guided`].
struct Descend<'p, 'a, 'v, 'w> {
    path: &'p [Seg<'a>],
    guide: &'v Value,
    walk: &'w mut Walk,
}

impl<'de> DeserializeSeed<'de> for Descend<'_, '_, '_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.path.first() {
            None => Guided {
                guide: self.guide,
                walk: self.walk,
            }
            .deserialize(d),
            Some(Seg::Key(_)) => d.deserialize_map(self),
            Some(Seg::Index(_)) => d.deserialize_seq(self),
        }
    }
}

impl<'de> Visitor<'de> for Descend<'_, '_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the node on the path")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Seg::Key(want), rest)) = self.path.split_first() else {
            return Err(de::Error::custom("not a mapping"));
        };
        let mut found = false;
        while let Some(key) = map.next_key::<String>()? {
            // A key written twice: the value read is the last one's, so each is walked and
            // the last one's texts stay.
            if key == *want {
                found = true;
                map.next_value_seed(Descend {
                    path: rest,
                    guide: self.guide,
                    walk: &mut *self.walk,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        if found {
            Ok(())
        } else {
            Err(de::Error::custom("no such key"))
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Seg::Index(want), rest)) = self.path.split_first() else {
            return Err(de::Error::custom("not a list"));
        };
        for _ in 0..*want {
            seq.next_element::<IgnoredAny>()?
                .ok_or_else(|| de::Error::custom("no such item"))?;
        }
        seq.next_element_seed(Descend {
            path: rest,
            guide: self.guide,
            walk: self.walk,
        })?
        .ok_or_else(|| de::Error::custom("no such item"))?;
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

/// Reads a node as the shape of `guide` says it is: a mapping or a list entry by entry, a
/// fractional number as its text, anything else skipped.
struct Guided<'v, 'w> {
    guide: &'v Value,
    walk: &'w mut Walk,
}

impl<'de> DeserializeSeed<'de> for Guided<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.guide {
            Value::Object(_) => d.deserialize_map(self),
            Value::Array(_) => d.deserialize_seq(self),
            // And zero, which YAML may write as `-0`, as JSON does.
            Value::Number(n) if !(n.is_i64() || n.is_u64()) || n.as_u64() == Some(0) => {
                // serde_yaml gives any scalar asked for as text as it is written.
                let text = String::deserialize(d)?;
                let at = self.walk.at.clone();
                self.walk.texts.0.insert(at, text);
                Ok(())
            }
            _ => d.deserialize_ignored_any(IgnoredAny).map(|_| ()),
        }
    }
}

impl<'de> Visitor<'de> for Guided<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the shape already read")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Value::Object(entries) = self.guide else {
            return Err(de::Error::custom("not a mapping"));
        };
        while let Some(key) = map.next_key::<String>()? {
            match entries.get(&key) {
                Some(guide) => {
                    self.walk.at.push(Step::Key(key));
                    map.next_value_seed(Guided {
                        guide,
                        walk: &mut *self.walk,
                    })?;
                    self.walk.at.pop();
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Value::Array(items) = self.guide else {
            return Err(de::Error::custom("not a list"));
        };
        for (i, guide) in items.iter().enumerate() {
            self.walk.at.push(Step::Index(i));
            seq.next_element_seed(Guided {
                guide,
                walk: &mut *self.walk,
            })?
            .ok_or_else(|| de::Error::custom("a shorter list"))?;
            self.walk.at.pop();
        }
        // Items past the guide's are not read by it (rules after the last one well-formed).
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CASES: &str = "cases: [\n  { name: a, request: { amount: 10.50, n: 3, items: [1.0, 2, 1e3] } },\n  { name: b, request: { amount: 999.99999999999999999 } }\n]\n";

    fn read(src: &str, path: &[Seg<'_>]) -> Value {
        let mut node: Value = serde_yaml::from_str(src).unwrap();
        for seg in path {
            node = match seg {
                Seg::Key(k) => node[*k].clone(),
                Seg::Index(i) => node[*i].clone(),
            };
        }
        node
    }

    #[test]
    fn each_fractional_number_is_read_as_written() {
        let path = [Seg::Key("cases")];
        let texts = numbers_as_written(CASES, &path, &read(CASES, &path)).unwrap();
        let at = |p: &[Seg<'_>]| texts.get(p);
        let (a, b) = (Seg::Index(0), Seg::Index(1));
        let (request, amount, items) = (Seg::Key("request"), Seg::Key("amount"), Seg::Key("items"));
        assert_eq!(at(&[a, request, amount]), Some("10.50"));
        assert_eq!(at(&[a, request, items, Seg::Index(0)]), Some("1.0"));
        assert_eq!(at(&[a, request, items, Seg::Index(2)]), Some("1e3"));
        assert_eq!(at(&[b, request, amount]), Some("999.99999999999999999"));
        // Integers need no text, and only fractional numbers are asked for as text.
        assert_eq!(at(&[a, request, Seg::Key("n")]), None);
        assert_eq!(at(&[a, request, items, Seg::Index(1)]), None);
        assert_eq!(at(&[a, Seg::Key("name")]), None);
        // YAML's own spellings of a float are no JSON number.
        let src = "r: [.5, 1.5]\n";
        let texts =
            numbers_as_written(src, &[Seg::Key("r")], &read(src, &[Seg::Key("r")])).unwrap();
        assert_eq!(
            (texts.get(&[Seg::Index(0)]), texts.get(&[Seg::Index(1)])),
            (None, Some("1.5"))
        );
    }

    #[test]
    fn a_guide_of_part_of_the_node_skips_the_rest() {
        let guide = serde_json::json!([{}, { "request": { "amount": 1000.0 } }]);
        let texts = numbers_as_written(CASES, &[Seg::Key("cases")], &guide).unwrap();
        let amount = [Seg::Key("request"), Seg::Key("amount")];
        assert_eq!(
            texts.get(&[&[Seg::Index(1)], &amount[..]].concat()),
            Some("999.99999999999999999")
        );
        assert_eq!(texts.get(&[&[Seg::Index(0)], &amount[..]].concat()), None);
    }

    #[test]
    fn an_alias_and_a_key_written_twice_give_the_text_read() {
        let src = "base: &b 1.50\nrequest:\n  amount: *b\n  fee: 0.10\n  fee: 0.250\n";
        let path = [Seg::Key("request")];
        let texts = numbers_as_written(src, &path, &read(src, &path)).unwrap();
        assert_eq!(texts.get(&[Seg::Key("amount")]), Some("1.50"));
        assert_eq!(texts.get(&[Seg::Key("fee")]), Some("0.250"));
    }

    #[test]
    fn a_path_the_document_lacks_or_another_shape_gives_none() {
        let guide = serde_json::json!({"amount": 1.5});
        assert!(numbers_as_written("a: 1\n", &[Seg::Key("request")], &guide).is_none());
        assert!(numbers_as_written("a: [1]\n", &[Seg::Key("a"), Seg::Index(3)], &guide).is_none());
        assert!(numbers_as_written("request: [1.5]\n", &[Seg::Key("request")], &guide).is_none());
        let list = serde_json::json!([1.5, 2.5]);
        assert!(numbers_as_written("request: [1.5]\n", &[Seg::Key("request")], &list).is_none());
        // A longer list: the items past the guide's are not read.
        let texts = numbers_as_written("r: [1.5, 2.50, 3.5]\n", &[Seg::Key("r")], &list).unwrap();
        assert_eq!(texts.get(&[Seg::Index(1)]), Some("2.50"));
        assert_eq!(texts.get(&[Seg::Index(2)]), None);
    }
}
