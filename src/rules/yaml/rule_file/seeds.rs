//! The serde seeds one walk over a rule file is made of: the document, its sections, each part,
//! and each key of a part, recording in the walker where it is and what it read.

use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IgnoredAny, IntoDeserializer, MapAccess, SeqAccess,
    Visitor,
};

use super::{Part, Walker};
use crate::rules::model::{RawRule, RawSettings, RawUpstream};

/// The keys of a rule file's top level.
const SECTIONS: &[&str] = &["settings", "upstreams", "rules"];

/// The document: nothing (an empty file), or a mapping of the sections.
pub(super) struct Root<'a, 's> {
    pub(super) w: &'a Walker<'s>,
}

const ROOT_EXPECTED: &str = "a mapping with the keys settings, upstreams and rules";

impl<'de> DeserializeSeed<'de> for Root<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for Root<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(ROOT_EXPECTED)
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let w = self.w;
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key_seed(SectionKey { w })? {
            // A repeated section was reported as a duplicate key; the first one counts.
            let Some(section) = key.filter(|k| seen.insert(k.clone())) else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            w.cursor.borrow_mut().section = Some(section.clone());
            match section.as_str() {
                "settings" if w.skip.parts.contains(&Part::Settings) => {
                    map.next_value::<IgnoredAny>()?;
                }
                "settings" => {
                    let settings = map.next_value_seed(PartSeed::<RawSettings> {
                        w,
                        part: Part::Settings,
                        expected: "a mapping of settings (deadline, on_error, error_reason, reject_status)",
                        ty: PhantomData,
                    })?;
                    w.found.borrow_mut().settings = settings;
                }
                "upstreams" => map.next_value_seed(Upstreams { w })?,
                _ => map.next_value_seed(Rules { w })?,
            }
            w.cursor.borrow_mut().section = None;
        }
        Ok(())
    }
}

/// A top-level key: a section (`None` when left out), or an error at the key.
struct SectionKey<'a, 's> {
    w: &'a Walker<'s>,
}

impl<'de> DeserializeSeed<'de> for SectionKey<'_, '_> {
    type Value = Option<String>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for SectionKey<'_, '_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("one of settings, upstreams, rules")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Option<String>, E> {
        if self.w.skip.sections.contains(key) {
            return Ok(None);
        }
        self.w.cursor.borrow_mut().section = Some(key.to_owned());
        if !SECTIONS.contains(&key) {
            return Err(E::unknown_field(key, SECTIONS));
        }
        Ok(Some(key.to_owned()))
    }
}

/// `upstreams`: a mapping of upstreams by name.
struct Upstreams<'a, 's> {
    w: &'a Walker<'s>,
}

impl<'de> DeserializeSeed<'de> for Upstreams<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Upstreams<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping of upstreams by name")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let w = self.w;
        while let Some(name) = map.next_key::<String>()? {
            let part = Part::Upstream(name.clone());
            // A repeated name was reported as a duplicate key.
            if w.found.borrow().upstreams.contains_key(&name) || w.skip.parts.contains(&part) {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let upstream = map.next_value_seed(PartSeed::<RawUpstream> {
                w,
                part,
                expected: "an upstream: a mapping with url (and timeout, headers, health)",
                ty: PhantomData,
            })?;
            if let Some(upstream) = upstream {
                w.found.borrow_mut().upstreams.insert(name, upstream);
            }
        }
        Ok(())
    }
}

/// `rules`: a sequence of rules (or nothing).
struct Rules<'a, 's> {
    w: &'a Walker<'s>,
}

impl<'de> DeserializeSeed<'de> for Rules<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for Rules<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of rules, each starting with \"- \" (- name: …)")
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let w = self.w;
        for i in 0.. {
            let part = Part::Rule(i);
            if w.skip.parts.contains(&part) {
                if seq.next_element::<IgnoredAny>()?.is_none() {
                    break;
                }
                continue;
            }
            let seed = PartSeed::<RawRule> {
                w,
                part,
                expected: "a rule: a mapping with name, a check and reason",
                ty: PhantomData,
            };
            match seq.next_element_seed(seed)? {
                None => break,
                Some(Some(rule)) => w.found.borrow_mut().rules.push((i, rule)),
                Some(None) => {}
            }
        }
        Ok(())
    }
}

/// One part, read as `T` without the keys an earlier walk failed at: `None` when some were
/// left out (the part is broken, its errors reported).
struct PartSeed<'a, 's, T> {
    w: &'a Walker<'s>,
    part: Part,
    expected: &'static str,
    ty: PhantomData<T>,
}

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for PartSeed<'_, '_, T> {
    type Value = Option<T>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        let w = self.w;
        {
            let mut cursor = w.cursor.borrow_mut();
            cursor.part = Some(self.part.clone());
            cursor.key = None;
            cursor.done = false;
        }
        let value = d.deserialize_map(self)?;
        let mut cursor = w.cursor.borrow_mut();
        cursor.part = None;
        cursor.key = None;
        cursor.done = false;
        Ok(value)
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for PartSeed<'_, '_, T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expected)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<T>, A::Error> {
        let left_out = self.w.skip.keys.get(&self.part);
        let value = T::deserialize(de::value::MapAccessDeserializer::new(Filtered {
            inner: map,
            left_out,
            w: self.w,
        }))?;
        Ok(left_out.is_none().then_some(value))
    }
}

/// A part's mapping without the keys left out; it records which key is being read.
struct Filtered<'a, 's, A> {
    inner: A,
    left_out: Option<&'a HashSet<String>>,
    w: &'a Walker<'s>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Filtered<'_, '_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        mut seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        loop {
            let key = self.inner.next_key_seed(FilterKey {
                seed,
                left_out: self.left_out,
                w: self.w,
            })?;
            match key {
                None => {
                    self.w.cursor.borrow_mut().done = true;
                    return Ok(None);
                }
                Some(Ok(key)) => return Ok(Some(key)),
                Some(Err(back)) => {
                    self.inner.next_value::<IgnoredAny>()?;
                    seed = back;
                }
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.inner.next_value_seed(seed)
    }
}

/// Reads a key of a part for `seed` (the type's own field names), so an unknown key fails
/// while serde_yaml reads it and is reported at the key; a key left out gives the seed back.
struct FilterKey<'a, 's, K> {
    seed: K,
    left_out: Option<&'a HashSet<String>>,
    w: &'a Walker<'s>,
}

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for FilterKey<'_, '_, K> {
    type Value = Result<K::Value, K>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        // Until the key reads as a name, an error is the part's: a key that is a list
        // (`? [a, b]`) has no name to leave out on the next walk.
        self.w.cursor.borrow_mut().key = None;
        d.deserialize_str(self)
    }
}

impl<'de, K: DeserializeSeed<'de>> Visitor<'de> for FilterKey<'_, '_, K> {
    type Value = Result<K::Value, K>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        if self.left_out.is_some_and(|keys| keys.contains(key)) {
            return Ok(Err(self.seed));
        }
        self.w.cursor.borrow_mut().key = Some(key.to_owned());
        self.seed
            .deserialize(IntoDeserializer::<E>::into_deserializer(key))
            .map(Ok)
    }
}
