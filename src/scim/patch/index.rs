//! Hash indexes over the values of a multi-valued attribute, so that adding
//! n values to m, or removing n from m, takes time in O(n + m) instead of
//! O(n × m). A group push of 10,000 members otherwise compares every pair.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use serde_json::Value;

use crate::scim::schema::get_ignore_case;

/// Hashes JSON values consistently with `Value`'s equality: equal values
/// hash alike whatever the order of object members, and `0.0` and `-0.0`
/// hash alike. The keys are random, so a client cannot choose colliding
/// values in advance.
struct ValueHasher {
    state: RandomState,
}

impl ValueHasher {
    fn new() -> Self {
        ValueHasher {
            state: RandomState::new(),
        }
    }

    fn hash(&self, value: &Value) -> u64 {
        let mut hasher = self.state.build_hasher();
        match value {
            Value::Null => hasher.write_u8(0),
            Value::Bool(flag) => {
                hasher.write_u8(1);
                hasher.write_u8(u8::from(*flag));
            }
            Value::Number(number) => {
                hasher.write_u8(2);
                // Equal numbers have equal f64 values, and -0.0 == 0.0.
                let float = number.as_f64().unwrap_or_default();
                let float = if float == 0.0 { 0.0 } else { float };
                hasher.write_u64(float.to_bits());
            }
            Value::String(text) => {
                hasher.write_u8(3);
                hasher.write(text.as_bytes());
            }
            Value::Array(items) => {
                hasher.write_u8(4);
                for item in items {
                    hasher.write_u64(self.hash(item));
                }
            }
            Value::Object(members) => {
                hasher.write_u8(5);
                let sum = members.iter().fold(0_u64, |sum, (key, member)| {
                    let mut entry = self.state.build_hasher();
                    entry.write(key.as_bytes());
                    entry.write_u64(self.hash(member));
                    sum.wrapping_add(entry.finish())
                });
                hasher.write_u64(sum);
            }
        }
        hasher.finish()
    }

    /// Hashes the identity of a complex value: its `value` and `type`
    /// sub-attributes. Values without `value` have no identity.
    fn identity(&self, item: &Value) -> Option<u64> {
        let object = item.as_object()?;
        let value = get_ignore_case(object, "value")?;
        let mut hasher = self.state.build_hasher();
        hasher.write_u64(self.hash(value));
        match get_ignore_case(object, "type") {
            None => hasher.write_u8(0),
            Some(kind) => {
                hasher.write_u8(1);
                hasher.write_u64(self.hash(kind));
            }
        }
        Some(hasher.finish())
    }
}

/// Tells whether two complex values have the same identity: both have a
/// `value`, the values are equal, and their `type`s are equal or both
/// missing.
pub(super) fn same_identity(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return false;
    };
    let value_a = get_ignore_case(a, "value");
    value_a.is_some()
        && value_a == get_ignore_case(b, "value")
        && get_ignore_case(a, "type") == get_ignore_case(b, "type")
}

/// Positions of the values of a list, by whole value and by identity. Each
/// bucket is sorted, so a search finds the first matching position.
pub(super) struct ListIndex {
    hasher: ValueHasher,
    exact: HashMap<u64, Vec<usize>>,
    identity: HashMap<u64, Vec<usize>>,
}

impl ListIndex {
    /// Indexes `items`.
    pub(super) fn new(items: &[Value]) -> Self {
        let mut index = ListIndex {
            hasher: ValueHasher::new(),
            exact: HashMap::new(),
            identity: HashMap::new(),
        };
        for (position, item) in items.iter().enumerate() {
            index.insert(item, position);
        }
        index
    }

    fn insert(&mut self, item: &Value, position: usize) {
        insert_sorted(
            self.exact.entry(self.hasher.hash(item)).or_default(),
            position,
        );
        if let Some(identity) = self.hasher.identity(item) {
            insert_sorted(self.identity.entry(identity).or_default(), position);
        }
    }

    /// Returns the first position of a value equal to `value`.
    pub(super) fn find_equal(&self, items: &[Value], value: &Value) -> Option<usize> {
        let bucket = self.exact.get(&self.hasher.hash(value))?;
        bucket.iter().copied().find(|&p| items[p] == *value)
    }

    /// Returns the first position of a value with the identity of `value`.
    pub(super) fn find_same_identity(&self, items: &[Value], value: &Value) -> Option<usize> {
        let bucket = self.identity.get(&self.hasher.identity(value)?)?;
        bucket
            .iter()
            .copied()
            .find(|&p| same_identity(&items[p], value))
    }

    /// Appends `value` and returns its position.
    pub(super) fn push(&mut self, items: &mut Vec<Value>, value: Value) -> usize {
        let position = items.len();
        self.insert(&value, position);
        items.push(value);
        position
    }

    /// Replaces the value at `position` with one of the same identity.
    pub(super) fn replace(&mut self, items: &mut [Value], position: usize, value: Value) {
        let old = self.hasher.hash(&items[position]);
        if let Some(bucket) = self.exact.get_mut(&old) {
            bucket.retain(|&p| p != position);
        }
        insert_sorted(
            self.exact.entry(self.hasher.hash(&value)).or_default(),
            position,
        );
        items[position] = value;
    }
}

fn insert_sorted(bucket: &mut Vec<usize>, position: usize) {
    if let Err(at) = bucket.binary_search(&position) {
        bucket.insert(at, position);
    }
}

/// The entries of a `remove` operation's value list, indexed by what they
/// select: an object with a `value` selects values with that `value`, an
/// object without one selects equal values, and a scalar selects equal
/// values and values whose `value` is equal to it.
pub(super) struct RemovalSet<'a> {
    hasher: ValueHasher,
    whole: HashMap<u64, Vec<&'a Value>>,
    by_value: HashMap<u64, Vec<&'a Value>>,
}

impl<'a> RemovalSet<'a> {
    /// Indexes the entries of a `remove` value list.
    pub(super) fn new(entries: &'a [Value]) -> Self {
        let mut set = RemovalSet {
            hasher: ValueHasher::new(),
            whole: HashMap::new(),
            by_value: HashMap::new(),
        };
        for entry in entries {
            let selected_value = match entry {
                Value::Object(members) => get_ignore_case(members, "value"),
                scalar => {
                    set.add_whole(scalar);
                    Some(scalar)
                }
            };
            match selected_value {
                Some(selected_value) => {
                    let hash = set.hasher.hash(selected_value);
                    set.by_value.entry(hash).or_default().push(selected_value);
                }
                None => set.add_whole(entry),
            }
        }
        set
    }

    fn add_whole(&mut self, entry: &'a Value) {
        let hash = self.hasher.hash(entry);
        self.whole.entry(hash).or_default().push(entry);
    }

    /// Tells whether some entry selects `item`.
    pub(super) fn selects(&self, item: &Value) -> bool {
        let equal_in = |map: &HashMap<u64, Vec<&Value>>, value: &Value| {
            map.get(&self.hasher.hash(value))
                .is_some_and(|bucket| bucket.contains(&value))
        };
        if equal_in(&self.whole, item) {
            return true;
        }
        let item_value = item.as_object().and_then(|o| get_ignore_case(o, "value"));
        item_value.is_some_and(|value| equal_in(&self.by_value, value))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::*;

    /// Appends pairwise, as the quadratic code this index replaced did.
    fn append_pairwise(items: &mut Vec<Value>, incoming: Vec<Value>) -> Vec<usize> {
        let mut written = Vec::new();
        for value in incoming {
            if let Some(index) = items.iter().position(|item| *item == value) {
                written.push(index);
                continue;
            }
            match items.iter().position(|item| same_identity(item, &value)) {
                Some(index) => {
                    items[index] = value;
                    written.push(index);
                }
                None => {
                    items.push(value);
                    written.push(items.len() - 1);
                }
            }
        }
        written
    }

    /// Selects for `remove` pairwise, as the code this index replaced did.
    fn selected_pairwise(item: &Value, entry: &Value) -> bool {
        let item_value = item.as_object().and_then(|o| get_ignore_case(o, "value"));
        match entry {
            Value::Object(members) => match get_ignore_case(members, "value") {
                Some(selected_value) => item_value == Some(selected_value),
                None => item == entry,
            },
            scalar => item == scalar || item_value == Some(scalar),
        }
    }

    /// Values of a multi-valued attribute from a small set, so that equal
    /// values, equal identities and `0.0` against `-0.0` come up often.
    fn list_value() -> impl Strategy<Value = Value> {
        let scalar = prop::sample::select(vec![
            json!("a"),
            json!("A"),
            json!("b"),
            json!(0.0),
            json!(-0.0),
            json!(0),
            json!(1),
            json!(true),
            Value::Null,
        ]);
        let member = prop::option::of(scalar.clone());
        let object = (member.clone(), member.clone(), member).prop_map(|(value, kind, display)| {
            let mut object = serde_json::Map::new();
            for (name, member) in [("value", value), ("type", kind), ("display", display)] {
                if let Some(member) = member {
                    object.insert(name.to_owned(), member);
                }
            }
            Value::Object(object)
        });
        prop_oneof![scalar, object]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn append_matches_pairwise(
            items in prop::collection::vec(list_value(), 0..8),
            incoming in prop::collection::vec(list_value(), 0..8),
        ) {
            let mut indexed = items.clone();
            let mut pairwise = items;
            let written = super::super::value::append_values(&mut indexed, incoming.clone());
            prop_assert_eq!(&written, &append_pairwise(&mut pairwise, incoming));
            prop_assert_eq!(indexed, pairwise);
        }

        #[test]
        fn removal_matches_pairwise(
            items in prop::collection::vec(list_value(), 0..8),
            entries in prop::collection::vec(list_value(), 0..8),
        ) {
            let set = RemovalSet::new(&entries);
            for item in &items {
                let pairwise = entries.iter().any(|entry| selected_pairwise(item, entry));
                prop_assert_eq!(set.selects(item), pairwise, "item {}", item);
            }
        }
    }
}
